// On-disk state of one system under <data>/systems/<name>/, and a per-system lock across processes.
//
// Files (all ours):  state.json  applied spec, rev, phase, supervisor identity (atomic tmp+rename)
//                    upper/ work/  overlay layers (copy strategy: upper/ is the full copy)
//                    rootfs/       mount point; mounts exist only inside the system's mount namespace
//                    dev/          the minimal /dev skeleton, recreated at each start
//                    fstab         mounts done inside the namespace at start
//                    log, log.1    stdout+stderr of the system, size-capped
//                    wrapper.stat  /proc/self/stat line written by the supervisor shell itself
//                    exit          exit status written by the supervisor shell
import { promises as fsp, constants as fsc } from 'node:fs';
import type { SystemDoc } from '../../ddocs/schemas/types.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { readIfExists, writeAtomic } from './paths.ts';
import { isSameProcess, readStat, sleep } from './proc.ts';
import type { ResolvedTemplate } from './templates.ts';

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
  userns: boolean;
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
  dev: string;
  fstab: string;
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
    dev: `${dir}/dev`,
    fstab: `${dir}/fstab`,
    log: `${dir}/log`,
    wrapperStat: `${dir}/wrapper.stat`,
    exit: `${dir}/exit`,
  };
}

export async function readState(p: SystemPaths): Promise<SystemState | null> {
  const text = await readIfExists(p.state);
  if (text === null) return null;
  try {
    return JSON.parse(text) as SystemState;
  } catch {
    return null; // impossible with atomic writes; treat like no state
  }
}

export async function writeState(p: SystemPaths, s: SystemState): Promise<void> {
  await writeAtomic(p.state, JSON.stringify(s, null, 1) + '\n');
}

/** The exit status the supervisor wrote, or null (not yet, or it died before writing). */
export async function readExit(p: SystemPaths): Promise<number | null> {
  const t = await readIfExists(p.exit);
  if (t === null || !/^\d+\s*$/.test(t)) return null;
  return Number.parseInt(t, 10);
}

export async function readWrapperStat(p: SystemPaths): Promise<ProcId | null> {
  const t = await readIfExists(p.wrapperStat);
  if (!t) return null;
  const m = /^(\d+) /.exec(t);
  if (!m) return null;
  const close = t.lastIndexOf(')');
  const f = t.slice(close + 2).trim().split(' ');
  const startTime = Number(f[19]);
  return Number.isFinite(startTime) ? { pid: Number(m[1]), startTime } : null;
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
    await fsp.mkdir(`${dataDir}/locks`, { recursive: true });
    const me = await readStat(process.pid);
    const token = `${process.pid} ${me?.startTime ?? 0}\n`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
        await fh.writeFile(token);
        await fh.close();
        break;
      } catch (e) {
        if (errnoOf(e) !== 'EEXIST') throw e;
      }
      const owner = (await readIfExists(file)) ?? '';
      const [pid, st] = owner.trim().split(' ').map(Number);
      // An empty lock file is one whose writer died between create and write.
      const alive = pid && st !== undefined ? await isSameProcess(pid, st) : false;
      if (!alive && (owner !== '' || (await lockAgeMs(file)) > 2000)) {
        await fsp.rm(file, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new RuntimeError('BUSY', `system ${name} is locked by process ${pid}`);
      await sleep(20);
    }
    try {
      return await fn();
    } finally {
      await fsp.rm(file, { force: true });
    }
  } finally {
    release();
    if (held.get(key) === chained) held.delete(key);
  }
}

async function lockAgeMs(file: string): Promise<number> {
  try {
    return Date.now() - (await fsp.stat(file)).mtimeMs;
  } catch {
    return Infinity;
  }
}
