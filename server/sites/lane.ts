// What a site link replicates per database and direction (a "lane"), and how its state is reported.
import { CouchHttpError } from './couch-http.ts';

export type Direction = 'push' | 'pull';

export interface LaneStatus {
  state: 'idle' | 'syncing' | 'waiting' | 'error';
  /** Source changes not yet replicated (the replicator's `changes_pending`; null: unknown). */
  pending: number | null;
  lastSync: string | null;
  lastError: string | null;
  docsWritten: number;
  docWriteFailures: number;
}

/** The node users: `org.couchdb.user:node-*` (`.` sorts right after `-`). */
export const NODE_USERS_SELECTOR = { _id: { $gt: 'org.couchdb.user:node-', $lt: 'org.couchdb.user:node.' } };

export function describe(err: unknown): string {
  if (err instanceof CouchHttpError) return err.message;
  const e = err as { status?: number; name?: string; reason?: string; message?: string; error?: string | boolean } | undefined;
  if (!e) return 'unknown error';
  const what = e.reason ?? e.message ?? (typeof e.error === 'string' ? e.error : '') ?? '';
  return `${e.status ? `${e.status} ` : ''}${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${what || JSON.stringify(e).slice(0, 200)}`;
}
