// What a status document says, computed purely from the facts of one pass. Written only when it
// differs from the stored one in a field that matters (not `updated`, and the log tail and disk use
// only ride along with a real change or every `refreshMs`), so an idle node makes no write storm.
import type { StatusDoc, Phase } from '../../ddocs/schemas/types.ts';
import type { Applied, DesiredSystem } from '../model/types.ts';
import type { Observed } from '../runtime/index.ts';
import { historyLimit, nextHistory } from './history.ts';

export interface LastError { hash: string; code: string; message: string; at: number }

export interface StatusFacts {
  name: string;
  desired: DesiredSystem;
  observed: Observed | undefined;
  applied: Applied | undefined;
  /** The runtime hash of the desired spec (null when it cannot be computed: template missing). */
  hash: string | null;
  lastError: LastError | undefined;
  terminal: { rev: string; code: string; message?: string } | undefined;
  waitingUntil: number | undefined;
  logTail: string;
  now: number;
  /** The stored status (its history is carried on), and how many transitions to keep (default 20). */
  previous?: StatusDoc | null;
  historyLimit?: number;
}

export function statusFor(f: StatusFacts): StatusDoc {
  const { desired: d, observed: o } = f;
  const rev = d.spec._rev;
  const running = o?.phase === 'running';
  let phase: Phase;
  let code: string | null = null;
  let message = '';
  // A template found missing once is no verdict once it has arrived (the gate speaks for it now).
  if (f.terminal && f.terminal.rev === rev && !running && !(f.terminal.code === 'TEMPLATE_MISSING' && d.template)) {
    phase = 'failed';
    code = f.terminal.code;
    message = f.terminal.message ?? '';
  } else if (running) {
    phase = 'running';
  } else if (o?.phase === 'materializing') {
    phase = 'materializing';
  } else if (d.spec.state === 'stopped') {
    phase = 'stopped';
  } else if (d.blocked) {
    phase = d.blocked.code ? 'failed' : 'pending';
    code = d.blocked.code;
    message = d.blocked.message;
  } else if (f.lastError && f.lastError.hash === f.hash) {
    phase = 'failed';
    code = f.lastError.code;
    message = f.lastError.message;
  } else if (!o) {
    phase = 'pending';
  } else if (o.phase === 'failed' || (o.exitCode !== null && o.exitCode !== 0)) {
    phase = 'failed';
    code = o.code ?? 'EXITED';
    message = o.message ?? `exited with code ${o.exitCode}`;
  } else {
    phase = 'stopped';
    message = o.exitCode === 0 ? 'exited with code 0' : '';
  }
  if (f.waitingUntil && !running) message = `${message ? message + '; ' : ''}next start in ${Math.ceil((f.waitingUntil - f.now) / 1000)} s (back-off)`;
  // The spec revision this status speaks for: what we applied, or the stopped spec itself.
  const observedRev = running || o?.phase === 'materializing' ? f.applied?.rev ?? o?.specRev ?? null : d.spec.state === 'stopped' ? rev : f.applied?.rev ?? (f.terminal?.rev === rev ? rev : null);
  const doc: StatusDoc = {
    _id: `status:${f.name}`,
    type: 'status',
    name: f.name,
    phase,
    observedRev,
    pid: running ? o?.pid ?? null : null,
    exitCode: o?.exitCode ?? null,
    restarts: o?.restarts ?? 0,
    code,
    message: message.slice(0, 4096),
    diskUsed: o?.diskUsed ?? null,
    logTail: f.logTail.slice(-4096),
    conflict: d.conflict,
    updated: new Date(f.now).toISOString(),
  };
  doc.history = nextHistory(f.previous ?? null, doc, historyLimit(f.historyLimit));
  return doc;
}

const VOLATILE = new Set(['_id', '_rev', 'updated', 'logTail', 'diskUsed']);

/** Whether `next` must be written over `current` (null: none stored yet). */
export function statusChanged(current: StatusDoc | null, next: StatusDoc, now: number, refreshMs = 300_000): boolean {
  if (!current) return true;
  for (const k of Object.keys(next) as (keyof StatusDoc)[]) {
    if (VOLATILE.has(k)) continue;
    if (JSON.stringify(current[k] ?? null) !== JSON.stringify(next[k] ?? null)) return true;
  }
  for (const k of Object.keys(current) as (keyof StatusDoc)[]) if (!VOLATILE.has(k) && !(k in next)) return true;
  return now - Date.parse(current.updated) >= refreshMs;
}
