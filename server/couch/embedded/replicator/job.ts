// One replication job: PouchDB's replicator between two HTTP endpoints, supervised as CouchDB's scheduler
// supervises its jobs. A run that fails is restarted after a back-off that doubles (1 s … 5 min), the
// job reporting `crashing` with the error and its count meanwhile; a continuous job runs until stopped;
// a one-shot job ends `completed`. Checkpoints are PouchDB's `_local` documents on both sides under an
// identity derived from the `_replicator` document's id (or, for `_replicate`, the endpoints' URLs), so a
// restarted job (or server) carries on where it stopped.
import http from 'node:http';
import PouchDB from 'pouchdb';
import { agentFor } from '../../../../agent/sync/tls.ts';
import { CLIENT_IDLE_MS } from '../../../../agent/sync/remote.ts';
import { forbiddenHost, guardedLookup, showEndpoint, type Endpoint } from './endpoint.ts';
import type { RepSpec } from './spec.ts';

export type JobState = 'initializing' | 'running' | 'pending' | 'crashing' | 'completed' | 'failed' | 'error';

export interface JobOrigin {
  /** `_replicator` for a document's job, null for `_replicate`. */
  database: string | null;
  docId: string | null;
  /** Whose job it is (the document's `owner`, or who called `_replicate`). */
  user: string | null;
  /** Owned by a server admin: the reach rule (endpoint.ts) does not apply. */
  trusted: boolean;
}

export interface JobStats {
  revisions_checked: number;
  missing_revisions_found: number;
  docs_read: number;
  docs_written: number;
  changes_pending: number | null;
  doc_write_failures: number;
  checkpointed_source_seq: string | number | null;
  source_seq: string | number | null;
  through_seq: string | number | null;
}

interface HistoryEntry { timestamp: string; type: string; reason?: string }

export interface JobHooks {
  log(msg: string): void;
  /** A one-shot job finished. */
  completed(job: ReplicationJob): void;
  /** Silence after which a continuous run is taken for dead (default STALL_MS). */
  stallMs?: number;
  /** Waits for a place among the jobs catching up (gate.ts); resolves with its release. */
  admit?(): Promise<() => void>;
  /** A one-shot `_replicate` job failed: it is not retried, the caller gets the error (as CouchDB does). */
  failed?(job: ReplicationJob, err: unknown): void;
}

const MIN_BACKOFF_MS = 1000;
/**
 * A continuous run whose connections received nothing for this long is stalled: its long poll gets a
 * heartbeat every 10 s (PouchDB asks for one), so silence means a connection that died without a word
 * (PouchDB 9 has no client-side timeout; PouchDB issues 9063, 7931). The run is restarted.
 */
const STALL_MS = 90_000; // default of the limit replicationStallMs (server/limits/config.ts)
const MAX_BACKOFF_MS = 5 * 60_000;
const MAX_HISTORY = 20;

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** An error in CouchDB's replicator terms: `error` its name, `reason` what `_scheduler` shows after it. */
const repError = (error: string, reason: string) => Object.assign(new Error(`${error}: ${reason}`), { error, reason });

export function describeError(err: unknown): string {
  const e = err as { status?: number; name?: string; reason?: string; message?: string; error?: unknown; code?: string } | undefined;
  if (!e) return 'unknown error';
  if (typeof e.error === 'string' && typeof e.reason === 'string' && !e.status) return `${e.error}: ${e.reason}`;
  const what = e.reason ?? e.message ?? (typeof e.error === 'string' ? e.error : '');
  return `${e.status ? `${e.status} ` : ''}${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${what || e.code || JSON.stringify(e).slice(0, 200)}`;
}

let runSerial = 0;

export class ReplicationJob {
  state: JobState = 'initializing';
  /**
   * Where CouchDB shows the Erlang process of a running job (Fauxton's Active Tasks page needs a string):
   * here `<anybios.OSPID.RUN>`, this server's process and the run's serial number; null between runs.
   */
  pid: string | null = null;
  errorCount = 0;
  lastError: string | null = null;
  readonly startTime = Date.now();
  lastUpdated = Date.now();
  /** Counts over every run of this job. */
  stats: JobStats = { revisions_checked: 0, missing_revisions_found: 0, docs_read: 0, docs_written: 0, changes_pending: null, doc_write_failures: 0, checkpointed_source_seq: null, source_seq: null, through_seq: null };
  readonly history: HistoryEntry[] = [];
  /** Where the current run started (for `_active_tasks`). */
  runStartedAt: number | null = null;
  private base = { docs_read: 0, docs_written: 0, doc_write_failures: 0 };
  private rep?: PouchDB.Replication.Replication<object>;
  private agents: http.Agent[] = [];
  private retired = new WeakSet<http.Agent>();
  private timer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  /** When a connection of the current run last received bytes. */
  private lastActivity = Date.now();
  private stalled = false;
  private stopped = false;
  private runs = 0;

  constructor(readonly id: string, readonly spec: RepSpec, readonly origin: JobOrigin, private readonly hooks: JobHooks) {}

  private get stallMs(): number { return this.hooks.stallMs ?? STALL_MS; }

  get sourceShown(): string { return showEndpoint(this.spec.source); }
  get targetShown(): string { return showEndpoint(this.spec.target); }

  private note(type: string, reason?: string): void {
    this.history.unshift({ timestamp: iso(Date.now()), type, ...(reason ? { reason } : {}) });
    if (this.history.length > MAX_HISTORY) this.history.length = MAX_HISTORY;
    this.lastUpdated = Date.now();
  }

  /** Starts the first run on a later tick: whoever started the job hears of its end only afterwards. */
  start(): void {
    this.note('added');
    setImmediate(() => void this.run());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.watchdog);
    this.rep?.cancel();
    this.retireAgents();
  }

  private retireAgents(): void {
    for (const a of this.agents) {
      this.retired.add(a);
      a.destroy();
    }
    this.agents = [];
  }

  /** PouchDB's fetch for one endpoint: its headers on every request, its own connection pool. */
  private fetchFor(e: Endpoint): (url: string, opts?: Record<string, unknown>) => Promise<unknown> {
    // Idle sockets close after CLIENT_IDLE_MS, well below any server's keep-alive timeout (agent/sync/remote.ts).
    const agent = agentFor(e.url, { keepAlive: true, timeout: CLIENT_IDLE_MS, ...(this.origin.trusted || e.self ? {} : { lookup: guardedLookup }) } as http.AgentOptions);
    this.agents.push(agent);
    this.watchSockets(agent);
    const pouchFetch = (PouchDB as unknown as { fetch: (u: string, o: object) => Promise<unknown> }).fetch;
    return async (url, opts = {}) => {
      if (this.retired.has(agent)) return new Promise(() => {});
      const h = opts.headers as { set?: (k: string, v: string) => void } | Record<string, string> | undefined;
      let headers: unknown = h;
      if (h && typeof (h as { set?: unknown }).set === 'function') for (const [k, v] of Object.entries(e.headers)) (h as { set: (k: string, v: string) => void }).set(k, v);
      else headers = { ...(h as Record<string, string> | undefined), ...e.headers };
      try {
        const res = await pouchFetch(url, { ...opts, headers, agent });
        if (opts.method === 'POST' && /\/_revs_diff$/.test(url.split('?')[0])) this.countRevsDiff(opts.body, res);
        return res;
      } catch (err) {
        // A cancelled run's requests never settle: PouchDB has callers that do not catch (see remote.ts).
        if (this.retired.has(agent)) return new Promise(() => {});
        throw err;
      }
    };
  }

  /** Notes every byte any socket of `agent` receives (the stall watchdog reads it). */
  private watchSockets(agent: http.Agent): void {
    const a = agent as unknown as { createConnection: (o: object, cb?: (err: Error | null, s?: NodeJS.EventEmitter) => void) => NodeJS.EventEmitter | undefined };
    const create = a.createConnection.bind(agent);
    const touch = () => { this.lastActivity = Date.now(); };
    a.createConnection = (o, cb) => {
      const sock = create(o, cb && ((err, s) => {
        s?.on('data', touch);
        cb(err, s);
      }));
      sock?.on('data', touch);
      return sock;
    };
  }

  /**
   * CouchDB's `revisions_checked` / `missing_revisions_found`: the revisions a run asked the target about
   * and those it lacked. A resumed run asks only about changes after its checkpoint.
   */
  private countRevsDiff(body: unknown, res: unknown): void {
    try {
      const asked = typeof body === 'string' ? (JSON.parse(body) as Record<string, unknown[]>) : {};
      this.stats.revisions_checked += Object.values(asked).reduce((n, revs) => n + (Array.isArray(revs) ? revs.length : 0), 0);
    } catch {
      return;
    }
    const r = res as { ok?: boolean; clone?: () => { json(): Promise<Record<string, { missing?: unknown[] }>> } };
    if (!r.ok || !r.clone) return;
    r.clone().json().then((missing) => {
      this.stats.missing_revisions_found += Object.values(missing).reduce((n, m) => n + (Array.isArray(m?.missing) ? m.missing.length : 0), 0);
    }, () => {});
  }

  private db(e: Endpoint, identity: string): PouchDB.Database {
    const p = new PouchDB(e.url, { skip_setup: true, fetch: this.fetchFor(e) } as PouchDB.Configuration.RemoteDatabaseConfiguration);
    // The replication's checkpoint id comes from both ids: stable ones make restarts incremental (the
    // HTTP adapter would ask the server for its uuid, which an embedded server draws at each start).
    (p as unknown as { id: () => Promise<string> }).id = async () => identity;
    return p;
  }

  /** CouchDB's db_open: a missing or refused database is named in the error, as CouchDB names it. */
  private async open(e: Endpoint): Promise<void> {
    const res = (await this.fetchFor(e)(e.url, { method: 'GET', headers: { Accept: 'application/json' } })) as { status: number; text(): Promise<string> };
    await res.text().catch(() => '');
    if (res.status === 200) return;
    const shown = showEndpoint(e);
    if (res.status === 401 || res.status === 403) throw repError('unauthorized', `unauthorized to access or create database ${shown}`);
    if (res.status === 404) throw repError('db_not_found', `could not open ${shown}`);
    throw repError('db_not_found', `could not open ${shown}: HTTP ${res.status}`);
  }

  private async createTarget(): Promise<void> {
    const f = this.fetchFor(this.spec.target);
    const res = (await f(this.spec.target.url, { method: 'PUT', headers: { Accept: 'application/json' } })) as { status: number; text(): Promise<string> };
    if (res.status === 201 || res.status === 202 || res.status === 412) return;
    const body = await res.text().catch(() => '');
    if (res.status === 401 || res.status === 403) throw repError('unauthorized', `unauthorized to access or create database ${this.targetShown}`);
    throw repError('db_not_found', `could not create ${this.targetShown}: ${res.status} ${body.slice(0, 200)}`);
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    this.runs++;
    this.retireAgents();
    this.base = { docs_read: this.stats.docs_read, docs_written: this.stats.docs_written, doc_write_failures: this.stats.doc_write_failures };
    const { spec } = this;
    let release = () => {};
    try {
      if (this.hooks.admit) {
        release = await this.hooks.admit();
        if (this.stopped) return;
      }
      if (!this.origin.trusted) {
        const host = forbiddenHost(spec.source) ?? forbiddenHost(spec.target);
        if (host) throw Object.assign(new Error(`${host}: a replication not owned by a server admin may not reach loopback, link-local or unspecified addresses`), { code: 'EFORBIDDENADDR' });
      }
      await this.open(spec.source);
      if (spec.createTarget) await this.createTarget();
      else await this.open(spec.target);
      if (this.stopped) return;
      // A document's job is known by the document (not the URLs: a server that reaches itself on a
      // port drawn at each start keeps its checkpoints); PouchDB adds filter, doc_ids and selector.
      const who = this.origin.docId !== null ? `${this.origin.database}/${this.origin.docId}` : null;
      const src = this.db(spec.source, who ? `anybios-rep:${who}:source` : `anybios-rep:${spec.source.url}`);
      const tgt = this.db(spec.target, who ? `anybios-rep:${who}:target` : `anybios-rep:${spec.target.url}`);
      const opts: Record<string, unknown> = { live: spec.continuous, retry: false, batch_size: 100, batches_limit: 4 };
      if (spec.docIds) opts.doc_ids = spec.docIds;
      if (spec.selector) opts.selector = spec.selector;
      if (spec.filter) opts.filter = spec.filter;
      if (spec.queryParams) {
        opts.query_params = spec.queryParams;
        if (spec.filter === '_view') opts.view = spec.queryParams.view;
      }
      if (spec.sinceSeq !== undefined) opts.since = spec.sinceSeq;
      const rep = PouchDB.replicate(src, tgt, opts as PouchDB.Replication.ReplicateOptions);
      this.rep = rep;
      this.pid = `<anybios.${process.pid}.${++runSerial}>`;
      this.runStartedAt = Date.now();
      this.state = 'running';
      this.note('started');
      const ev = rep as unknown as NodeJS.EventEmitter;
      ev.on('change', (info: { docs_read?: number; docs_written?: number; doc_write_failures?: number; last_seq?: string | number; pending?: number }) => this.onProgress(info));
      ev.on('paused', (err?: unknown) => {
        if (err) return; // a failure: 'error' follows (retry is off)
        release(); // caught up: a live job now only waits on its long poll
        this.stats.changes_pending = 0;
        this.healthy();
      });
      ev.on('checkpoint', (c: { checkpoint?: string | number }) => {
        if (c?.checkpoint !== undefined) this.stats.checkpointed_source_seq = c.checkpoint;
      });
      if (spec.continuous) this.watch(rep);
      const res = (await rep) as unknown as { status?: string; ok?: boolean; docs_read?: number; docs_written?: number; doc_write_failures?: number; last_seq?: string | number; errors?: unknown[] };
      clearInterval(this.watchdog);
      if (this.stalled) throw new Error(`no answer from ${this.sourceShown} or ${this.targetShown} for ${this.stallMs / 1000} s: the connection is taken for dead`);
      if (this.stopped || res.status === 'cancelled') return;
      this.onProgress(res);
      this.stats.changes_pending = 0;
      if (res.status === 'aborting' || (res.ok === false && !res.doc_write_failures)) throw new Error(describeError(res.errors?.[0]) || `replication ended with status ${res.status}`);
      if (spec.continuous) throw new Error('the continuous replication ended'); // PouchDB ends live runs only on errors
      this.state = 'completed';
      this.errorCount = 0;
      this.note('completed');
      this.retireAgents();
      this.hooks.completed(this);
    } catch (err) {
      clearInterval(this.watchdog);
      if (this.stopped) return;
      this.crashed(err);
    } finally {
      release();
      this.rep = undefined;
      this.pid = null;
    }
  }

  /** Cancels a continuous run that went silent (see STALL_MS); `run` then restarts it as after a crash. */
  private watch(rep: PouchDB.Replication.Replication<object>): void {
    this.stalled = false;
    this.lastActivity = Date.now();
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastActivity < this.stallMs) return;
      clearInterval(this.watchdog);
      this.stalled = true;
      rep.cancel();
    }, Math.min(this.stallMs / 3, 30_000));
    this.watchdog.unref();
  }

  private onProgress(info: { docs_read?: number; docs_written?: number; doc_write_failures?: number; last_seq?: string | number; pending?: number }): void {
    const s = this.stats;
    s.docs_read = this.base.docs_read + (info.docs_read ?? 0);
    s.docs_written = this.base.docs_written + (info.docs_written ?? 0);
    s.doc_write_failures = this.base.doc_write_failures + (info.doc_write_failures ?? 0);
    if (info.last_seq !== undefined) s.through_seq = s.source_seq = info.last_seq;
    if (typeof info.pending === 'number') s.changes_pending = info.pending;
    this.lastUpdated = Date.now();
    this.healthy();
  }

  /** Progress after a crash: the job is well again (CouchDB forgets crashes after a healthy spell). */
  private healthy(): void {
    if (this.state === 'running' && this.errorCount > 0) {
      this.errorCount = 0;
      this.lastError = null;
    }
  }

  private crashed(err: unknown): void {
    this.errorCount++;
    this.lastError = describeError(err);
    if (this.hooks.failed && !this.spec.continuous) {
      this.state = 'failed';
      this.retireAgents();
      this.note('crashed', this.lastError);
      this.hooks.failed(this, err);
      return;
    }
    this.state = 'crashing';
    this.retireAgents();
    this.note('crashed', this.lastError);
    if (this.errorCount === 1 || this.errorCount % 10 === 0) this.hooks.log(`replication ${this.id} (${this.sourceShown} → ${this.targetShown}) failed (${this.errorCount}x, retrying): ${this.lastError}`);
    const delay = Math.min(MIN_BACKOFF_MS * 2 ** Math.min(this.errorCount - 1, 20), MAX_BACKOFF_MS);
    this.timer = setTimeout(() => {
      this.state = 'pending';
      void this.run();
    }, delay * (0.75 + Math.random() * 0.5));
    this.timer.unref();
  }
}
