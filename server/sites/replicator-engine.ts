// Site links on both back ends: CouchDB's replicator does the work — the embedded server's own
// (server/couch/embedded/replicator/) or Apache CouchDB's (COUCH_URL). One `_replicator` document per
// database and direction (`continuous: true`, no `create_target`: a job must not recreate a node
// database deleted meanwhile; the credentials in Authorization headers), named
// `anybios-site-<link>-<push|pull>-<db>`; the state of each comes from `_scheduler/docs/_replicator`.
// The replicator restarts crashed jobs with its own back-off and brings them back after a restart, each
// from its checkpoints; unlinking deletes the documents. Run against Apache CouchDB 3.5.0 (single node
// and a 3-node cluster: test/server/sites-couchdb.test.ts with COUCH_URL).
import { createHash } from 'node:crypto';
import { CouchHttp, CouchHttpError, basicHeader } from './couch-http.ts';
import { NODE_USERS_SELECTOR, describe, type Direction, type LaneStatus } from './lane.ts';

interface SchedulerDoc {
  doc_id: string;
  state: 'initializing' | 'running' | 'pending' | 'crashing' | 'error' | 'failed' | 'completed' | string;
  error_count?: number;
  last_updated?: string;
  info?: { changes_pending?: number | null; docs_written?: number; doc_write_failures?: number; error?: string; source_seq?: unknown; through_seq?: unknown } | null;
}

/**
 * Changes a job has still to replicate. Apache CouchDB 3.5 leaves `changes_pending` null on a running
 * job until it has a figure (seen on caught-up continuous jobs): one whose `through_seq` has reached the
 * source's `source_seq` has none; otherwise the number is unknown (null), never taken for 0.
 */
function pendingOf(s: SchedulerDoc | undefined): number | null {
  const info = s?.info;
  if (!info) return null;
  if (typeof info.changes_pending === 'number') return info.changes_pending;
  if (s!.state === 'running' && info.source_seq !== undefined && JSON.stringify(info.through_seq) === JSON.stringify(info.source_seq)) return 0;
  return null;
}

interface Job { db: string; dir: Direction; id: string; hash: string; seen?: SchedulerDoc; caughtUpAt: number | null }

export interface ReplicatorEngineOptions {
  linkId: string;
  /** Our CouchDB (COUCH_URL without credentials) as CouchDB's replicator reaches it, and its admin. */
  local: CouchHttp;
  remote: CouchHttp;
  log?: (msg: string) => void;
}

const REPLICATOR = '_replicator';

export class ReplicatorEngine {
  private readonly jobs = new Map<string, Job>();
  private readonly prefix: string;

  constructor(private readonly opts: ReplicatorEngineOptions) {
    this.prefix = `anybios-site-${opts.linkId}-`;
  }

  // The replicator runs the jobs: nothing to start, and stopping the link leaves them to it (unlink removes them).
  start(): void {}
  async stop(): Promise<void> {}

  private docId(db: string, dir: Direction): string {
    return `${this.prefix}${dir}-${db}`;
  }

  private endpoint(http: CouchHttp, db: string) {
    return { url: `${http.url}/${encodeURIComponent(db)}`, headers: { Authorization: basicHeader(http.auth) } };
  }

  private replicationDoc(db: string, dir: Direction): Record<string, unknown> {
    const { local, remote } = this.opts;
    const [from, to] = dir === 'push' ? [local, remote] : [remote, local];
    return {
      source: this.endpoint(from, db),
      target: this.endpoint(to, db),
      continuous: true,
      // No create_target: the link makes a database at the other side before replicating into it, and a
      // continuous job told to create its target brought back a node database removed at either side.
      ...(db === '_users' ? { selector: NODE_USERS_SELECTOR } : {}),
      anybios_site: { link: this.opts.linkId, db, dir },
    };
  }

  /** Writes the `_replicator` documents of `db` unless they are there with the same content. */
  async ensure(db: string): Promise<void> {
    await this.opts.local.createDb(REPLICATOR).catch(() => false);
    for (const dir of ['push', 'pull'] as const) {
      const id = this.docId(db, dir);
      const body = this.replicationDoc(db, dir);
      const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
      const known = this.jobs.get(id);
      if (known?.hash === hash) continue;
      let rev: string | undefined;
      let same = false;
      try {
        const cur = await this.opts.local.get<{ _rev: string; anybios_hash?: string }>(`/${REPLICATOR}/${encodeURIComponent(id)}`);
        rev = cur._rev;
        same = cur.anybios_hash === hash;
      } catch (err) {
        if (!(err instanceof CouchHttpError && err.status === 404)) throw err;
      }
      // Updating a replication document restarts its job (what a new password or URL needs).
      if (!same) await this.opts.local.put(`/${REPLICATOR}/${encodeURIComponent(id)}`, { ...body, anybios_hash: hash, ...(rev ? { _rev: rev } : {}) });
      this.jobs.set(id, { db, dir, id, hash, seen: known?.seen, caughtUpAt: known?.caughtUpAt ?? null });
    }
  }

  /** Stops replicating `db` (its documents are deleted). */
  async drop(db: string): Promise<void> {
    for (const dir of ['push', 'pull'] as const) {
      const id = this.docId(db, dir);
      await this.deleteDoc(id);
      this.jobs.delete(id);
    }
  }

  dbs(): string[] { return [...new Set([...this.jobs.values()].map((j) => j.db))]; }

  private async deleteDoc(id: string, local = this.opts.local): Promise<void> {
    try {
      const cur = await local.get<{ _rev: string }>(`/${REPLICATOR}/${encodeURIComponent(id)}`);
      await local.delete(`/${REPLICATOR}/${encodeURIComponent(id)}?rev=${encodeURIComponent(cur._rev)}`);
    } catch (err) {
      if (!(err instanceof CouchHttpError && err.status === 404)) throw err;
    }
  }

  /** Deletes every `_replicator` document of this link (unlink), including ones from earlier runs. */
  async removeAll(local = this.opts.local): Promise<void> {
    const rows = await local.get<{ rows: { id: string }[] }>(
      `/${REPLICATOR}/_all_docs?startkey=${encodeURIComponent(JSON.stringify(this.prefix))}&endkey=${encodeURIComponent(JSON.stringify(this.prefix + '\ufff0'))}`,
    ).catch((err) => {
      if (err instanceof CouchHttpError && err.status === 404) return { rows: [] };
      throw err;
    });
    for (const r of rows.rows) await this.deleteDoc(r.id, local);
    this.jobs.clear();
  }

  /** Reads the jobs' states from `_scheduler/docs` (called by the link's sweep). */
  async refresh(): Promise<void> {
    const now = Date.now();
    for (let skip = 0; ; skip += 500) {
      const page = await this.opts.local.get<{ docs: SchedulerDoc[]; total_rows?: number }>(`/_scheduler/docs/${REPLICATOR}?limit=500&skip=${skip}`);
      for (const d of page.docs) {
        const job = this.jobs.get(d.doc_id);
        if (!job) continue;
        job.seen = d;
        if (d.state === 'running' && pendingOf(d) === 0) job.caughtUpAt = now;
      }
      if (page.docs.length < 500) break;
    }
  }

  settled(): boolean {
    for (const j of this.jobs.values()) if (!j.seen || j.seen.state !== 'running' || pendingOf(j.seen) !== 0) return false;
    return true;
  }

  failing(): { db: string; dir: Direction; error: string }[] {
    return [...this.jobs.values()].filter((j) => j.seen && ['crashing', 'error', 'failed'].includes(j.seen.state)).map((j) => ({ db: j.db, dir: j.dir, error: `${j.seen!.state}: ${j.seen!.info?.error ?? 'see _scheduler/docs'}` }));
  }

  laneStatus(db: string, dir: Direction): LaneStatus | null {
    const j = this.jobs.get(this.docId(db, dir));
    if (!j) return null;
    const s = j.seen;
    const failed = !!s && ['crashing', 'error', 'failed'].includes(s.state);
    const pending = pendingOf(s);
    return {
      state: !s ? 'waiting' : failed ? 'error' : s.state === 'running' ? (pending === 0 ? 'idle' : 'syncing') : 'waiting',
      pending,
      lastSync: j.caughtUpAt ? new Date(j.caughtUpAt).toISOString() : null,
      lastError: failed ? `${s!.state}: ${s!.info?.error ?? describe(s)}` : null,
      docsWritten: s?.info?.docs_written ?? 0,
      docWriteFailures: s?.info?.doc_write_failures ?? 0,
    };
  }
}
