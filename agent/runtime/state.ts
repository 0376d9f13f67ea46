// On-disk state of one system under <data>/systems/<name>/, and a per-system lock across processes.
//
// Files (all ours):  state.json  applied spec, rev, phase, supervisor identity (atomic tmp+rename)
//                    upper/ work/  overlay layers (copy strategy: upper/ is the full copy)
//                    rootfs/       mount point; mounts exist only inside the system's mount namespace
//                    lower/        mount point of the idmapped template (inside the namespace only)
//                    bundle/       config.json for crun (0600: the spec's env); crun/ its run state
//                    init.pid      host pid of the system's pid 1 (written by crun)
//                    log, log.1    stdout+stderr of the system, size-capped
//                    wrapper.stat  /proc/self/stat line written by the supervisor shell itself
//                    exit          exit status written by the supervisor shell
import { linkSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import type { SystemDoc } from '../../ddocs/schemas/types.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { rmForce } from './fs-util.ts';
import { readIfExistsSync, writeAtomicReusingSync } from './paths.ts';
import { isSameProcessSync, parseStat, readStatSync, sleep } from './proc.ts';
import type { ResolvedTemplate } from './templates.ts';
import type { IdRange } from './oci-config.ts';

export type StatePhase = 'materializing' | 'materialized' | 'starting' | 'running' | 'stopped' | 'failed';

export interface ProcId {
  pid: number;
  startTime: number;
}

export interface SystemState {
  v: 1;
  name: string;
  phase: StatePhase;
  spec: SystemDoc;
  specRev: string | null;
  template: ResolvedTemplate;
  strategy: 'overlay' | 'copy';
  /** Rootless: we are not root; the supervisor runs in a user namespace of its own (only our uid mapped). */
  userns: boolean;
  /** What runs it (absent in states written before proot: crun). */
  launcher?: 'crun' | 'proot';
  /** The system's host id range (root inside = hostId outside); null: privileged or rootless. */
  ids?: IdRange | null;
  /** Unique per start; the supervisor carries it in its argv so it can be found after a crash. */
  runId: string | null;
  wrapper: ProcId | null;
  cgroups: string[];
  starts: number;
  startedAt: string | null;
  stopRequested: boolean;
  code: string | null;
  message: string | null;
}

export interface SystemPaths {
  dir: string;
  state: string;
  upper: string;
  work: string;
  rootfs: string;
  /** Mount point of the idmapped template (inside the system's namespace only). */
  lower: string;
  /** The OCI bundle: config.json (0600: it holds the env) — root.path is rootfs. */
  bundle: string;
  /** crun's state while the system runs. */
  crunRoot: string;
  /** Host pid of the system's pid 1, written by crun once the system is set up. */
  initPid: string;
  log: string;
  wrapperStat: string;
  exit: string;
}

export function systemPaths(dataDir: string, name: string): SystemPaths {
  const dir = `${dataDir}/systems/${name}`;
  return {
    dir,
    state: `${dir}/state.json`,
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    rootfs: `${dir}/rootfs`,
    lower: `${dir}/lower`,
    bundle: `${dir}/bundle`,
    crunRoot: `${dir}/crun`,
    initPid: `${dir}/init.pid`,
    log: `${dir}/log`,
    wrapperStat: `${dir}/wrapper.stat`,
    exit: `${dir}/exit`,
  };
}

/**
 * Where a system's root is mounted (inside its namespace only) when we are root: under /run, not the
 * 0700 data dir, because crun mounts as the system's root, which must reach it by path.
 */
export function stageDirOf(tag: string, name: string): string {
  return `/run/anybios/${tag}/${name}`;
}

export async function readState(p: SystemPaths): Promise<SystemState | null> {
  return readStateSync(p);
}

// State files are read and written synchronously: each is one small file on a local disk, and these
// calls sit on the start path (see docs/runtime.md, "Start time").
export function readStateSync(p: SystemPaths): SystemState | null {
  const text = readIfExistsSync(p.state);
  if (text === null) return null;
  try {
    return JSON.parse(text) as SystemState;
  } catch {
    return null; // impossible with atomic writes; treat like no state
  }
}

export async function writeState(p: SystemPaths, s: SystemState): Promise<void> {
  writeStateSync(p, s);
}

/** Atomic (spare + rename): a SIGKILL at any moment leaves the old or the new state, never half of one. */
export function writeStateSync(p: SystemPaths, s: SystemState): void {
  writeAtomicReusingSync(p.state, JSON.stringify(s, null, 1) + '\n', 0o600); // the spec's env: 0600
}

/** The runId in a supervisor marker (anybios-supervisor:<sysdir>:<runId>). */
function runIdOfMarker(marker: string): string {
  return marker.slice(marker.lastIndexOf(':') + 1);
}

/**
 * The exit status the supervisor wrote ("<code> <marker>"), or null: not yet, it died before writing,
 * or the file is from another run than `runId` (files of an earlier run are not deleted before a start:
 * they carry their run). A bare "<code>" (written by an older supervisor) is taken as is.
 */
export async function readExit(p: SystemPaths, runId?: string | null): Promise<number | null> {
  return readExitSync(p, runId);
}

export function readExitSync(p: SystemPaths, runId?: string | null): number | null {
  const t = readIfExistsSync(p.exit);
  const m = t === null ? null : /^(\d+)(?: (\S+))?\s*$/.exec(t);
  if (!m) return null;
  if (m[2] !== undefined && runId && runIdOfMarker(m[2]) !== runId) return null;
  return Number.parseInt(m[1]!, 10);
}

/** The supervisor's own identity ("<its /proc/self/stat>\n<marker>"), if written by the run `runId`. */
export async function readWrapperStat(p: SystemPaths, runId?: string | null): Promise<(ProcId & { ofRun: boolean }) | null> {
  return readWrapperStatSync(p, runId);
}

export function readWrapperStatSync(p: SystemPaths, runId?: string | null): (ProcId & { ofRun: boolean }) | null {
  const t = readIfExistsSync(p.wrapperStat);
  if (!t) return null;
  const [line, marker] = t.split('\n');
  if (marker && runId && runIdOfMarker(marker) !== runId) return null;
  const st = parseStat(line ?? '');
  // ofRun: known to be the supervisor of that very run (an older supervisor wrote no marker line).
  return st ? { pid: st.pid, startTime: st.startTime, ofRun: !!marker && !!runId } : null;
}

// ---- locks -----------------------------------------------------------------------------------------

const held = new Map<string, Promise<void>>();

/**
 * Run `fn` holding the lock of one system: in this process (a promise chain) and across processes
 * (<data>/locks/<name>.lock holding "pid starttime"; a lock whose owner is gone is stale and taken over).
 */
export async function withLock<T>(dataDir: string, name: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const key = `${dataDir}\0${name}`;
  const prev = held.get(key) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => (release = r));
  const chained = prev.then(() => mine);
  held.set(key, chained);
  await prev;
  try {
    const file = `${dataDir}/locks/${name}.lock`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // The lock is a hard link to our owner file: one link(2), no file created (creating an inode is
      // the slow part of a small write on many file systems), and it holds its owner from the start.
      try {
        linkSync(ownerFile(dataDir), file);
        break;
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') {
          owners.delete(dataDir); // the locks dir or our owner file was removed behind our back
          continue;
        }
        if (errnoOf(e) !== 'EEXIST') throw e;
      }
      const owner = readIfExistsSync(file) ?? '';
      const [pid, st] = owner.trim().split(' ').map(Number);
      // An empty lock file (written by an older version) is one whose writer died between create and write.
      const alive = pid && st !== undefined ? isSameProcessSync(pid, st) : false;
      if (!alive && (owner !== '' || lockAgeMs(file) > 2000)) {
        rmForce(file);
        continue;
      }
      if (Date.now() > deadline) throw new RuntimeError('BUSY', `system ${name} is locked by process ${pid}`);
      await sleep(20);
    }
    try {
      return await fn();
    } finally {
      rmForce(file);
    }
  } finally {
    release();
    if (held.get(key) === chained) held.delete(key);
  }
}

/** Per data dir: <data>/locks/.owner-<pid>-<starttime>, holding "pid starttime" (made once per process). */
const owners = new Map<string, string>();

function ownerFile(dataDir: string): string {
  let f = owners.get(dataDir);
  if (f) return f;
  const me = readStatSync(process.pid);
  const token = `${process.pid} ${me?.startTime ?? 0}`;
  const dir = `${dataDir}/locks`;
  mkdirSync(dir, { recursive: true });
  // Owner files of processes that are gone (their locks, if any, are stale and taken over anyway).
  for (const n of readdirSync(dir)) {
    const m = /^\.owner-(\d+)-(\d+)$/.exec(n);
    if (m && !isSameProcessSync(Number(m[1]), Number(m[2]))) rmForce(`${dir}/${n}`);
  }
  f = `${dir}/.owner-${token.replace(' ', '-')}`;
  writeFileSync(f, token + '\n', { mode: 0o644 });
  owners.set(dataDir, f);
  return f;
}

function lockAgeMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return Infinity;
  }
}
