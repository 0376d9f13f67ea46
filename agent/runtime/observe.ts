// Observe: what one system is doing, derived from its state files and /proc only (no writes, no
// signals). Liveness is pid *and* start time of the supervisor; pid 1 of the system is its child.
// This is also adoption: a new process of ours reads the same files and sees the same running systems.
import { childrenFileSync, findByArg, isSameProcessSync, readStatSync } from './proc.ts';
import { readExitSync, readWrapperStatSync, type ProcId, type SystemPaths, type SystemState } from './state.ts';
import { EXIT_SETUP_FAILED, EXIT_SUPERVISOR_FAILED, readInitPid } from './launcher.ts';
import type { RuntimeErrorCode } from './errors.ts';

export type ObservedPhase = 'running' | 'stopped' | 'failed' | 'materializing';

export interface Observed {
  name: string;
  phase: ObservedPhase;
  kind: 'os' | 'app';
  template: string;
  /** Host pid of the system's pid 1 (null when not running). */
  pid: number | null;
  /** Start time of pid 1 in clock ticks since boot (with pid: its identity). */
  startTime: number | null;
  /** The supervisor shell (what we keep alive per system). */
  supervisor: ProcId | null;
  exitCode: number | null;
  restarts: number;
  /** The spec revision that was applied. */
  specRev: string | null;
  /** Running, but started by the anybios PE's /init at boot (anybios.boot), not by an agent (agent/pe/). */
  startedBy?: 'boot';
  strategy: 'overlay' | 'copy';
  startedAt: string | null;
  diskUsed: number | null;
  code: RuntimeErrorCode | null;
  message: string | null;
}

export function supervisorMarker(paths: SystemPaths, runId: string): string {
  return `anybios-supervisor:${paths.dir}:${runId}`;
}

/** Find the live supervisor of the current run: recorded identity, its own stat file, or a scan. */
export async function liveSupervisor(paths: SystemPaths, s: SystemState): Promise<ProcId | null> {
  if (s.wrapper && isSameProcessSync(s.wrapper.pid, s.wrapper.startTime)) return s.wrapper;
  if (s.wrapper) return null;
  if (s.phase !== 'starting' || !s.runId) return null;
  // Our process died between spawn and recording the pid: the supervisor wrote its own identity.
  const own = readWrapperStatSync(paths, s.runId);
  if (own && isSameProcessSync(own.pid, own.startTime)) return { pid: own.pid, startTime: own.startTime };
  if (own?.ofRun) return null; // this run's supervisor, gone
  // (A file of an earlier run is never this run's supervisor: it may not have written its own yet.)
  // Not even that: look for the marker (in the supervisor's argv; a forked copy of it, a subshell, would
  // carry it too, so the supervisor is the one whose parent is not in the set).
  const found = await findByArg(supervisorMarker(paths, s.runId));
  const sup = found.find((p) => !found.some((q) => q.pid === p.ppid));
  return sup ? { pid: sup.pid, startTime: sup.startTime } : null;
}

/**
 * The system's pid 1 (host pid and start time): the pid crun wrote, when it is crun's child and crun
 * the supervisor's (a pid file of an earlier run, or a reused pid, never matches). null: not (yet) there.
 */
export function initOf(paths: SystemPaths, sup: ProcId): ProcId | null {
  const pid = readInitPid(paths);
  const st = pid ? readStatSync(pid) : null;
  const parent = st ? readStatSync(st.ppid) : null;
  if (st && parent && parent.ppid === sup.pid) return { pid: st.pid, startTime: st.startTime };
  // Not written yet: crun's child, if it has one.
  for (const crun of childrenFileSync(sup.pid) ?? []) {
    const kid = (childrenFileSync(crun) ?? [])[0];
    const k = kid ? readStatSync(kid) : null;
    if (k) return { pid: k.pid, startTime: k.startTime };
  }
  return null;
}

export async function observeState(paths: SystemPaths, s: SystemState): Promise<Observed> {
  const base: Observed = {
    name: s.name,
    phase: 'stopped',
    kind: s.spec.kind,
    template: s.spec.template,
    pid: null,
    startTime: null,
    supervisor: null,
    exitCode: null,
    restarts: Math.max(0, s.starts - 1),
    specRev: s.specRev,
    strategy: s.strategy,
    startedAt: s.startedAt,
    diskUsed: null,
    code: null,
    message: null,
  };
  if (s.phase === 'materializing') return { ...base, phase: 'materializing', message: 'materializing (or interrupted while materializing)' };
  if (s.phase === 'materialized') return { ...base, phase: 'stopped', message: 'materialized, not started' };
  const sup = await liveSupervisor(paths, s);
  if (sup) {
    const init = initOf(paths, sup);
    return { ...base, phase: 'running', supervisor: sup, pid: init?.pid ?? null, startTime: init?.startTime ?? null };
  }
  if (s.phase === 'starting' && !s.wrapper && !readWrapperStatSync(paths, s.runId)) {
    return { ...base, phase: 'stopped', code: null, message: 'a start was interrupted before the system ran; nothing to roll back' };
  }
  const exitCode = readExitSync(paths, s.runId);
  if (s.phase === 'failed' && s.code) return { ...base, phase: 'failed', exitCode, code: s.code as RuntimeErrorCode, message: s.message };
  if (exitCode === null) {
    if (s.phase === 'stopped' && s.stopRequested) return { ...base, phase: 'stopped', message: s.message };
    return { ...base, phase: 'failed', code: 'SYSTEM_LOST', message: 'the system and its supervisor are gone and no exit code was recorded' };
  }
  if (exitCode === EXIT_SETUP_FAILED || exitCode === EXIT_SUPERVISOR_FAILED) {
    if (!s.stopRequested) return { ...base, phase: 'failed', exitCode, code: 'START_FAILED', message: `setup failed before the system ran (exit ${exitCode}); see the log` };
  }
  if (exitCode === 0 || s.stopRequested) return { ...base, phase: 'stopped', exitCode, message: s.stopRequested ? 'stopped' : 'exited with code 0' };
  return { ...base, phase: 'failed', exitCode, code: 'SYSTEM_EXITED', message: `exited with code ${exitCode}` };
}
