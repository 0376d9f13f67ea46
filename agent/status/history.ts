// The bounded history of a status document's phase transitions, as a pure function: the previous
// status and the next one give the next history. A node offline for a week keeps writing its status
// locally; replication (or a bundle) later carries only the latest revision's body, so what happened
// meanwhile must ride inside the document itself.
import type { StatusDoc, StatusHistoryEntry } from '../../ddocs/schemas/types.ts';
import { STATUS_HISTORY_MAX } from '../../ddocs/schemas/status.ts';

export const DEFAULT_STATUS_HISTORY = 20;

/** `limit` clamped to what the schema allows (0 keeps no history). */
export function historyLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_STATUS_HISTORY;
  return Math.max(0, Math.min(STATUS_HISTORY_MAX, Math.floor(limit)));
}

/**
 * The history `next` should carry: the previous one, plus an entry when the phase or the error code
 * changed (a transition), newest `limit` kept. Anything but a transition leaves it as it was, so the
 * history never causes a status write of its own.
 */
export function nextHistory(previous: StatusDoc | null, next: StatusDoc, limit: number): StatusHistoryEntry[] {
  const before = Array.isArray(previous?.history) ? previous.history : [];
  const transition = !previous || previous.phase !== next.phase || (previous.code ?? null) !== (next.code ?? null);
  const out = transition
    ? [...before, { at: next.updated, phase: next.phase, exitCode: next.exitCode ?? null, code: next.code ?? null, message: (next.message ?? '').slice(0, 512) }]
    : before;
  return limit > 0 ? out.slice(-limit) : [];
}
