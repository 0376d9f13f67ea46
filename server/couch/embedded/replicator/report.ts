// What `_scheduler/jobs`, `_scheduler/docs` and `_active_tasks` say about replication jobs: CouchDB 3.5's
// row shapes (couch_replicator_scheduler job_ejson, couch_replicator_doc_processor ejson_doc,
// couch_replicator_scheduler_job task fields), checked against a real CouchDB 3.5.0. URLs are shown
// without credentials.
import { NODE_NAME } from '../node-name.ts';
import { parseEndpoint, showEndpoint } from './endpoint.ts';
import type { ReplicationJob } from './job.ts';

export const REPLICATOR_DB = '_replicator';

/** One `_replicator` document as the scheduler knows it. */
export interface DocEntry {
  docId: string;
  owner: string | null;
  job?: ReplicationJob;
  /** For a document not running: why (`completed`, `failed`) and what it reported. */
  state?: 'completed' | 'failed';
  reason?: string;
  stats?: Record<string, unknown> | null;
  specHash?: string;
  /** Source and target without credentials, for the rows of documents not running. */
  shown?: { source: string | null; target: string | null };
  startTime: number;
  lastUpdated: number;
}

/** CouchDB's timestamps: ISO 8601 to the second. */
export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function jobRow(j: ReplicationJob): Record<string, unknown> {
  return {
    id: j.id,
    pid: j.pid,
    source: j.sourceShown,
    target: j.targetShown,
    database: j.origin.database,
    user: j.origin.user,
    doc_id: j.origin.docId,
    info: infoOf(j),
    history: j.history,
    node: NODE_NAME,
    start_time: iso(j.startTime),
  };
}

export function docRow(e: DocEntry): Record<string, unknown> {
  const j = e.job;
  if (j && j.state !== 'completed') {
    return {
      doc_id: e.docId,
      database: REPLICATOR_DB,
      id: j.id,
      node: NODE_NAME,
      source: j.sourceShown,
      target: j.targetShown,
      state: j.state,
      info: infoOf(j),
      error_count: j.errorCount,
      last_updated: iso(j.lastUpdated),
      start_time: iso(j.startTime),
      source_proxy: null,
      target_proxy: null,
    };
  }
  const completed = e.state === 'completed' || j?.state === 'completed';
  return {
    doc_id: e.docId,
    database: REPLICATOR_DB,
    id: null,
    ...(e.shown ?? (j ? { source: j.sourceShown, target: j.targetShown } : {})),
    state: completed ? 'completed' : 'failed',
    error_count: completed ? 0 : 1,
    info: completed ? (e.stats ?? (j ? statsOf(j) : null)) : { error: e.reason ?? 'failed' },
    start_time: iso(e.startTime),
    last_updated: iso(e.lastUpdated),
  };
}

export function taskRow(j: ReplicationJob): Record<string, unknown> {
  return {
    node: NODE_NAME,
    pid: j.pid ?? '<anybios>',
    type: 'replication',
    user: j.origin.user,
    replication_id: j.id,
    database: j.origin.database,
    doc_id: j.origin.docId,
    source: j.sourceShown,
    target: j.targetShown,
    continuous: j.spec.continuous,
    source_seq: j.stats.source_seq,
    checkpoint_interval: 30000,
    ...statsOf(j),
    process_status: j.stats.changes_pending ? 'running' : 'waiting',
    started_on: Math.floor((j.runStartedAt ?? j.startTime) / 1000),
    updated_on: Math.floor(j.lastUpdated / 1000),
  };
}

/** A stored endpoint as `_scheduler/docs` shows it: its URL without credentials, or null. */
export function shownEndpoint(v: unknown): string | null {
  try {
    return showEndpoint(parseEndpoint(v, 'source'));
  } catch {
    return null; // as CouchDB: nothing of a malformed URL is shown (it may hold a password)
  }
}

export function statsOf(j: ReplicationJob): Record<string, unknown> {
  const s = j.stats;
  return {
    revisions_checked: s.revisions_checked,
    missing_revisions_found: s.missing_revisions_found,
    docs_read: s.docs_read,
    docs_written: s.docs_written,
    changes_pending: s.changes_pending,
    doc_write_failures: s.doc_write_failures,
    bulk_get_docs: 0,
    bulk_get_attempts: 0,
    checkpointed_source_seq: s.checkpointed_source_seq,
    source_seq: s.source_seq,
    through_seq: s.through_seq,
  };
}

function infoOf(j: ReplicationJob): Record<string, unknown> | null {
  if (j.state === 'crashing' || j.state === 'failed') return { error: j.lastError ?? 'error' };
  if (j.state === 'initializing') return null;
  return statsOf(j);
}
