// Process facts from /proc: identity is pid *and* start time, so a reused pid is never mistaken for ours.
import { promises as fsp, readFileSync } from 'node:fs';
import { errnoOf } from './errors.ts';

export interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
  /** Clock ticks since boot (field 22 of /proc/<pid>/stat). */
  startTime: number;
  /** Process group. */
  pgrp?: number;
}

/** Parse one /proc/<pid>/stat line (the comm field may hold spaces and parentheses). */
export function parseStat(line: string): ProcStat | null {
  const close = line.lastIndexOf(')');
  if (close < 0) return null;
  const pid = Number.parseInt(line, 10);
  const rest = line.slice(close + 2).trim().split(' ');
  const ppid = Number(rest[1]);
  const startTime = Number(rest[19]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || !Number.isFinite(startTime) || rest.length < 20) return null;
  return { pid, ppid, state: rest[0]!, startTime, pgrp: Number(rest[2]) };
}

export async function readStat(pid: number): Promise<ProcStat | null> {
  return readStatSync(pid);
}

/** One read of /proc/<pid>/stat (synchronous: procfs answers at once, no thread-pool round trip). */
export function readStatSync(pid: number): ProcStat | null {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (e) {
    if (['ENOENT', 'ESRCH', 'EINVAL'].includes(errnoOf(e) ?? '')) return null;
    throw e;
  }
}

/** Alive and the same process (not a zombie, same start time). */
export async function isSameProcess(pid: number, startTime: number): Promise<boolean> {
  return isSameProcessSync(pid, startTime);
}

export function isSameProcessSync(pid: number, startTime: number): boolean {
  const st = readStatSync(pid);
  return !!st && st.startTime === startTime && st.state !== 'Z' && st.state !== 'X';
}

/** Direct children of a process (one thread's children file, then a /proc scan as a fallback). */
export async function childrenOf(pid: number): Promise<number[]> {
  const direct = childrenFileSync(pid);
  if (direct) return direct;
  const out: number[] = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStatSync(Number(name));
    if (st && st.ppid === pid) out.push(st.pid);
  }
  return out;
}

/** The children file of a process's main thread (null when it cannot be read: gone, or no such file). */
export function childrenFileSync(pid: number): number[] | null {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return null;
  }
}

/** Processes whose argv contains `marker` as one whole argument. */
export async function findByArg(marker: string): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = (await fsp.readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (!argv.includes(marker)) continue;
      const st = await readStat(Number(name));
      if (st && st.state !== 'Z') out.push(st);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Memory of one process: RSS and PSS (proportional share, counts shared libraries fairly), bytes. */
export async function memoryOf(pid: number): Promise<{ rss: number; pss: number; privateBytes: number } | null> {
  try {
    const text = await fsp.readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
    return { rss: kb('Rss'), pss: kb('Pss'), privateBytes: kb('Private_Clean') + kb('Private_Dirty') };
  } catch {
    return null;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A sleep that does not keep the process alive (for races against another promise). */
export const sleepUnref = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.min(ms, 2 ** 31 - 1)).unref());

/** SIGKILL every process of a process group but those kept (proot systems: what their init left behind). */
export async function killGroupExcept(pgrp: number, keep: number[]): Promise<number> {
  let killed = 0;
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStatSync(Number(name));
    if (!st || st.pgrp !== pgrp || keep.includes(st.pid)) continue;
    try {
      process.kill(st.pid, 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}
