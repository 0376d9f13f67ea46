// Live two-way replication of the node's own database (unfiltered: catch-up costs our own changes,
// not the fleet's), with back-off on network loss and a watchdog: PouchDB live sync can stall silently
// after short disconnects (PouchDB issues 9063, 7931), so when the server's database has moved on and
// the pull side has shown no activity for a whole watchdog period, the replication is restarted.
// With several servers (linked sites), a server that stays unreachable for `failoverAfter` probes is
// left for the next one that answers; replication is idempotent by revision, so nothing is lost or
// applied twice, and checkpoints are per server pair.
import http from 'node:http';
import https from 'node:https';
import PouchDB from 'pouchdb';
import { newAgent, oneShotAgent, remoteDb, retireAgent } from './remote.ts';

export { remoteDb };

export type SyncState = 'starting' | 'active' | 'idle' | 'offline' | 'denied' | 'stopped';

export interface NodeSyncOptions {
  local: PouchDB.Database;
  /** The node database on each server, in order of preference, e.g. http://host:8080/db/anybios-node-nas */
  remoteUrls: string[];
  /** Consecutive failed probes before switching to the next server (default 2). */
  failoverAfter?: number;
  /** Called after a switch to another server (index into remoteUrls). */
  onSwitch?: (index: number, url: string) => void;
  auth: { username: string; password: string };
  watchdogMs?: number;
  /** Probe timeout: a server that does not answer in time counts as unreachable. */
  probeTimeoutMs?: number;
  log?: (msg: string) => void;
  onState?: (state: SyncState) => void;
}

export class NodeSync {
  state: SyncState = 'starting';
  restarts = 0;
  lastPullActivity = 0;
  lastError: string | null = null;
  private sync?: PouchDB.Replication.Sync<object>;
  private remote: PouchDB.Database;
  /** The connection pool of the current replication; replaced (and its sockets destroyed) on restart. */
  private agent: http.Agent;
  private watchdog?: NodeJS.Timeout;
  private lastRemoteSeq: unknown = undefined;
  private remoteAdvancedAt = 0;
  private lastProbeAt = 0;
  private stopped = false;
  private failedProbes = 0;
  /** When the replication last reported itself offline while the server answers our probes. */
  private offlineSince = 0;
  /** When the replication last went active (requests out) after being idle. */
  private activeSince = 0;
  /** Index of the server in use. */
  current = 0;
  switches = 0;

  constructor(private readonly opts: NodeSyncOptions) {
    if (!opts.remoteUrls.length) throw new Error('NodeSync needs at least one server URL');
    this.agent = newAgent(opts.remoteUrls[0]);
    this.remote = remoteDb(opts.remoteUrls[0], opts.auth, this.agent);
  }

  /** New connection pool and remote handle for `url`; the old pool's sockets are destroyed. */
  private renewRemote(url: string): void {
    const old = this.remote;
    void old.close().catch(() => {});
    retireAgent(this.agent);
    this.agent = newAgent(url);
    this.remote = remoteDb(url, this.opts.auth, this.agent);
  }

  get remoteUrl(): string {
    return this.opts.remoteUrls[this.current];
  }

  private authHeader(): string {
    return 'Basic ' + Buffer.from(`${this.opts.auth.username}:${this.opts.auth.password}`).toString('base64');
  }

  /**
   * The update_seq of a server's copy of our database. Always over a new connection (agent: false): a
   * pooled socket may be one of the silently dead ones the watchdog is looking for.
   */
  private probe(url: string): Promise<{ ok: true; seq: unknown } | { ok: false; status: number | null }> {
    return new Promise((resolve) => {
      const mod = url.startsWith('https:') ? https : http;
      let agent: http.Agent;
      try {
        agent = oneShotAgent(url); // the server's TLS trust (agent/sync/tls.ts); refuses plain HTTP off loopback
      } catch (err) {
        this.lastError = (err as Error).message;
        return resolve({ ok: false, status: null });
      }
      const req = mod.get(url, { agent, headers: { Authorization: this.authHeader(), Accept: 'application/json' }, timeout: this.opts.probeTimeoutMs ?? 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { if (body.length < 1_000_000) body += d; });
        res.on('end', () => {
          if (res.statusCode !== 200) return resolve({ ok: false, status: res.statusCode ?? null });
          try {
            resolve({ ok: true, seq: (JSON.parse(body) as { update_seq: unknown }).update_seq });
          } catch {
            resolve({ ok: false, status: null });
          }
        });
        res.on('error', () => resolve({ ok: false, status: null }));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', (err) => {
        this.lastError = err.message; // e.g. a certificate that is not the pinned one (agent/sync/tls.ts)
        resolve({ ok: false, status: null });
      });
    });
  }

  /** Moves to the next server that answers; stays put when none does. */
  private async failover(): Promise<void> {
    const urls = this.opts.remoteUrls;
    for (let step = 1; step < urls.length; step++) {
      const i = (this.current + step) % urls.length;
      if ((await this.probe(urls[i])).ok) {
        this.opts.log?.(`sync: ${urls[this.current]} unreachable; failing over to ${urls[i]}`);
        this.sync?.cancel();
        this.current = i;
        this.switches++;
        this.failedProbes = 0;
        this.lastRemoteSeq = undefined;
        this.remoteAdvancedAt = 0;
        this.renewRemote(urls[i]);
        this.begin();
        this.opts.onSwitch?.(i, urls[i]);
        return;
      }
    }
  }

  private setState(s: SyncState): void {
    if (this.state === s) return;
    this.state = s;
    this.opts.onState?.(s);
  }

  start(): void {
    this.stopped = false;
    this.begin();
    const every = this.opts.watchdogMs ?? 15_000;
    this.watchdog = setInterval(() => void this.check(), every);
    this.watchdog.unref();
  }

  private begin(): void {
    const sync = this.opts.local.sync(this.remote, {
      live: true,
      retry: true,
      heartbeat: 10_000,
      batch_size: 200,
      back_off_function: (delay: number) => (delay === 0 ? 1000 : Math.min(delay * 2, 60_000)),
    } as PouchDB.Replication.SyncOptions);
    this.sync = sync;
    const pullActive = () => { this.lastPullActivity = Date.now(); };
    // PouchDB's Sync exposes its two replications; only the pull side proves we still hear the server.
    const pull = (sync as unknown as { pull?: PouchDB.Replication.Replication<object> }).pull;
    // Progress is a batch written (`change`) or being caught up (`paused` without error); `active` only
    // means a request went out, which is exactly what hangs on a dead connection.
    pull?.on('change', pullActive);
    pull?.on('paused', (err: unknown) => { if (!err) pullActive(); });
    sync.on('active', () => {
      if (this.state !== 'active') this.activeSince = Date.now();
      this.setState('active');
    });
    sync.on('paused', (err) => {
      if (err) {
        this.lastError = String((err as Error).message ?? err);
        this.setState('offline');
      } else this.setState('idle');
    });
    sync.on('denied', (err) => {
      this.lastError = `denied: ${JSON.stringify(err).slice(0, 300)}`;
      this.opts.log?.(`sync: a document was refused by the server: ${this.lastError}`);
    });
    sync.on('error', (err) => {
      this.lastError = String((err as Error)?.message ?? err);
      const status = (err as { status?: number }).status;
      this.setState(status === 401 || status === 403 ? 'denied' : 'offline');
      this.opts.log?.(`sync stopped with an error (${this.lastError}); restarting in 5 s`);
      if (!this.stopped) setTimeout(() => this.restart('error'), 5000).unref();
    });
  }

  /** Cancels and starts again from the checkpoints (incremental: nothing is re-sent). */
  restart(why: string): void {
    if (this.stopped) return;
    this.restarts++;
    this.opts.log?.(`sync: restarting replication (${why})`);
    this.sync?.cancel();
    this.renewRemote(this.remoteUrl);
    this.offlineSince = 0;
    this.activeSince = 0;
    this.begin();
  }

  private async check(): Promise<void> {
    if (this.stopped) return;
    const every = this.opts.watchdogMs ?? 15_000;
    const r = await this.probe(this.remoteUrl);
    if (this.stopped) return;
    if (!r.ok) {
      this.setState(r.status === 401 || r.status === 403 ? 'denied' : 'offline');
      if (++this.failedProbes >= (this.opts.failoverAfter ?? 2) && this.opts.remoteUrls.length > 1) await this.failover();
      return;
    }
    this.failedProbes = 0;
    // The server answers on a new connection but the replication still says offline (its retries hang
    // on dead pooled sockets, or its back-off grew long): restart it on a fresh pool.
    if (this.state === 'offline') {
      if (!this.offlineSince) this.offlineSince = Date.now();
      else if (Date.now() - this.offlineSince >= every) {
        this.restart('watchdog: the server answers but the replication is still offline');
        return;
      }
    } else this.offlineSince = 0;
    const seq = r.seq;
    const now = Date.now();
    // Seq values are opaque: we only compare them for equality with the previous probe.
    const key = JSON.stringify(seq);
    const advanced = this.lastRemoteSeq !== undefined && key !== this.lastRemoteSeq;
    this.lastRemoteSeq = key;
    // The change happened after the previous probe at the earliest: pull activity since then counts.
    if (advanced && !this.remoteAdvancedAt) this.remoteAdvancedAt = this.lastProbeAt || now;
    this.lastProbeAt = now;
    if (this.remoteAdvancedAt && this.lastPullActivity > this.remoteAdvancedAt) this.remoteAdvancedAt = 0;
    if (this.remoteAdvancedAt && now - this.remoteAdvancedAt >= every) {
      this.remoteAdvancedAt = 0;
      this.restart('watchdog: the server has changes and the pull side made no progress');
      return;
    }
    // A healthy live sync goes back to idle within moments of going active. Active for two whole
    // periods with no pull progress means its requests hang (a dead connection that never errors).
    if (this.state === 'active' && this.activeSince && now - this.activeSince >= 2 * every && this.lastPullActivity < this.activeSince) {
      this.restart('watchdog: the replication has been busy with no progress');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.watchdog);
    this.sync?.cancel();
    this.setState('stopped');
    await this.remote.close().catch(() => {});
    retireAgent(this.agent);
  }
}
