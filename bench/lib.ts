// Shared bits of the benchmark scripts: timing, percentiles, a printed table and a JSON result file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isNetworkError } from '../bin/lib/process-guard.ts';

export const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface Row { metric: string; value: number; unit: string; baseline?: number; note?: string }

/** Prints rows as a table (with the ratio to the baseline where given) and writes bench/results/<name>.json. */
export function report(name: string, rows: Row[], meta: Record<string, unknown> = {}): void {
  const fmt = (n: number) => (Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2)) : '-');
  const table = rows.map((r) => [r.metric, `${fmt(r.value)} ${r.unit}`, r.baseline !== undefined ? `${fmt(r.baseline)} ${r.unit}` : '', r.baseline ? `${(r.value / r.baseline).toFixed(2)}x` : '', r.note ?? '']);
  const head = ['metric', 'value', 'baseline', 'ratio', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of table) console.log(line(row));
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, date: new Date().toISOString(), ...meta, rows }, null, 2) + '\n');
  console.log(`\nwritten ${file}`);
}

/**
 * A bench never dies on a network error and never leaves processes, mounts or systems behind:
 * `cleanup` runs once, on a normal end (call the returned `done`), on SIGINT/SIGTERM, and on an
 * uncaught error. Network errors a library failed to handle (PouchDB's unguarded requests) are logged
 * and ignored, as the server and agent do (bin/lib/process-guard.ts).
 */
export function guardBench(name: string, cleanup: () => Promise<void>): { done: () => Promise<void> } {
  let ran: Promise<void> | null = null;
  const run = () => (ran ??= cleanup().catch((err) => console.error(`${name}: cleanup failed: ${(err as Error)?.stack ?? err}`)));
  const fatal = async (what: string, err: unknown) => {
    console.error(`${name}: ${what}: ${(err as Error)?.stack ?? err}`);
    await run();
    process.exit(1);
  };
  process.on('unhandledRejection', (reason) => {
    if (isNetworkError(reason)) console.error(`${name}: network error outside a handler (ignored): ${(reason as Error)?.message ?? reason}`);
    else void fatal('unhandled rejection', reason);
  });
  process.on('uncaughtException', (err) => {
    if (isNetworkError(err)) console.error(`${name}: network error outside a handler (ignored): ${err.message}`);
    else void fatal('uncaught exception', err);
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`${name}: ${sig}: cleaning up`);
      void run().then(() => process.exit(130));
    });
  }
  return { done: run };
}

/**
 * Resolves when `status:<name>` in `db` says running at `rev` (a longpoll on that one document).
 * `get(path)` reads the server's CouchDB API as an admin ({status, body}).
 */
export async function statusRunningAt(get: (path: string) => Promise<{ status: number; body: any }>, db: string, name: string, rev: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let since: unknown = 'now';
  const check = async () => {
    const r = await get(`/${db}/status:${name}`);
    return r.status === 200 && r.body.phase === 'running' && r.body.observedRev === rev;
  };
  if (await check()) return;
  while (Date.now() < end) {
    const r = await get(`/${db}/_changes?feed=longpoll&timeout=5000&filter=_doc_ids&doc_ids=${encodeURIComponent(JSON.stringify([`status:${name}`]))}&since=${encodeURIComponent(String(since))}`);
    if (r.status === 200) since = r.body.last_seq;
    if (await check()) return;
  }
  throw new Error(`status:${name} not running at ${rev} in ${timeoutMs} ms`);
}
