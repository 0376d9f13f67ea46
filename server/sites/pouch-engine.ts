// Replication for the embedded default: the server itself runs PouchDB remote-to-remote replications over
// HTTP (our own /db ↔ the remote's CouchDB API, admin credentials on both), so every write still passes
// each side's `validate_doc_update`. One "lane" per database and direction. A lane runs a checkpointed
// one-shot replication whenever its source changed (told by the `_db_updates` followers, and by the
// link's sweep comparing update sequences as a safety net), again at once when more changes came in
// meanwhile, and after a failure with exponential back-off (1 s … 60 s). This is continuous in effect,
// and costs no connection per database: only two `_db_updates` long polls per link. Checkpoints carry
// stable replication ids (the link's id and the database name, not the servers' URLs or per-boot uuids),
// so a restart of either side resumes where it stopped.
import PouchDB from 'pouchdb';
import { trustFor } from '../../agent/sync/tls.ts';
import { agentFetch, newAgent } from '../../agent/sync/remote.ts';
import { CouchHttp, CouchHttpError } from './couch-http.ts';

export type Direction = 'push' | 'pull';

export interface LaneStatus {
  state: 'idle' | 'syncing' | 'waiting' | 'error';
  /** Source changes not yet replicated (from sequence numbers: an upper bound). */
  pending: number | null;
  lastSync: string | null;
  lastError: string | null;
  docsWritten: number;
  docWriteFailures: number;
}

/** The node users: `org.couchdb.user:node-*` (`.` sorts right after `-`). */
export const NODE_USERS_SELECTOR = { _id: { $gt: 'org.couchdb.user:node-', $lt: 'org.couchdb.user:node.' } };

/** The numeric part of an update sequence (PouchDB: the number; CouchDB: the prefix before `-`). */
export function seqNum(seq: unknown): number | null {
  if (typeof seq === 'number' && Number.isFinite(seq)) return seq;
  if (typeof seq === 'string') {
    const m = /^(\d+)/.exec(seq);
    if (m) return Number(m[1]);
  }
  return null;
}

interface Lane {
  db: string;
  dir: Direction;
  dirty: boolean;
  running: boolean;
  /** Consecutive failures (for the back-off); 0 after a success. */
  failures: number;
  retryAt: number;
  lastOkAt: number | null;
  lastError: string | null;
  /** Refusals by the target (validate_doc_update) in the last run. */
  refused: string | null;
  doneSeq: number | null;
  sourceSeq: number | null;
  docsWritten: number;
  docWriteFailures: number;
  current?: PouchDB.Replication.Replication<object>;
}

export interface PouchEngineOptions {
  linkId: string;
  local: CouchHttp;
  remote: CouchHttp;
  /** Runs at once across the link. */
  concurrency?: number;
  log?: (msg: string) => void;
  /** A lane finished (ok or not): the link updates its state. */
  onRun?: (db: string, dir: Direction, ok: boolean, err?: unknown) => void;
}

const MAX_BACKOFF_MS = 60_000;

export class PouchEngine {
  private readonly lanes = new Map<string, Lane>();
  private timer?: NodeJS.Timeout;
  private stopped = true;
  private active = 0;

  constructor(private readonly opts: PouchEngineOptions) {}

  private key(db: string, dir: Direction) { return `${dir}:${db}`; }

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.pump(), 500);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const running = [...this.lanes.values()].filter((l) => l.current);
    for (const l of running) l.current!.cancel();
    // Let cancelled runs settle so no request outlives the server's close.
    const deadline = Date.now() + 5000;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** Replicates `db` both ways from now on (idempotent); a new lane runs at once. */
  ensure(db: string): void {
    for (const dir of ['push', 'pull'] as const) {
      const k = this.key(db, dir);
      if (this.lanes.has(k)) continue;
      this.lanes.set(k, { db, dir, dirty: true, running: false, failures: 0, retryAt: 0, lastOkAt: null, lastError: null, refused: null, doneSeq: null, sourceSeq: null, docsWritten: 0, docWriteFailures: 0 });
    }
    this.pump();
  }

  drop(db: string): void {
    for (const dir of ['push', 'pull'] as const) {
      const lane = this.lanes.get(this.key(db, dir));
      lane?.current?.cancel();
      this.lanes.delete(this.key(db, dir));
    }
  }

  dbs(): string[] { return [...new Set([...this.lanes.values()].map((l) => l.db))]; }

  /** `db` changed on `side`: its lane out of that side runs (again). */
  touch(side: 'local' | 'remote', db: string): void {
    const lane = this.lanes.get(this.key(db, side === 'local' ? 'push' : 'pull'));
    if (!lane) return;
    lane.dirty = true;
    this.pump();
  }

  touchAll(side?: 'local' | 'remote'): void {
    for (const lane of this.lanes.values()) if (!side || lane.dir === (side === 'local' ? 'push' : 'pull')) lane.dirty = true;
    this.pump();
  }

  /** Fresh update sequences of each side (from the sweep): lanes behind their source run. */
  noteSourceSeqs(side: 'local' | 'remote', seqs: Map<string, unknown>): void {
    for (const lane of this.lanes.values()) {
      if (lane.dir !== (side === 'local' ? 'push' : 'pull')) continue;
      const n = seqNum(seqs.get(lane.db));
      if (n === null) continue;
      lane.sourceSeq = n;
      if (lane.doneSeq === null || n > lane.doneSeq) lane.dirty = true;
    }
    this.pump();
  }

  /** True when no lane has work, runs, or fails: the link is in sync. */
  settled(): boolean {
    for (const l of this.lanes.values()) if (l.dirty || l.running || l.failures > 0) return false;
    return true;
  }

  failing(): { db: string; dir: Direction; error: string }[] {
    return [...this.lanes.values()].filter((l) => l.failures > 0 || l.refused).map((l) => ({ db: l.db, dir: l.dir, error: (l.failures > 0 ? l.lastError : l.refused) ?? 'error' }));
  }

  laneStatus(db: string, dir: Direction): LaneStatus | null {
    const l = this.lanes.get(this.key(db, dir));
    if (!l) return null;
    const behind = l.sourceSeq !== null && l.doneSeq !== null ? Math.max(0, l.sourceSeq - l.doneSeq) : l.sourceSeq;
    const pending = behind === null ? null : (l.dirty || l.running) ? Math.max(1, behind) : behind;
    const state = l.failures > 0 ? (l.running ? 'syncing' : 'error') : l.running ? 'syncing' : l.dirty ? 'waiting' : l.refused ? 'error' : 'idle';
    return {
      state,
      pending,
      lastSync: l.lastOkAt ? new Date(l.lastOkAt).toISOString() : null,
      lastError: l.failures > 0 ? l.lastError : l.refused,
      docsWritten: l.docsWritten,
      docWriteFailures: l.docWriteFailures,
    };
  }

  private pump(): void {
    if (this.stopped) return;
    const limit = this.opts.concurrency ?? 4;
    const now = Date.now();
    for (const lane of this.lanes.values()) {
      if (this.active >= limit) return;
      if (!lane.dirty || lane.running || lane.retryAt > now) continue;
      void this.run(lane);
    }
  }

  /** A PouchDB handle on one side's database whose replication identity is stable (see the header). */
  private pouch(http: CouchHttp, db: string, identity: string): PouchDB.Database {
    const url = `${http.url}/${encodeURIComponent(db)}`;
    // A remote whose certificate is pinned (sites/trust.ts): connections checked before use.
    const fetch = trustFor(url)?.fingerprint || trustFor(url)?.ca ? agentFetch(newAgent(url)) : undefined;
    const p = new PouchDB(url, { auth: http.auth, skip_setup: true, ...(fetch ? { fetch } : {}) } as PouchDB.Configuration.RemoteDatabaseConfiguration);
    (p as unknown as { id: () => Promise<string> }).id = async () => identity;
    return p;
  }

  private async run(lane: Lane): Promise<void> {
    lane.running = true;
    lane.dirty = false;
    this.active++;
    const { local, remote, linkId } = this.opts;
    const [from, to] = lane.dir === 'push' ? [local, remote] : [remote, local];
    const src = this.pouch(from, lane.db, lane.dir === 'push' ? `anybios-site:self:${lane.db}` : `anybios-site:${linkId}:${lane.db}`);
    const tgt = this.pouch(to, lane.db, lane.dir === 'push' ? `anybios-site:${linkId}:${lane.db}` : `anybios-site:self:${lane.db}`);
    let ok = false;
    let error: unknown;
    try {
      const info = await from.get<{ update_seq: unknown }>(`/${encodeURIComponent(lane.db)}`);
      const startSeq = seqNum(info.update_seq);
      if (startSeq !== null) lane.sourceSeq = Math.max(lane.sourceSeq ?? 0, startSeq);
      const rep = PouchDB.replicate(src, tgt, {
        batch_size: 100,
        batches_limit: 4,
        ...(lane.db === '_users' ? { selector: NODE_USERS_SELECTOR } : {}),
      } as PouchDB.Replication.ReplicateOptions);
      lane.current = rep;
      const res = (await rep) as PouchDB.Replication.ReplicationResultComplete<object> & { status?: string; errors?: unknown[] };
      if (res.status === 'cancelled' || this.stopped) return;
      if (res.ok === false && res.doc_write_failures === 0) throw new Error(`replication ended with status ${res.status}`);
      lane.docsWritten += res.docs_written ?? 0;
      lane.docWriteFailures += res.doc_write_failures ?? 0;
      lane.refused = res.doc_write_failures ? `${res.doc_write_failures} document(s) refused by the ${lane.dir === 'push' ? 'remote' : 'local'} side: ${describe(res.errors?.[0])}` : null;
      if (lane.refused) this.opts.log?.(`site ${linkId}: ${lane.db} ${lane.dir}: ${lane.refused}`);
      const done = seqNum(res.last_seq);
      const reached = Math.max(done ?? 0, startSeq ?? 0);
      lane.doneSeq = lane.doneSeq === null ? reached : Math.max(lane.doneSeq, reached);
      lane.failures = 0;
      lane.lastError = null;
      lane.lastOkAt = Date.now();
      ok = true;
    } catch (err) {
      if (this.stopped) return;
      error = err;
      lane.failures++;
      lane.lastError = describe(err);
      lane.dirty = true;
      lane.retryAt = Date.now() + Math.min(1000 * 2 ** (lane.failures - 1), MAX_BACKOFF_MS);
      if (lane.failures === 1 || lane.failures % 10 === 0) this.opts.log?.(`site ${linkId}: ${lane.db} ${lane.dir} failed (${lane.failures}x, retrying): ${lane.lastError}`);
    } finally {
      lane.running = false;
      lane.current = undefined;
      this.active--;
      await Promise.all([src.close().catch(() => {}), tgt.close().catch(() => {})]);
    }
    this.opts.onRun?.(lane.db, lane.dir, ok, error);
    this.pump();
  }
}

export function describe(err: unknown): string {
  if (err instanceof CouchHttpError) return err.message;
  const e = err as { status?: number; name?: string; reason?: string; message?: string; error?: string | boolean } | undefined;
  if (!e) return 'unknown error';
  const what = e.reason ?? e.message ?? (typeof e.error === 'string' ? e.error : '') ?? '';
  return `${e.status ? `${e.status} ` : ''}${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${what || JSON.stringify(e).slice(0, 200)}`;
}
