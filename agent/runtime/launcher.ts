// Start: one `unshare` that execs a tiny supervisor shell; the shell's first child becomes pid 1 of the
// new pid namespace, mounts the system's tree inside its own mount namespace, chroots and execs the
// init/command. The supervisor waits and writes the exit status: it is the only thing we keep alive per
// system (a dash process, well under 1 MiB), it is in its own session and survives us.
//
//   unshare --pid --mount --uts --ipc [--net] [--user --map-root-user] -- sh -c WRAPPER marker argv…
//     WRAPPER: write wrapper.stat; join cgroups; ( CHILD ) & ; wait; write exit
//     CHILD (pid 1, a forked subshell: no second exec of sh): lo up (in the background, beside the
//       mounts); mount -a -T fstab; hostname; tell us "ok <its /proc/self/stat>" on fd 3;
//       exec chroot ROOT argv…
// Every exec on this path costs about as much as the bare floor's chroot, so there are exactly three
// besides the system's own program: sh (the supervisor), mount, chroot — and ip, which runs in parallel.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { RuntimeError } from './errors.ts';
import { hideLine } from './mounts.ts';
import { prefixes, shq, under } from './paths.ts';
import { parseStat } from './proc.ts';
import type { ProcId, SystemPaths } from './state.ts';
import type { Tools } from './tools.ts';

export interface LaunchSpec {
  tools: Tools;
  paths: SystemPaths;
  /** Host template: mount the overlay first, then hide what the merged view shows of these paths. */
  hostPhase?: { overlayOptions: string; hides: string[] };
  hostname: string;
  network: 'none' | 'host';
  userns: boolean;
  argv: string[];
  workdir?: string;
  cgroupDirs: string[];
  /** Unique argv word of the supervisor, to find it again after a crash of ours. */
  marker: string;
  env: Record<string, string>;
}

/** Exit statuses of the supervisor chain that mean "failed before the system's own program ran". */
export const EXIT_SETUP_FAILED = 125;
export const EXIT_SUPERVISOR_FAILED = 126;

export function unshareArgs(l: LaunchSpec): string[] {
  const a = ['--pid', '--mount', '--uts', '--ipc', '--propagation', 'private'];
  if (l.network === 'none') a.push('--net');
  if (l.userns) a.push('--user', '--map-root-user');
  return a;
}

/** The script run as pid 1 of the new pid namespace until it execs the system (pure). */
export function childScript(l: LaunchSpec): string {
  const { tools: t, paths: p } = l;
  const R = p.rootfs;
  const fail = (what: string) => `{ echo ${shq(`anybios: ${what} failed`)} >&2; exit ${EXIT_SETUP_FAILED}; }`;
  const s: string[] = [];
  // Our host pid and start time: /proc is still the host's procfs here (the system's own is mounted at
  // ROOT/proc), so /proc/self is this process as the host sees it. Sent with "ok", for start's answer.
  s.push(`read -r anybios_self < /proc/self/stat`);
  // Bringing lo up needs a program (ip); it runs beside the mounts instead of after them.
  if (l.network === 'none') s.push(`${shq(t.ip ?? 'ip')} link set lo up & anybios_lo=$!`);
  if (l.hostPhase) {
    const run = `${p.fstab}.run`;
    s.push(`${shq(t.mount)} -t overlay -o ${shq(l.hostPhase.overlayOptions)} overlay ${shq(R)} || ${fail('overlay mount')}`);
    s.push(`: > ${shq(run)} || exit ${EXIT_SETUP_FAILED}`);
    for (const h of l.hostPhase.hides) {
      // Hide only what the merged view really shows at that path: every component a real directory.
      const checks = prefixes(h).map((x) => `[ ! -L ${shq(under(R, x))} ] && [ -d ${shq(under(R, x))} ]`);
      s.push(`if ${checks.join(' && ')}; then printf '%s\\n' ${shq(hideLine(R, h))} >> ${shq(run)}; fi`);
    }
    s.push(`while IFS= read -r l; do printf '%s\\n' "$l"; done < ${shq(p.fstab)} >> ${shq(run)}`);
    s.push(`${shq(t.mount)} -a -T ${shq(run)} || ${fail('mount')}`);
  } else {
    s.push(`${shq(t.mount)} -a -T ${shq(p.fstab)} || ${fail('mount')}`);
  }
  if (l.userns) s.push(`${shq(t.hostname ?? 'hostname')} ${shq(l.hostname)} || ${fail('hostname')}`);
  else s.push(`echo ${shq(l.hostname)} > /proc/sys/kernel/hostname || ${fail('hostname')}`);
  if (l.network === 'none') s.push(`wait $anybios_lo || ${fail('loopback')}`);
  // We may be gone (SIGKILL): a closed pipe must not kill the system, and SIGPIPE is reset before exec.
  s.push(`trap '' PIPE; printf 'ok %s\\n' "$anybios_self" >&3; trap - PIPE; exec 3>&-`);
  if (l.workdir) s.push(`exec ${shq(t.unshare)} --root=${shq(R)} --wd=${shq(l.workdir)} -- "$@"`);
  else s.push(`exec ${shq(t.chroot)} ${shq(R)} "$@"`);
  return s.join('\n');
}

/**
 * The supervisor script (pure). Only builtins after the fork: the dead pid namespace allows no more.
 * The child is a subshell, i.e. a fork of this shell without an exec: pid 1 of the new pid namespace.
 */
export function wrapperScript(l: LaunchSpec): string {
  const { tools: t, paths: p } = l;
  const s: string[] = [];
  // Its identity and its run ($0 is the marker): files of an earlier run are overwritten, not deleted first.
  s.push(`read -r s < /proc/self/stat && printf '%s\\n%s\\n' "$s" "$0" > ${shq(p.wrapperStat)} || exit ${EXIT_SUPERVISOR_FAILED}`);
  for (const d of l.cgroupDirs) {
    s.push(`echo $$ > ${shq(`${d}/cgroup.procs`)} || { echo ${shq(`anybios: cannot join cgroup ${d}`)} >&2; exit ${EXIT_SUPERVISOR_FAILED}; }`);
  }
  s.push(`(\n${childScript(l)}\n) &`);
  s.push(`exec 3>&-`);
  s.push(`wait $!`);
  s.push(`echo "$? $0" > ${shq(p.exit)}`);
  return s.join('\n');
}

export function launchArgv(l: LaunchSpec): string[] {
  return [...unshareArgs(l), '--', l.tools.sh, '-c', wrapperScript(l), l.marker, ...l.argv];
}

export interface Launched {
  /** pid of the supervisor (unshare execs into it, so it is the spawned pid). */
  wrapperPid: number;
  /** When the system's program is about to be exec'd (ok, with pid 1's host identity), or setup failed. */
  ready: Promise<Ready>;
  /** Resolves with the supervisor's exit code when it is our child and exits (fast path for waits). */
  exited: Promise<number | null>;
  /** Keep our process alive while waiting for `exited` (the child is unref'd otherwise). */
  hold(on: boolean): void;
}

export interface Ready {
  ok: boolean;
  /** The system's pid 1 as the host sees it (from the "ok" line). */
  init: ProcId | null;
}

/** The readiness line of the child: "ok <its /proc/self/stat line>". */
export function parseReady(got: string): Ready {
  if (!got.startsWith('ok')) return { ok: false, init: null };
  const st = parseStat(got.slice(2).trim());
  return { ok: true, init: st ? { pid: st.pid, startTime: st.startTime } : null };
}

export function launch(l: LaunchSpec, timeoutMs = 30_000): Launched {
  const logFd = openSync(l.paths.log, 'a', 0o640);
  let child;
  try {
    child = spawn(l.tools.unshare, launchArgv(l), {
      detached: true, // own session and process group: our exit or a terminal hangup does not reach it
      stdio: ['ignore', logFd, logFd, 'pipe'],
      env: l.env,
      cwd: '/',
    });
  } finally {
    closeSync(logFd);
  }
  const pid = child.pid;
  if (!pid) throw new RuntimeError('START_FAILED', `cannot spawn ${l.tools.unshare}`);
  const pipe = child.stdio[3] as Readable;
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const ready = new Promise<Ready>((resolve) => {
    let got = '';
    const timer = setTimeout(() => {
      pipe.destroy();
      resolve({ ok: false, init: null });
    }, timeoutMs);
    pipe.on('data', (b: Buffer) => {
      got += b.toString();
      if (got.includes('\n')) {
        clearTimeout(timer);
        pipe.destroy();
        resolve(parseReady(got));
      }
    });
    pipe.on('error', () => {});
    pipe.on('close', () => {
      clearTimeout(timer);
      resolve(parseReady(got));
    });
  });
  child.on('error', () => {});
  child.unref();
  (pipe as unknown as { unref?: () => void }).unref?.();
  return { wrapperPid: pid, ready, exited, hold: (on) => (on ? child.ref() : child.unref()) };
}
