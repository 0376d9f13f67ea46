// Launch under proot: for a node where neither root nor a user namespace is available (Termux on an
// Android phone, a locked-down host). proot fakes root and a root directory by ptrace-ing the system's
// processes: no namespaces, no mounts, **no isolation** from the user we run as (docs/runtime.md).
//
//   node (us) ── spawn, detached, env = HOST_ENV ──► sh -c SUPERVISOR MARKER
//     └─ proot -0 -r <sys>/upper -b /proc -b /dev -b /sys -b <sys>/bundle/run:/.anybios-run [-b VOL:TARGET]… -w CWD /bin/sh /.anybios-run
//          └─ the system's program: `run` exports the spec's env and execs init|command
//     echo "$? MARKER" > <sys>/exit
//
// The layer is always a full copy of the template (nothing can overlay without mounts). The command and
// env are in <sys>/bundle/run (0600), never in a host argv; proot itself runs with the fixed HOST_ENV.
import { mkdirSync } from 'node:fs';
import { EXIT_SETUP_FAILED, EXIT_SUPERVISOR_FAILED, spawnSupervisor, type Launched } from './launcher.ts';
import type { VolumeMount } from './mounts.ts';
import { readIfExistsSync, shq, writeAtomicSync } from './paths.ts';
import { childrenFileSync, readStatSync } from './proc.ts';
import type { SystemPaths } from './state.ts';
import type { Tools } from './tools.ts';

export interface ProotLaunchSpec {
  tools: Tools;
  proot: string;
  paths: SystemPaths;
  /** The system's root: its copy of the template. */
  root: string;
  cwd: string;
  volumes: VolumeMount[];
  cgroupDirs: string[];
  marker: string;
}

/** Where the run script is seen inside the system. */
export const RUN_INSIDE = '/.anybios-run';

/** The script proot runs inside the system (pure): the spec's env, then exec of its program. */
export function runScript(argv: string[], env: Record<string, string>): string {
  const lines = ['#!/bin/sh', '# written by anybios for this run: the spec\'s env and program', 'unset LC_ALL'];
  for (const [k, v] of Object.entries(env)) lines.push(`export ${k}=${shq(v)}`);
  lines.push(`exec ${argv.map(shq).join(' ')}`);
  return lines.join('\n') + '\n';
}

export function writeRunScriptSync(p: SystemPaths, argv: string[], env: Record<string, string>): string {
  mkdirSync(p.bundle, { recursive: true, mode: 0o700 });
  const file = `${p.bundle}/run`;
  const text = runScript(argv, env);
  if (readIfExistsSync(file) !== text) writeAtomicSync(file, text, 0o600);
  return file;
}

/** proot's arguments (pure). */
export function prootArgs(l: Pick<ProotLaunchSpec, 'root' | 'cwd' | 'volumes'>, runFile: string | null, cmd: string[]): string[] {
  const a = ['-0', '-r', l.root, '-b', '/proc', '-b', '/dev', '-b', '/sys'];
  if (runFile) a.push('-b', `${runFile}:${RUN_INSIDE}`);
  for (const v of l.volumes) a.push('-b', `${v.source}:${v.target}`);
  a.push('-w', l.cwd, ...cmd);
  return a;
}

/** The supervisor script (pure). */
export function prootSupervisorScript(l: ProotLaunchSpec): string {
  const p = l.paths;
  const s: string[] = [];
  s.push(`read -r s < /proc/self/stat && printf '%s\\n%s\\n' "$s" "$0" > ${shq(p.wrapperStat)} || exit ${EXIT_SUPERVISOR_FAILED}`);
  for (const d of l.cgroupDirs) s.push(`echo $$ > ${shq(`${d}/cgroup.procs`)} || { echo ${shq(`anybios: joining cgroup ${d} failed`)} >&2; echo "${EXIT_SETUP_FAILED} $0" > ${shq(p.exit)}; exit ${EXIT_SETUP_FAILED}; }`);
  s.push([shq(l.proot), ...prootArgs(l, `${p.bundle}/run`, ['/bin/sh', RUN_INSIDE]).map(shq)].join(' '));
  s.push('c=$?');
  s.push(`echo "$c $0" > ${shq(p.exit)}`);
  return s.join('\n');
}

export function launchProot(l: ProotLaunchSpec, timeoutMs = 30_000): Launched {
  // Ready when proot's first tracee (the system's program) exists; or when the supervisor has exited
  // (a program as short as /bin/true): then only a setup failure of ours is a failure.
  return spawnSupervisor(l.paths.log, l.tools.sh, ['-c', prootSupervisorScript(l), l.marker], timeoutMs, (pid) => {
    for (const proot of childrenFileSync(pid) ?? []) {
      const guest = (childrenFileSync(proot) ?? [])[0];
      const st = guest ? readStatSync(guest) : null;
      if (st) return { ok: true, init: { pid: st.pid, startTime: st.startTime } };
    }
    return null;
  }, (code) => ({ ok: code !== EXIT_SETUP_FAILED && code !== EXIT_SUPERVISOR_FAILED, init: null }));
}
