// One site link: this server ↔ one remote CouchDB API (another anybios server, or a CouchDB). The link
// decides WHAT is replicated and carries what replication does not; the ReplicatorEngine has our own
// CouchDB's replicator do the replicating through `_replicator` documents, on both back ends.
//
// The sweep (at start, every `sweepMs`, and at once when `_db_updates` reports a created or deleted
// database on either side) lists both sides' anybios databases — the catalog `anybios` and every
// `anybios-node-*` — creates on one side those only the other has (a node enrolled at one site gets its
// database at every linked site), makes both `_security` objects equal (their union), and keeps the
// engine replicating each of them plus the node users (`org.couchdb.user:node-*` in `_users`, derived
// keys included) both ways. A database that was on both sides once and is gone from one (a node
// removed there) is not re-created and not deleted: it is reported as `deleted-remote|deleted-local`
// until it is removed at the other site too.
import { CATALOG_DB, NODE_DB_PREFIX } from '../../ddocs/build.ts';
import { CouchHttp, CouchHttpError } from './couch-http.ts';
import { describe, type Direction, type LaneStatus } from './lane.ts';
import { ReplicatorEngine } from './replicator-engine.ts';
import type { LinkRecord } from './store.ts';

export type LinkState = 'up' | 'degraded' | 'down';

export interface SiteDbStatus {
  db: string;
  state: 'idle' | 'syncing' | 'waiting' | 'error' | 'deleted-local' | 'deleted-remote';
  pending: number | null;
  lastSync: string | null;
  lastError: string | null;
  push: LaneStatus | null;
  pull: LaneStatus | null;
}

export interface SiteStatus {
  id: string;
  /** The remote's CouchDB API root (no credentials). */
  url: string;
  user: string;
  createdAt: string;
  mode: 'embedded' | 'replicator';
  /** up: reachable and every database replicating; degraded: reachable, some database failing; down: unreachable or refusing us. */
  state: LinkState;
  /** When the link was last fully caught up (every database, both ways). */
  lastSync: string | null;
  /** Changes not yet replicated, summed over databases and directions (an upper bound; null: unknown). */
  pending: number | null;
  lastError: string | null;
  lastErrorAt: string | null;
  databases: SiteDbStatus[];
}

export const isAnybiosDb = (db: string) => db === CATALOG_DB || db.startsWith(NODE_DB_PREFIX);
const USERS = '_users';

type Sec = { admins?: { names?: string[]; roles?: string[] }; members?: { names?: string[]; roles?: string[] } };

function unionSecurity(a: Sec, b: Sec): Required<{ admins: { names: string[]; roles: string[] }; members: { names: string[]; roles: string[] } }> {
  const u = (x: string[] = [], y: string[] = []) => [...new Set([...x, ...y])].sort();
  return {
    admins: { names: u(a.admins?.names, b.admins?.names), roles: u(a.admins?.roles, b.admins?.roles) },
    members: { names: u(a.members?.names, b.members?.names), roles: u(a.members?.roles, b.members?.roles) },
  };
}

const normSec = (s: Sec) => unionSecurity(s, {});
const sameSec = (a: Sec, b: Sec) => JSON.stringify(normSec(a)) === JSON.stringify(normSec(b));
const emptySec = (s: Sec) => !s.members?.names?.length && !s.members?.roles?.length && !s.admins?.names?.length && !s.admins?.roles?.length;

export interface SiteLinkOptions {
  /** Our own CouchDB API root with admin credentials. */
  local: CouchHttp;
  external: boolean;
  sweepMs: number;
  /** How often the jobs' states are read from `_scheduler/docs` between sweeps (default 2 s). */
  refreshMs?: number;
  log: (msg: string) => void;
  /** The record changed (its `known` list): persist it. */
  save: () => void;
}

export class SiteLink {
  readonly remote: CouchHttp;
  private readonly engine: ReplicatorEngine;
  private refreshTimer?: NodeJS.Timeout;
  private stopped = true;
  private readonly abort = new AbortController();
  private sweepTimer?: NodeJS.Timeout;
  private sweeping: Promise<void> | null = null;
  private sweepAgain = false;
  private sweepFailures = 0;
  private contacted = false;
  private remoteError: { message: string; at: number } | null = null;
  private localError: { message: string; at: number } | null = null;
  private lastSyncAt: number | null = null;
  private readonly deleted = new Map<string, 'deleted-local' | 'deleted-remote'>();
  /** Databases whose `_security` was seen equal and non-empty on both sides. */
  private readonly secDone = new Set<string>();

  /** Our side, its requests ended when the link stops. */
  private readonly local: CouchHttp;

  constructor(readonly record: LinkRecord, private readonly opts: SiteLinkOptions) {
    this.remote = new CouchHttp(record.url, { username: record.user, password: record.password }, 15_000, this.abort.signal);
    this.local = opts.local.withSignal(this.abort.signal);
    const common = { linkId: record.id, local: this.local, remote: this.remote, log: opts.log };
    this.engine = new ReplicatorEngine(common);
  }

  start(): void {
    this.stopped = false;
    this.engine.start();
    this.requestSweep();
    this.scheduleRefresh();
    // Databases created or deleted at either side are swept at once (not after sweepMs).
    void this.follow('local', this.local);
    void this.follow('remote', this.remote);
  }

  /** Between sweeps: the jobs' states, and `_security` of databases replicated before theirs was written. */
  private scheduleRefresh(): void {
    this.refreshTimer = setTimeout(async () => {
      if (this.stopped) return;
      try {
        if (this.engine.dbs().length) {
          await this.on('local', () => this.engine.refresh());
          for (const db of this.engine.dbs()) if (db !== USERS && !this.secDone.has(db)) await this.syncSecurity(db).catch(() => {});
          this.markIfSettled();
        }
      } catch {
        // noted by `on`; the next tick tries again
      }
      if (!this.stopped) this.scheduleRefresh();
    }, this.opts.refreshMs ?? 2000);
    this.refreshTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    clearTimeout(this.sweepTimer);
    clearTimeout(this.refreshTimer);
    await this.engine.stop();
    await this.sweeping?.catch(() => {});
  }

  /** Stops and removes what the link left behind on our side (the `_replicator` documents). */
  async remove(): Promise<void> {
    await this.stop();
    await this.engine.removeAll(this.opts.local);
  }

  // ---- the sweep ---------------------------------------------------------------------------------

  requestSweep(delayMs = 50): void {
    if (this.stopped) return;
    if (this.sweeping) {
      this.sweepAgain = true;
      return;
    }
    clearTimeout(this.sweepTimer);
    this.sweepTimer = setTimeout(() => {
      this.sweeping = this.sweep().finally(() => {
        this.sweeping = null;
        if (this.stopped) return;
        if (this.sweepAgain) {
          this.sweepAgain = false;
          this.requestSweep();
        } else {
          const backoff = this.sweepFailures ? Math.min(1000 * 2 ** this.sweepFailures, this.opts.sweepMs) : this.opts.sweepMs;
          this.requestSweep(backoff);
        }
      });
    }, delayMs);
    this.sweepTimer.unref();
  }

  private async sweep(): Promise<void> {
    try {
      const problems = await this.sweepOnce();
      this.sweepFailures = 0;
      this.localError = problems.length ? { message: problems.join('; '), at: Date.now() } : null;
    } catch (err) {
      if (this.stopped) return;
      this.sweepFailures++;
      if (this.sweepFailures === 1 || this.sweepFailures % 10 === 0) this.opts.log(`site ${this.record.id}: sweep failed: ${describe(err)}`);
    }
  }

  /** Runs `fn` against one side, recording whether that side answers. */
  private async on<T>(side: 'local' | 'remote', fn: () => Promise<T>): Promise<T> {
    try {
      const out = await fn();
      if (side === 'remote') this.remoteOk();
      return out;
    } catch (err) {
      this.noteError(side, err);
      throw err;
    }
  }

  private remoteOk(): void {
    this.contacted = true;
    this.remoteError = null;
  }

  private noteError(side: 'local' | 'remote', err: unknown): void {
    if (this.stopped) return;
    const message = `${side === 'remote' ? 'remote' : 'local'}: ${describe(err)}`;
    const e = err instanceof CouchHttpError ? err : null;
    if (side === 'remote' && (!e || e.unreachable || e.authFailed)) this.remoteError = { message, at: Date.now() };
    else this.localError = { message, at: Date.now() };
  }

  /** One sweep; returns what went wrong without stopping it (a database that could not be created). */
  private async sweepOnce(): Promise<string[]> {
    const problems: string[] = [];
    const { local, remote } = this;
    const [l, r] = await Promise.all([this.on('local', () => local.allDbs()), this.on('remote', () => remote.allDbs())]);
    const L = new Set(l.filter(isAnybiosDb));
    const R = new Set(r.filter(isAnybiosDb));
    const known = new Set(this.record.known);
    const before = JSON.stringify([...known].sort());
    const want: string[] = [];
    this.deleted.clear();
    for (const db of [...new Set([...L, ...R])].sort()) {
      if (L.has(db) && R.has(db)) {
        want.push(db);
        known.add(db);
      } else if (known.has(db)) {
        this.deleted.set(db, L.has(db) ? 'deleted-remote' : 'deleted-local');
      } else {
        // New at one side: create it at the other, with the same _security, before replicating into it.
        // One database that cannot be made does not hold up the others (the next sweep tries again).
        const [from, to, side] = L.has(db) ? [local, remote, 'remote' as const] : [remote, local, 'local' as const];
        try {
          await this.on(side, () => to.createDb(db));
          const sec = await this.on(side === 'remote' ? 'local' : 'remote', () => from.get<Sec>(`/${encodeURIComponent(db)}/_security`));
          if (!emptySec(sec)) await this.on(side, () => to.put(`/${encodeURIComponent(db)}/_security`, sec));
        } catch (err) {
          if (err instanceof CouchHttpError && err.unreachable) throw err;
          problems.push(`creating ${db} at the ${side} side failed: ${describe(err)}`);
          this.opts.log(`site ${this.record.id}: ${problems[problems.length - 1]}`);
          continue;
        }
        this.opts.log(`site ${this.record.id}: created ${db} at the ${side} side`);
        want.push(db);
        known.add(db);
      }
    }
    for (const db of [...known]) if (!L.has(db) && !R.has(db)) known.delete(db); // gone at both: forget it
    const after = JSON.stringify([...known].sort());
    if (after !== before) {
      this.record.known = [...known].sort();
      this.opts.save();
    }
    const replicated = [...want];
    if (l.includes(USERS) && r.includes(USERS)) replicated.push(USERS);
    for (const db of this.engine.dbs()) if (!replicated.includes(db)) await this.engine.drop(db);
    for (const db of replicated) await this.engine.ensure(db);
    await this.mapLimit(want, 8, (db) => this.syncSecurity(db));
    await this.on('local', () => this.engine.refresh());
    this.contacted = true;
    this.markIfSettled();
    return problems;
  }

  /** Makes both sides' `_security` of `db` their union (node databases: `nodeSecurity(id)` at both). */
  private async syncSecurity(db: string): Promise<void> {
    const path = `/${encodeURIComponent(db)}/_security`;
    const [a, b] = await Promise.all([this.on('local', () => this.local.get<Sec>(path)), this.on('remote', () => this.remote.get<Sec>(path))]);
    const merged = unionSecurity(a, b);
    if (!sameSec(a, merged)) await this.on('local', () => this.local.put(path, merged));
    if (!sameSec(b, merged)) await this.on('remote', () => this.remote.put(path, merged));
    if (!emptySec(merged)) this.secDone.add(db);
  }

  private async mapLimit<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
    let i = 0;
    const errors: unknown[] = [];
    await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) {
        const x = items[i++];
        await fn(x).catch((err) => errors.push(err));
      }
    }));
    if (errors.length) throw errors[0];
  }

  private markIfSettled(): void {
    if (this.engine.settled() && !this.remoteError) this.lastSyncAt = Date.now();
  }

  // ---- _db_updates followers ------------------------------------------------------

  private async follow(side: 'local' | 'remote', http: CouchHttp): Promise<void> {
    let since = 'now';
    let failures = 0;
    while (!this.stopped) {
      try {
        const res = await http.get<{ results?: { db_name: string; type: string }[]; last_seq?: unknown }>(
          `/_db_updates?feed=longpoll&timeout=25000&since=${encodeURIComponent(since)}`,
          { timeoutMs: 40_000, signal: this.abort.signal },
        );
        if (this.stopped) return;
        if (side === 'remote') this.remoteOk();
        if (failures > 0) {
          // We may have missed databases created meanwhile: look at everything again.
          this.requestSweep();
        }
        failures = 0;
        for (const row of res.results ?? []) this.onDbUpdate(side, row.db_name, row.type);
        if (res.last_seq !== undefined && res.last_seq !== null) since = String(res.last_seq);
      } catch (err) {
        if (this.stopped) return;
        failures++;
        this.noteError(side, err);
        const e = err as CouchHttpError;
        // A `since` the other side no longer understands (e.g. it was replaced): start from now.
        if (e.status === 400) since = 'now';
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(1000 * 2 ** Math.min(failures, 5), 30_000));
          this.abort.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
        });
      }
    }
  }

  private onDbUpdate(side: 'local' | 'remote', db: string, type: string): void {
    if (db !== USERS && !isAnybiosDb(db)) return;
    if (type === 'created' || type === 'deleted') {
      this.requestSweep();
      return;
    }
    // An update of a database not replicated yet (one that existed before we followed): sweep.
    if (!this.engine.dbs().includes(db)) this.requestSweep();
  }

  // ---- status ------------------------------------------------------------------------------------

  status(): SiteStatus {
    const dbs = [...new Set([...this.engine.dbs(), ...this.deleted.keys()])].sort();
    const databases: SiteDbStatus[] = dbs.map((db) => {
      const gone = this.deleted.get(db);
      const push = this.engine.laneStatus(db, 'push');
      const pull = this.engine.laneStatus(db, 'pull');
      const lanes = [push, pull].filter((x): x is LaneStatus => !!x);
      const order: SiteDbStatus['state'][] = ['error', 'syncing', 'waiting', 'idle'];
      const state = gone ?? (lanes.length ? order.find((s) => lanes.some((x) => x.state === s)) ?? 'idle' : 'waiting');
      const pend = lanes.map((x) => x.pending);
      const syncs = lanes.map((x) => x.lastSync).filter((x): x is string => !!x).sort();
      return {
        db,
        state,
        pending: gone ? null : pend.some((p) => p === null) ? null : pend.reduce<number>((s, p) => s + (p ?? 0), 0),
        lastSync: lanes.length === 2 && syncs.length === 2 ? syncs[0] : null,
        lastError: gone ? `${db} was deleted at the ${gone === 'deleted-local' ? 'local' : 'remote'} site and still exists at the other; it is no longer replicated (remove it there too, or re-create it)` : lanes.map((x) => x.lastError).find((e) => !!e) ?? null,
        push,
        pull,
      };
    });
    const failing = this.engine.failing();
    const errors = [
      this.remoteError,
      this.localError,
      ...failing.map((f) => ({ message: `${f.db} ${f.dir}: ${f.error}`, at: Date.now() })),
    ].filter((e): e is { message: string; at: number } => !!e);
    const state: LinkState = !this.contacted || this.remoteError ? 'down' : this.localError || failing.length ? 'degraded' : 'up';
    const pend = databases.filter((d) => !d.state.startsWith('deleted')).map((d) => d.pending);
    return {
      id: this.record.id,
      url: this.record.url,
      user: this.record.user,
      createdAt: this.record.createdAt,
      mode: this.opts.external ? 'replicator' : 'embedded',
      state,
      lastSync: this.lastSyncAt ? new Date(this.lastSyncAt).toISOString() : null,
      pending: pend.some((p) => p === null) ? null : pend.reduce<number>((s, p) => s + (p ?? 0), 0),
      lastError: errors[0]?.message ?? null,
      lastErrorAt: errors[0] ? new Date(errors[0].at).toISOString() : null,
      databases,
    };
  }
}

export type { Direction };
