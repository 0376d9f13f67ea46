// Verbs `observe`, `list` and `wait`: what systems are doing, from their state files and /proc (see
// ../observe.ts); observing a system also keeps its log cap.
import { promises as fsp, statSync } from 'node:fs';
import { NAME_RE } from '../../../ddocs/schemas/index.ts';
import type { RuntimeContext } from '../context.ts';
import { RuntimeError } from '../errors.ts';
import { rotateLog } from '../logs.ts';
import { observeState, type Observed } from '../observe.ts';
import { diskUsage } from '../paths.ts';
import { sleep, sleepUnref } from '../proc.ts';
import { readStateSync } from '../state.ts';

export async function observe(ctx: RuntimeContext, name: string, opts: { diskUsage?: boolean } = {}): Promise<Observed | null> {
  return observeOne(ctx, name, opts.diskUsage ?? true);
}

export async function list(ctx: RuntimeContext, opts: { diskUsage?: boolean } = {}): Promise<Observed[]> {
  const names = (await fsp.readdir(`${ctx.dataDir}/systems`)).filter((n) => NAME_RE.test(n)).sort();
  const out: Observed[] = [];
  for (const n of names) {
    const o = await observeOne(ctx, n, opts.diskUsage ?? true);
    if (o) out.push(o);
  }
  return out;
}

/** Resolves with the exit code once the system is no longer running (null: exit not recorded). */
export async function wait(ctx: RuntimeContext, name: string, opts: { timeoutMs?: number } = {}): Promise<number | null> {
  const paths = ctx.pathsOf(name);
  const until = Date.now() + (opts.timeoutMs ?? 2 ** 31 - 1);
  const mine = ctx.spawned.get(name);
  if (mine) {
    const s = readStateSync(paths);
    if (s?.wrapper?.pid === mine.wrapperPid) {
      mine.hold(true);
      try {
        await Promise.race([mine.exited, sleepUnref(Math.max(0, until - Date.now()))]);
      } finally {
        mine.hold(false);
      }
    }
  }
  for (;;) {
    const s = readStateSync(paths);
    if (!s) return null;
    const o = await observeState(paths, s);
    if (o.phase !== 'running') return o.exitCode;
    if (Date.now() > until) throw new RuntimeError('RUNNING', `system ${name} still running`);
    await sleep(20);
  }
}

export async function observeOne(ctx: RuntimeContext, name: string, withDisk: boolean): Promise<Observed | null> {
  const paths = ctx.pathsOf(name);
  const s = readStateSync(paths);
  if (!s) return null;
  const o = await observeState(paths, s);
  await rotateIfOver(ctx, paths.log);
  if (withDisk) o.diskUsed = await diskUsage(paths.upper);
  return o;
}

/** Keep the log cap (a stat; the copy only when over the cap). */
export async function rotateIfOver(ctx: RuntimeContext, log: string): Promise<void> {
  let size = 0;
  try {
    size = statSync(log).size;
  } catch {
    return;
  }
  if (size > ctx.logMaxBytes) await rotateLog(log, ctx.logMaxBytes).catch(() => false);
}
