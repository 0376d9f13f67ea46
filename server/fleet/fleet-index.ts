// The fleet index: one in-memory view of every node, system, volume, status and template across the
// catalog and all `anybios-node-*` databases, so fleet listings never query every database per request.
// It follows `_db_updates` (embedded or Apache CouchDB) and, per database, `_changes` from a checkpoint.
// Checkpoints and contents are snapshotted to disk, so a restart resumes instead of rescanning.
// Invariants: `seq` values are opaque; one catch-up per database at a time; an event only says "look again".
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Subject } from 'rxjs';
import type { ServerScope } from 'nano';
import { CATALOG_DB, NODE_DB_PREFIX } from '../../ddocs/build.ts';
import type { NodeDoc, StatusDoc, SystemDoc, TemplateDoc, VolumeDoc } from '../../ddocs/schemas/index.ts';

export type Kind = 'system' | 'volume' | 'status' | 'node' | 'template';

export interface DbState {
  seq: unknown;
  /** Documents by _id (only anybios types). */
  docs: Record<string, Record<string, unknown>>;
  conflicts: Record<string, string[]>;
}

export interface FleetEvent {
  id: number;
  type: Kind;
  db: string;
  node: string | null;
  name: string;
  deleted: boolean;
  rev: string;
  doc?: Record<string, unknown>;
}

export interface SystemRow {
  node: string;
  name: string;
  kind: SystemDoc['kind'];
  template: string;
  state: SystemDoc['state'];
  labels: Record<string, string>;
  rev: string;
  phase: StatusDoc['phase'] | null;
  observedRev: string | null;
  /** True when the status was computed from the current spec revision. */
  current: boolean;
  pid: number | null;
  message: string | null;
  updated: string | null;
  conflict: boolean;
  /** The status document's phase transitions, oldest first (what happened while the node was away). */
  history: NonNullable<StatusDoc['history']>;
}

export interface NodeRow {
  id: string;
  db: string;
  hostname: string | null;
  heartbeat: string | null;
  online: boolean;
  agentVersion: string | null;
  systems: number;
  phases: Record<string, number>;
}

export interface FleetIndexOptions {
  admin: ServerScope;
  snapshotPath?: string;
  /** A node is online when its heartbeat is younger than this. */
  onlineWithinMs?: number;
  log?: (msg: string) => void;
}

const isIndexed = (db: string) => db === CATALOG_DB || db.startsWith(NODE_DB_PREFIX);
const nodeOf = (db: string) => (db.startsWith(NODE_DB_PREFIX) ? db.slice(NODE_DB_PREFIX.length) : null);
const typeOf = (id: string) => id.slice(0, Math.max(0, id.indexOf(':'))) as Kind;
const KINDS = new Set<Kind>(['system', 'volume', 'status', 'node', 'template']);
const BATCH = 500;

export class FleetIndex {
  readonly dbs = new Map<string, DbState>();
  readonly events$ = new Subject<FleetEvent>();
  private eventId = 0;
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** When each database was first seen dirty and not yet caught up (for the lag metric). */
  private readonly dirtySince = new Map<string, number>();
  private stopped = false;
  private dirtySnapshot = false;
  private snapshotTimer?: NodeJS.Timeout;
  private follow?: Promise<void>;
  /** In-flight requests, aborted on stop (one controller each: a shared signal collects listeners). */
  private readonly inflight = new Set<AbortController>();
  /** Per-database counts for node rows, dropped when the database changes (a listing of 1,000 nodes
   * walked every document of every node on each call). */
  private readonly summaries = new Map<string, { systems: number; phases: Record<string, number> }>();
  lastError: string | null = null;
  ready: Promise<void>;
  private markReady!: () => void;

  constructor(private readonly opts: FleetIndexOptions) {
    this.ready = new Promise((r) => (this.markReady = r));
    if (opts.snapshotPath && existsSync(opts.snapshotPath)) {
      try {
        const snap = JSON.parse(readFileSync(opts.snapshotPath, 'utf8')) as { dbs: Record<string, DbState> };
        for (const [name, state] of Object.entries(snap.dbs)) this.dbs.set(name, state);
      } catch (err) {
        opts.log?.(`fleet index: snapshot unreadable, rebuilding: ${(err as Error).message}`);
      }
    }
  }

  private async request<T>(opts: Record<string, unknown>): Promise<T> {
    const ctl = new AbortController();
    this.inflight.add(ctl);
    try {
      return (await this.opts.admin.request({ ...opts, signal: ctl.signal } as never)) as T;
    } finally {
      this.inflight.delete(ctl);
    }
  }

  /** Catches up every database, then follows `_db_updates`. */
  start(): void {
    this.follow = this.run();
    this.snapshotTimer = setInterval(() => this.saveSnapshot(), 2000);
    this.snapshotTimer.unref();
  }

  private async run(): Promise<void> {
    let backoff = 500;
    while (!this.stopped) {
      try {
        // Where the update feed is now, before the catch-up, so no update in between is missed.
        const head = await this.request<{ last_seq: unknown }>({ path: '_db_updates', qs: { since: 'now', feed: 'normal' } });
        let since = head.last_seq;
        const all = (await this.opts.admin.db.list()).filter(isIndexed);
        for (const name of [...this.dbs.keys()]) if (!all.includes(name)) this.forget(name);
        await Promise.all(all.map((db) => this.catchUp(db)));
        this.markReady();
        backoff = 500;
        while (!this.stopped) {
          const r = await this.request<{ results: { db_name: string; type: string }[]; last_seq: unknown }>({ path: '_db_updates', qs: { since, feed: 'longpoll', timeout: 30000 } });
          for (const u of r.results) {
            if (!isIndexed(u.db_name)) continue;
            if (u.type === 'deleted') this.forget(u.db_name);
            else void this.catchUp(u.db_name);
          }
          since = r.last_seq;
        }
      } catch (err) {
        if (this.stopped) return;
        this.lastError = (err as Error).message;
        this.opts.log?.(`fleet index: ${this.lastError}; retrying in ${backoff} ms`);
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  /** Brings one database up to date from its checkpoint; concurrent calls coalesce into one more pass. */
  catchUp(db: string): Promise<void> {
    if (!this.dirtySince.has(db)) this.dirtySince.set(db, Date.now());
    const current = this.running.get(db);
    if (current) {
      this.again.add(db);
      return current;
    }
    const p = (async () => {
      try {
        do {
          this.again.delete(db);
          await this.pull(db);
        } while (this.again.has(db) && !this.stopped);
        this.dirtySince.delete(db);
      } catch (err) {
        if (!this.stopped && (err as { statusCode?: number }).statusCode !== 404) {
          this.lastError = `${db}: ${(err as Error).message}`;
          this.opts.log?.(`fleet index: ${this.lastError}`);
        }
      } finally {
        this.running.delete(db);
      }
    })();
    this.running.set(db, p);
    return p;
  }

  private async pull(db: string): Promise<void> {
    let state = this.dbs.get(db);
    if (!state) {
      state = { seq: 0, docs: {}, conflicts: {} };
      this.dbs.set(db, state);
    }
    for (;;) {
      const r = await this.request<{
        results: { id: string; deleted?: boolean; doc?: Record<string, unknown>; changes: { rev: string }[] }[];
        last_seq: unknown;
      }>({ db, path: '_changes', qs: { since: state.seq, include_docs: true, conflicts: true, limit: BATCH } });
      for (const c of r.results) this.apply(db, state, c);
      state.seq = r.last_seq;
      this.dirtySnapshot = true;
      if (r.results.length < BATCH) return;
    }
  }

  private apply(db: string, state: DbState, c: { id: string; deleted?: boolean; doc?: Record<string, unknown>; changes: { rev: string }[] }): void {
    const type = typeOf(c.id);
    if (!KINDS.has(type)) return;
    this.summaries.delete(db);
    const name = c.id.slice(type.length + 1);
    if (c.deleted || !c.doc) {
      delete state.docs[c.id];
      delete state.conflicts[c.id];
    } else {
      const { _conflicts, ...doc } = c.doc as { _conflicts?: string[] };
      state.docs[c.id] = doc;
      if (_conflicts?.length) state.conflicts[c.id] = _conflicts;
      else delete state.conflicts[c.id];
    }
    this.events$.next({ id: ++this.eventId, type, db, node: nodeOf(db), name, deleted: !!c.deleted, rev: c.changes[0]?.rev ?? '', ...(c.doc && !c.deleted ? { doc: c.doc } : {}) });
  }

  private forget(db: string): void {
    const state = this.dbs.get(db);
    if (!state) return;
    this.dbs.delete(db);
    this.summaries.delete(db);
    this.dirtySnapshot = true;
    for (const id of Object.keys(state.docs)) {
      const type = typeOf(id);
      this.events$.next({ id: ++this.eventId, type, db, node: nodeOf(db), name: id.slice(type.length + 1), deleted: true, rev: '' });
    }
  }

  get lastEventId(): number {
    return this.eventId;
  }

  /** Seconds the oldest unprocessed database change has waited (0 when caught up). */
  lagSeconds(): number {
    let oldest = Infinity;
    for (const t of this.dirtySince.values()) oldest = Math.min(oldest, t);
    return oldest === Infinity ? 0 : (Date.now() - oldest) / 1000;
  }

  private saveSnapshot(): void {
    if (!this.opts.snapshotPath || !this.dirtySnapshot) return;
    this.dirtySnapshot = false;
    const tmp = this.opts.snapshotPath + '.tmp';
    try {
      writeFileSync(tmp, JSON.stringify({ version: 1, dbs: Object.fromEntries(this.dbs) }), { mode: 0o600 });
      renameSync(tmp, this.opts.snapshotPath);
    } catch (err) {
      this.opts.log?.(`fleet index: snapshot not written: ${(err as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const ctl of this.inflight) ctl.abort();
    clearInterval(this.snapshotTimer);
    await this.follow?.catch(() => {});
    await Promise.allSettled([...this.running.values()]);
    this.saveSnapshot();
    this.events$.complete();
  }

  // ---- queries -------------------------------------------------------------------------------

  nodeIds(): string[] {
    return [...this.dbs.keys()].map(nodeOf).filter((n): n is string => n !== null).sort();
  }

  nodeRow(id: string): NodeRow | null {
    const db = NODE_DB_PREFIX + id;
    const state = this.dbs.get(db);
    if (!state) return null;
    const info = state.docs[`node:${id}`] as unknown as NodeDoc | undefined;
    const { systems, phases } = this.summary(db, state);
    const hb = info?.heartbeat ?? null;
    return {
      id, db, hostname: info?.hostname ?? null, heartbeat: hb,
      online: hb !== null && Date.now() - Date.parse(hb) < (this.opts.onlineWithinMs ?? 90_000),
      agentVersion: info?.agentVersion ?? null, systems, phases: { ...phases },
    };
  }

  private summary(db: string, state: DbState): { systems: number; phases: Record<string, number> } {
    let sum = this.summaries.get(db);
    if (sum) return sum;
    sum = { systems: 0, phases: {} };
    for (const [docId, doc] of Object.entries(state.docs)) {
      if (docId.startsWith('system:')) sum.systems++;
      else if (docId.startsWith('status:')) sum.phases[(doc as unknown as StatusDoc).phase] = (sum.phases[(doc as unknown as StatusDoc).phase] ?? 0) + 1;
    }
    this.summaries.set(db, sum);
    return sum;
  }

  systemRows(node?: string): SystemRow[] {
    const rows: SystemRow[] = [];
    for (const [db, state] of this.dbs) {
      const n = nodeOf(db);
      if (n === null || (node !== undefined && n !== node)) continue;
      for (const [id, doc] of Object.entries(state.docs)) {
        if (!id.startsWith('system:')) continue;
        const spec = doc as unknown as SystemDoc;
        const status = state.docs[`status:${spec.name}`] as unknown as StatusDoc | undefined;
        rows.push({
          node: n, name: spec.name, kind: spec.kind, template: spec.template, state: spec.state, labels: spec.labels ?? {}, rev: spec._rev ?? '',
          phase: status?.phase ?? null, observedRev: status?.observedRev ?? null, current: !!status && status.observedRev === spec._rev,
          pid: status?.pid ?? null, message: status?.message ?? null, updated: status?.updated ?? null, conflict: !!state.conflicts[id],
          history: Array.isArray(status?.history) ? status.history : [],
        });
      }
    }
    return rows.sort((x, y) => x.node.localeCompare(y.node) || x.name.localeCompare(y.name));
  }

  docsOf<T>(db: string, type: Kind): T[] {
    const state = this.dbs.get(db);
    if (!state) return [];
    return Object.entries(state.docs).filter(([id]) => id.startsWith(type + ':')).map(([, d]) => d as T).sort((a, b) => String((a as { name: string }).name).localeCompare(String((b as { name: string }).name)));
  }

  templates(): TemplateDoc[] {
    return this.docsOf<TemplateDoc>(CATALOG_DB, 'template');
  }

  volumes(node: string): VolumeDoc[] {
    return this.docsOf<VolumeDoc>(NODE_DB_PREFIX + node, 'volume');
  }

  /** Documents in conflict across the fleet: [{db, id, conflicts}]. */
  conflicts(): { db: string; id: string; conflicts: string[] }[] {
    const out = [];
    for (const [db, state] of this.dbs) for (const [id, revs] of Object.entries(state.conflicts)) out.push({ db, id, conflicts: revs });
    return out;
  }
}
