// The embedded server's replicator: the jobs of `_replicate` and of the `_replicator` database, and what
// `_scheduler/jobs`, `_scheduler/docs` and `_active_tasks` report about them, in CouchDB 3's shapes.
//
// `_replicator` is followed through its own changes (from the start at each server start: every live
// document gets its job back, each resuming from its checkpoints). As in CouchDB 3, the state is not
// written into documents except at the end: a one-shot job that completed gets `_replication_state:
// "completed"` (+ `_replication_stats`), a document that can never run gets `"failed"` (+ the reason);
// both are then left alone until the document changes. Jobs run under their document's `owner`.
import { createHash } from 'node:crypto';
import { type DbStore } from '../store.ts';
import { CouchError, forbidden } from '../../errors.ts';
import { parseRepSpec, replicationId, baseId, type RepSpec } from './spec.ts';
import { ReplicationJob, describeError, type JobOrigin } from './job.ts';
import { Gate } from './gate.ts';
import { REPLICATOR_DB, docRow, iso, jobRow, shownEndpoint, statsOf, taskRow, type DocEntry } from './report.ts';

export { REPLICATOR_DB };
/** Jobs one user who is not a server admin may have at once, of each kind (`_replicate`, documents). */
const MAX_TRANSIENT_PER_USER = 20;
const MAX_DOC_JOBS_PER_USER = 20;
/** Jobs catching up at once (gate.ts). */
const MAX_STARTING = 8;

export interface ReplicatorOptions {
  store: DbStore;
  /** Names whose replications may reach loopback (server admins). */
  isTrustedOwner: (name: string | null) => boolean;
  log?: (msg: string) => void;
  /** See job.ts (default 90 s). */
  stallMs?: number;
}

export interface OneShotResult {
  ok: true;
  session_id: string;
  source_last_seq: string | number | null;
  replication_id_version: number;
  history: Record<string, unknown>[];
}

const specHash = (spec: RepSpec) => createHash('sha256').update(JSON.stringify(spec)).digest('hex');

export class Replicator {
  /** Transient jobs by replication id. */
  private readonly transient = new Map<string, ReplicationJob>();
  /** Callers of `_replicate` waiting for a one-shot job to end, by replication id. */
  private readonly waiters = new Map<string, ((err: unknown) => void)[]>();
  private readonly docs = new Map<string, DocEntry>();
  private since: string | number = 0;
  private following: Promise<void> | null = null;
  private again = false;
  private running = false;
  private sub?: { unsubscribe(): void };

  private readonly gate = new Gate(MAX_STARTING);
  /** This server's CouchDB API as it reaches itself (`_replicate` with database names), once it listens. */
  selfUrl: string | null = null;

  constructor(private readonly opts: ReplicatorOptions) {}

  private log(msg: string): void { this.opts.log?.(msg); }

  /** Creates `_replicator` when missing (as CouchDB does at start) and starts every document's job. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (!this.opts.store.exists(REPLICATOR_DB)) await this.opts.store.create(REPLICATOR_DB).catch((err) => {
      if ((err as CouchError).status !== 412) throw err;
    });
    this.sub = this.opts.store.updates$.subscribe((u) => {
      if (u.db_name !== REPLICATOR_DB) return;
      if (u.type === 'deleted') return this.forgetAllDocs();
      if (u.type === 'created') this.since = 0;
      this.follow();
    });
    this.follow();
    await this.following;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.sub?.unsubscribe();
    await this.following?.catch(() => {});
    for (const j of this.transient.values()) j.stop();
    this.transient.clear();
    this.forgetAllDocs();
  }

  private forgetAllDocs(): void {
    for (const e of this.docs.values()) e.job?.stop();
    this.docs.clear();
    this.since = 0;
  }

  // ---- the _replicator database ----------------------------------------------------------------------

  private follow(): void {
    if (!this.running) return;
    if (this.following) {
      this.again = true;
      return;
    }
    this.following = this.readChanges()
      .catch((err) => this.log(`replicator: reading ${REPLICATOR_DB} failed: ${describeError(err)}`))
      .finally(() => {
        this.following = null;
        if (this.again) {
          this.again = false;
          this.follow();
        }
      });
  }

  private async readChanges(): Promise<void> {
    if (!this.opts.store.exists(REPLICATOR_DB)) return;
    const db = this.opts.store.get(REPLICATOR_DB);
    for (;;) {
      const res = await db.changes({ since: this.since, include_docs: true, limit: 500 } as PouchDB.Core.ChangesOptions);
      for (const r of res.results) {
        if (r.id.startsWith('_design/') || r.id.startsWith('_local/')) continue;
        await this.onDoc(r.id, r.deleted ? null : (r.doc as unknown as Record<string, unknown>));
      }
      this.since = res.last_seq;
      if (res.results.length < 500 || !this.running) return;
    }
  }

  private async onDoc(docId: string, doc: Record<string, unknown> | null): Promise<void> {
    const old = this.docs.get(docId);
    if (!doc) {
      old?.job?.stop();
      this.docs.delete(docId);
      return;
    }
    const owner = typeof doc.owner === 'string' ? doc.owner : null;
    const state = doc._replication_state;
    if (state === 'completed' || state === 'failed') {
      if (old?.job) old.job.stop();
      const when = typeof doc._replication_state_time === 'string' ? Date.parse(doc._replication_state_time) : Date.now();
      this.docs.set(docId, {
        docId, owner, state,
        reason: typeof doc._replication_state_reason === 'string' ? doc._replication_state_reason : undefined,
        stats: (doc._replication_stats as Record<string, unknown> | undefined) ?? null,
        shown: { source: shownEndpoint(doc.source), target: shownEndpoint(doc.target) },
        startTime: old?.startTime ?? when, lastUpdated: Number.isFinite(when) ? when : Date.now(),
      });
      return;
    }
    let spec: RepSpec;
    try {
      spec = parseRepSpec(doc);
    } catch (err) {
      old?.job?.stop();
      await this.markDoc(docId, { _replication_state: 'failed', _replication_state_reason: (err as CouchError).reason ?? describeError(err) });
      return;
    }
    const hash = specHash(spec) + `:${owner}`;
    if (old?.job && old.specHash === hash) return; // our own state update, or nothing that matters changed
    old?.job?.stop();
    this.docs.delete(docId);
    const id = replicationId(spec);
    const twin = [...this.docs.values()].find((e) => e.docId !== docId && e.job?.id === id && e.job.state !== 'completed');
    if (twin) {
      await this.markDoc(docId, { _replication_state: 'failed', _replication_state_reason: `Replication \`${id}\` specified by document \`${docId}\` already started, triggered by document \`${twin.docId}\` from db \`${REPLICATOR_DB}\`` });
      return;
    }
    const trusted = this.opts.isTrustedOwner(owner);
    // Each job holds connections and a long poll: a user's documents cannot make the server run without bound.
    if (!trusted && [...this.docs.values()].filter((e) => e.owner === owner && e.job && e.job.state !== 'completed').length >= MAX_DOC_JOBS_PER_USER) {
      await this.markDoc(docId, { _replication_state: 'failed', _replication_state_reason: `${owner} has ${MAX_DOC_JOBS_PER_USER} replications running already (the limit for a user who is not a server admin)` });
      return;
    }
    const origin: JobOrigin = { database: REPLICATOR_DB, docId, user: owner, trusted };
    const job = new ReplicationJob(id, spec, origin, {
      log: (m) => this.log(`replicator: ${m}`),
      admit: () => this.gate.enter(),
      stallMs: this.opts.stallMs,
      completed: (j) => void this.markDoc(docId, { _replication_state: 'completed', _replication_stats: statsOf(j) }).catch(() => {}),
    });
    this.docs.set(docId, { docId, owner, job, specHash: hash, startTime: Date.now(), lastUpdated: Date.now() });
    job.start();
  }

  /** Writes the replicator's own fields into a document (the only writes it makes there). */
  private async markDoc(docId: string, fields: Record<string, unknown>): Promise<void> {
    const db = this.opts.store.get(REPLICATOR_DB);
    for (let attempt = 0; attempt < 5; attempt++) {
      let doc: Record<string, unknown>;
      try {
        doc = (await db.get(docId)) as unknown as Record<string, unknown>;
      } catch {
        return; // deleted meanwhile
      }
      const next: Record<string, unknown> = { ...doc, ...fields };
      if (fields._replication_state !== doc._replication_state) next._replication_state_time = iso(Date.now());
      if (fields._replication_state === 'completed') delete next._replication_state_reason;
      if (fields._replication_state === 'failed') delete next._replication_stats;
      try {
        await this.opts.store.writing(REPLICATOR_DB, () => db.put(next as PouchDB.Core.PutDocument<object>));
        return;
      } catch (err) {
        if ((err as { status?: number }).status !== 409) throw err;
      }
    }
  }

  // ---- _replicate ------------------------------------------------------------------------------------

  /** Starts (or joins) a transient replication: continuous ones answer at once, one-shot ones when done. */
  async replicate(spec: RepSpec, user: { name: string | null; admin: boolean }): Promise<{ continuous: true; id: string } | { continuous: false; id: string; result: OneShotResult }> {
    const id = replicationId(spec);
    const existing = this.transient.get(id);
    if (existing && existing.origin.user !== user.name && !user.admin) throw new CouchError(401, 'unauthorized', 'You are not a server admin.');
    if (!existing && !user.admin && [...this.transient.values()].filter((j) => j.origin.user === user.name).length >= MAX_TRANSIENT_PER_USER) {
      throw forbidden(`you have ${MAX_TRANSIENT_PER_USER} replications running already; cancel one first`);
    }
    if (spec.continuous) {
      if (!existing) this.startTransient(id, spec, user);
      return { continuous: true, id };
    }
    return new Promise((resolve, reject) => {
      const started = Date.now();
      // Waiting before the job starts: its end cannot come first.
      this.waiters.set(id, [...(this.waiters.get(id) ?? []), (err) => {
        if (err) return reject(err);
        const s = job.stats;
        resolve({
          continuous: false,
          id,
          result: {
            ok: true,
            session_id: createHash('md5').update(`${id}:${started}`).digest('hex'),
            source_last_seq: s.source_seq,
            replication_id_version: 4,
            history: [{
              session_id: createHash('md5').update(`${id}:${started}`).digest('hex'),
              start_time: new Date(started).toUTCString(),
              end_time: new Date().toUTCString(),
              start_last_seq: 0,
              end_last_seq: s.source_seq,
              recorded_seq: s.checkpointed_source_seq ?? s.source_seq,
              missing_checked: s.revisions_checked,
              missing_found: s.missing_revisions_found,
              docs_read: s.docs_read,
              docs_written: s.docs_written,
              doc_write_failures: s.doc_write_failures,
              bulk_get_docs: 0,
              bulk_get_attempts: 0,
            }],
          },
        });
      }]);
      const job = existing ?? this.startTransient(id, spec, user);
    });
  }

  private startTransient(id: string, spec: RepSpec, user: { name: string | null; admin: boolean }): ReplicationJob {
    const settle = (j: ReplicationJob, err: unknown) => {
      if (this.transient.get(id) === j) this.transient.delete(id);
      this.settleWaiters(id, err);
    };
    const job = new ReplicationJob(id, spec, { database: null, docId: null, user: user.name, trusted: user.admin }, {
      log: (m) => this.log(`replicator: ${m}`),
      admit: () => this.gate.enter(),
      stallMs: this.opts.stallMs,
      completed: (j) => settle(j, null),
      failed: (j, err) => settle(j, err),
    });
    this.transient.set(id, job);
    job.start();
    return job;
  }

  private settleWaiters(id: string, err: unknown): void {
    const list = this.waiters.get(id) ?? [];
    this.waiters.delete(id);
    for (const w of list) w(err);
  }

  /** `_replicate {cancel: true}`: stops a transient job (its owner or a server admin); false when unknown. */
  cancel(idOrSpec: string, user: { name: string | null; admin: boolean }): string | null {
    const want = idOrSpec;
    const job = this.transient.get(want) ?? [...this.transient.values()].find((j) => baseId(j.id) === baseId(want));
    if (!job) return null;
    if (job.origin.user !== user.name && !user.admin) throw new CouchError(401, 'unauthorized', 'You are not a server admin.');
    job.stop();
    this.transient.delete(job.id);
    this.settleWaiters(job.id, new CouchError(500, 'cancelled', 'the replication was cancelled'));
    this.log(`replicator: replication ${job.id} cancelled`);
    return job.id;
  }

  // ---- what the scheduler endpoints report (report.ts) ---------------------------------------------

  private liveJobs(): ReplicationJob[] {
    const doc = [...this.docs.values()].map((e) => e.job).filter((j): j is ReplicationJob => !!j && j.state !== 'completed');
    return [...this.transient.values(), ...doc].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** `_scheduler/jobs` rows, sorted by id. */
  jobs(): Record<string, unknown>[] {
    return this.liveJobs().map(jobRow);
  }

  job(id: string): Record<string, unknown> | undefined {
    return this.jobs().find((j) => j.id === id || baseId(String(j.id)) === id);
  }

  /** `_scheduler/docs/_replicator` rows, by document id. */
  docRows(): Record<string, unknown>[] {
    return [...this.docs.values()].sort((a, b) => (a.docId < b.docId ? -1 : 1)).map(docRow);
  }

  doc(docId: string): Record<string, unknown> | undefined {
    const e = this.docs.get(docId);
    return e ? docRow(e) : undefined;
  }

  /** `_active_tasks`: running replications as CouchDB lists them. */
  activeTasks(): Record<string, unknown>[] {
    return this.liveJobs().filter((j) => j.state === 'running').map(taskRow);
  }
}
