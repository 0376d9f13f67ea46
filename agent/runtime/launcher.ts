// Launch: a system is an OCI container run by crun, from a supervisor shell in a private mount namespace.
//
//   node (us) ── spawn, detached, clean env ──► unshare --mount --propagation private [--user --map-root-user]
//     └─ sh -c SUPERVISOR MARKER          writes wrapper.stat; joins cgroups; in its own mount namespace:
//          [hybrid cgroups] an empty tmpfs over /sys/fs/cgroup (crun refuses hybrid v1+v2 hosts)
//          [idmapped]       anybios-idmap-mount TEMPLATE <sys>/lower HOSTID 65536
//          mount -t overlay … <sys>/rootfs (or a bind of the copy); host template: hides over host paths
//          └─ crun run --pid-file <sys>/init.pid --bundle <sys>/bundle ID      (config.json: 0600)
//               └─ the system's pid 1, after pivot_root, in its own namespaces
//          echo "$? MARKER" > <sys>/exit
//
// Why crun (docs/runtime.md, "Security model"): user namespaces with id ranges, pivot_root with the old
// root detached, capabilities, seccomp, masked /proc paths, no_new_privs — each one a place where
// hand-written shell goes wrong; crun is the OCI runtime Podman uses, in Debian, ~1.5 MiB of C.
// Nothing of the system (command, env) is in any host argv or host environment: it is in config.json.
// Mounts exist only in the supervisor's namespace and below: they vanish with the system.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { RuntimeError } from './errors.ts';
import { prefixes, shq, under } from './paths.ts';
import { readStatSync, sleep } from './proc.ts';
import type { SystemPaths } from './state.ts';
import type { Tools } from './tools.ts';

/** The environment of every host-side helper: fixed, so nothing of a spec (LD_PRELOAD …) reaches them. */
export const HOST_ENV: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

export interface LaunchSpec {
  tools: Tools;
  crun: string;
  paths: SystemPaths;
  /** Mount point of the system's root (inside the supervisor's namespace only). */
  rootfs: string;
  /** The root file system: an overlay of these layers, or (copy strategy) a bind of `upper`. */
  root: { overlayOptions: string } | { bind: string };
  /** Idmapped lower: the helper makes `lower` (the template) show with ids shifted into the range. */
  idmap: { helper: string; template: string; hostId: number; size: number } | null;
  /** Host paths to cover with an empty tmpfs inside the rootfs (host template). */
  hides: string[];
  /** Cover /sys/fs/cgroup in our namespace: crun refuses hybrid hosts with controllers on cgroup2. */
  hideCgroupfs: boolean;
  /** Not root: the supervisor runs in a user namespace of its own, where we are root. */
  rootless: boolean;
  cgroupDirs: string[];
  /** Unique argv word of the supervisor, to find it again after a crash of ours. */
  marker: string;
  containerId: string;
}

/** Exit statuses of the supervisor chain that mean "failed before the system's own program ran". */
export const EXIT_SETUP_FAILED = 125;
export const EXIT_SUPERVISOR_FAILED = 126;

/** The supervisor script (pure). */
export function supervisorScript(l: LaunchSpec): string {
  const { tools: t, paths: p } = l;
  const R = l.rootfs;
  const s: string[] = [];
  // Its identity and its run ($0 is the marker): files of an earlier run are overwritten, not deleted first.
  s.push(`read -r s < /proc/self/stat && printf '%s\\n%s\\n' "$s" "$0" > ${shq(p.wrapperStat)} || exit ${EXIT_SUPERVISOR_FAILED}`);
  s.push(`fail() { echo "anybios: $1 failed" >&2; echo "${EXIT_SETUP_FAILED} $0" > ${shq(p.exit)}; exit ${EXIT_SETUP_FAILED}; }`);
  for (const d of l.cgroupDirs) s.push(`echo $$ > ${shq(`${d}/cgroup.procs`)} || fail ${shq(`joining cgroup ${d}`)}`);
  s.push(`: > ${shq(p.initPid)} || fail 'clearing init.pid'`);
  if (l.hideCgroupfs) s.push(`${shq(t.mount)} -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=755 anybios-nocgroup /sys/fs/cgroup || fail 'covering /sys/fs/cgroup'`);
  const i = l.idmap;
  if ('bind' in l.root) {
    // Copy strategy: the copy is the root, idmapped when it can be (then it holds the system's own ids).
    if (i) s.push(`${shq(i.helper)} ${shq(l.root.bind)} ${shq(R)} ${i.hostId} ${i.size} || fail 'idmapped root mount'`);
    else s.push(`${shq(t.mount)} --bind ${shq(l.root.bind)} ${shq(R)} || fail 'root bind mount'`);
  } else {
    if (i) s.push(`${shq(i.helper)} ${shq(i.template)} ${shq(p.lower)} ${i.hostId} ${i.size} || fail 'idmapped template mount'`);
    s.push(`${shq(t.mount)} -t overlay -o ${shq(l.root.overlayOptions)} overlay ${shq(R)} || fail 'overlay mount'`);
  }
  for (const h of l.hides) {
    // Hide only what the merged view really shows at that path: every component a real directory.
    const checks = prefixes(h).map((x) => `[ ! -L ${shq(under(R, x))} ] && [ -d ${shq(under(R, x))} ]`);
    s.push(`if ${checks.join(' && ')}; then ${shq(t.mount)} -t tmpfs -o ro,nosuid,nodev,noexec,size=4k,mode=755 anybios-hide ${shq(under(R, h))} || fail 'hiding a host path'; fi`);
  }
  s.push(`${shq(l.crun)} --root ${shq(p.crunRoot)} --cgroup-manager=disabled run --no-new-keyring --pid-file ${shq(p.initPid)} --bundle ${shq(p.bundle)} ${shq(l.containerId)}`);
  s.push('c=$?');
  // No pid file: crun failed before the system's program ran (its message is in the log).
  s.push(`[ -s ${shq(p.initPid)} ] || c=${EXIT_SETUP_FAILED}`);
  s.push(`echo "$c $0" > ${shq(p.exit)}`);
  return s.join('\n');
}

export function launchArgv(l: LaunchSpec): string[] {
  const ns = ['--mount', '--propagation', 'private'];
  if (l.rootless) ns.unshift('--user', '--map-root-user');
  return [...ns, '--', l.tools.sh, '-c', supervisorScript(l), l.marker];
}

export interface Launched {
  /** pid of the supervisor (unshare execs into it, so it is the spawned pid). */
  wrapperPid: number;
  /** When crun has set the system up (init.pid written), or setup failed. */
  ready: Promise<Ready>;
  /** Resolves with the supervisor's exit code when it is our child and exits (fast path for waits). */
  exited: Promise<number | null>;
  /** Keep our process alive while waiting for `exited` (the child is unref'd otherwise). */
  hold(on: boolean): void;
}

export interface Ready {
  ok: boolean;
  /** The system's pid 1 as the host sees it (startTime null: it has exited already). null: setup failed. */
  init: { pid: number; startTime: number | null } | null;
}

/** The pid crun wrote (empty: not yet, or setup failed). */
export function readInitPid(p: SystemPaths): number | null {
  let text: string;
  try {
    text = readFileSync(p.initPid, 'utf8').trim();
  } catch {
    return null;
  }
  return /^\d+$/.test(text) ? Number(text) : null;
}

export function launch(l: LaunchSpec, timeoutMs = 30_000): Launched {
  // crun writes init.pid once the system is set up, just before its program runs.
  return spawnSupervisor(l.paths.log, l.tools.unshare, launchArgv(l), timeoutMs, () => {
    const init = readInitPid(l.paths);
    if (!init) return null;
    const st = readStatSync(init);
    return { ok: true, init: { pid: init, startTime: st ? st.startTime : null } };
  }, () => ({ ok: false, init: null }));
}

/**
 * Spawns a supervisor (detached: its own session and process group, so our exit or a terminal hangup
 * does not reach it; stdout/stderr to the system's log; the fixed host environment) and watches for
 * readiness: `probe` each tick (a stat or two per millisecond costs less than a watcher's setup), and
 * `onExit(code)` once the supervisor has exited without `probe` saying ready.
 */
export function spawnSupervisor(log: string, cmd: string, args: string[], timeoutMs: number, probe: (pid: number) => Ready | null, onExit: (code: number | null) => Ready): Launched {
  const logFd = openSync(log, 'a', 0o640);
  let child;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', logFd, logFd], env: HOST_ENV, cwd: '/' });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (!pid) throw new RuntimeError('START_FAILED', `cannot spawn ${cmd}`);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve((exitCode = code))));
  const ready = (async (): Promise<Ready> => {
    const until = Date.now() + timeoutMs;
    for (let wait = 1; ; wait = Math.min(wait + 1, 3)) {
      const r = probe(pid);
      if (r) return r;
      if (exitCode !== undefined) return onExit(exitCode);
      if (Date.now() > until) return { ok: false, init: null };
      await sleep(wait); // ref'd: the caller awaits this (the child itself is unref'd)
    }
  })();
  child.on('error', () => {});
  child.unref();
  return { wrapperPid: pid, ready, exited, hold: (on) => (on ? child.ref() : child.unref()) };
}
