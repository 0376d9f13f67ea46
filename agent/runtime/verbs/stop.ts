// Verbs `stop` and `destroy`: the init's halt signal (SIGTERM for a plain program) to the system's pid 1,
// SIGKILL after the grace time, cgroups removed; destroy also removes the system's directory (and its
// volumes when asked) and gives its id range back.
import type { RuntimeContext } from '../context.ts';
import { removeCgroups } from '../cgroups.ts';
import { RuntimeError, errnoOf } from '../errors.ts';
import { removeTree } from '../fs-util.ts';
import { checkName } from '../inputs.ts';
import { volumeDir } from '../materialize.ts';
import { initOf, liveSupervisor, observeState, type Observed } from '../observe.ts';
import { isInside, mountPoints } from '../paths.ts';
import { childrenFileSync, isSameProcess, killGroupExcept, sleep } from '../proc.ts';
import { readlinkSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { readState, stageDirOf, withLock, writeState } from '../state.ts';
import { run } from '../tools.ts';
import { releaseIdRange } from '../id-ranges.ts';

export async function stop(ctx: RuntimeContext, name: string, opts: { graceMs?: number } = {}): Promise<Observed | null> {
  checkName(name);
  return withLock(ctx.dataDir, name, () => stopLocked(ctx, name, opts.graceMs ?? 10_000));
}

export async function destroy(ctx: RuntimeContext, name: string, opts: { volumes?: boolean; graceMs?: number } = {}): Promise<void> {
  checkName(name);
  await withLock(ctx.dataDir, name, async () => {
    const paths = ctx.pathsOf(name);
    const s = await readState(paths);
    if (s) await stopLocked(ctx, name, opts.graceMs ?? 10_000);
    // We never mount in the host namespace; anything found here is not from a clean run: unmount it.
    const stray = (await mountPoints()).filter((m) => isInside(m, paths.dir)).reverse();
    for (const m of stray) await run('umount', ['-l', m]);
    if (opts.volumes && s?.spec.mounts) {
      for (const m of s.spec.mounts) {
        const dir = await volumeDir(ctx.volumeRoot, m.volume, false).catch(() => null);
        if (dir) await removeTree(dir);
      }
    }
    await removeTree(paths.dir);
    releaseIdRange(ctx.dataDir, name);
    // An empty mount point (mounted only inside the system), and its tag's directory once empty.
    await rmdir(stageDirOf(ctx.tag, name)).catch(() => {});
    await rmdir(stageDirOf(ctx.tag, name).replace(/\/[^/]+$/, '')).catch(() => {});
    ctx.spawned.delete(name);
  });
}

/** Stop (the caller holds the lock): the system exits, its cgroups are removed, the state says stopped. */
async function stopLocked(ctx: RuntimeContext, name: string, graceMs: number): Promise<Observed | null> {
  const paths = ctx.pathsOf(name);
  const s = await readState(paths);
  if (!s) return null;
  ctx.trace('begin');
  const sup = await liveSupervisor(paths, s);
  if (sup) {
    s.stopRequested = true;
    s.wrapper = sup;
    await writeState(paths, s);
    const init = initOf(paths, sup);
    // Under proot there is no pid namespace to end with the init: once the init has exited, what it
    // left in the supervisor's process group is killed (not proot, which then exits with the init's status).
    const proot = s.launcher === 'proot';
    // A supervisor this process spawned wakes us the moment it exits (an edit's restart waits here);
    // others are polled in /proc every 10 ms.
    const mine = ctx.spawned.get(name);
    const exited = mine?.wrapperPid === sup.pid ? mine.exited : null;
    const gone = async (ms: number) => {
      const until = Date.now() + ms;
      for (;;) {
        if (!(await isSameProcess(sup.pid, sup.startTime))) return true;
        if (proot && !(init && (await isSameProcess(init.pid, init.startTime)))) await killGroupExcept(sup.pid, [sup.pid, ...(childrenFileSync(sup.pid) ?? [])]);
        if (Date.now() >= until) return false;
        if (exited) {
          mine!.hold(true);
          await Promise.race([exited, sleep(10)]).finally(() => mine!.hold(false));
        } else await sleep(10);
      }
    };
    const signal = async (sig: NodeJS.Signals | number) => {
      if (init && (await isSameProcess(init.pid, init.startTime))) {
        try {
          process.kill(init.pid, sig);
        } catch (e) {
          if (errnoOf(e) !== 'ESRCH') throw e;
        }
      }
    };
    // An init's own "halt" (systemd: SIGRTMIN+3; busybox init: SIGUSR2, poweroff — its SIGTERM reboots).
    const halt = init ? haltSignal(init.pid) : 'SIGTERM';
    // Sent again each second of the grace: an init ignores signals it has no handler for yet (pid 1),
    // so one sent in its first milliseconds is lost.
    let left = graceMs;
    let stopped = false;
    while (!stopped && left > 0) {
      await signal(halt);
      stopped = await gone(Math.min(1000, left));
      left -= 1000;
    }
    if (!stopped) {
      ctx.say(`${name}: no exit ${graceMs} ms after SIGTERM, sending SIGKILL`);
      await signal('SIGKILL');
      if (!(await gone(5000))) {
        if (await isSameProcess(sup.pid, sup.startTime)) process.kill(sup.pid, 'SIGKILL');
        if (!(await gone(2000))) throw new RuntimeError('STOP_FAILED', `${name}: supervisor ${sup.pid} still alive after SIGKILL`);
      }
    }
  }
  ctx.trace('stop:exited');
  await removeCgroups(s.cgroups);
  if (s.phase === 'starting' || s.phase === 'running' || sup) {
    s.phase = 'stopped';
    s.stopRequested = true;
  }
  s.cgroups = [];
  await writeState(paths, s);
  return observeState(paths, s);
}

/** SIGRTMIN (34 on Linux) + 3: systemd's "halt". */
const SIGRTMIN_PLUS_3 = 37;

/** The signal that asks this init to power off: by the program it runs (its executable's name). */
export function haltSignal(pid: number): NodeJS.Signals | number {
  let exe = '';
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return 'SIGTERM';
  }
  const prog = exe.slice(exe.lastIndexOf('/') + 1).replace(/ \(deleted\)$/, '');
  if (prog === 'systemd') return SIGRTMIN_PLUS_3;
  if (prog === 'busybox') return 'SIGUSR2';
  return 'SIGTERM';
}
