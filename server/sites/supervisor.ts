// The site link supervisor: every link of this server (from `<data>/sites.json`), started with the
// server and stopped with it. `link` checks that the remote answers as a CouchDB API and that the
// credentials are an admin's there before anything is saved; `unlink` stops a link and forgets it.
import { randomBytes } from 'node:crypto';
import { CouchHttp, CouchHttpError, cleanUrl } from './couch-http.ts';
import { SiteLink, type SiteStatus } from './link.ts';
import { SiteStore, type LinkRecord } from './store.ts';
import { linkTransport, restoreLinkTransport } from './trust.ts';

export type { SiteStatus, SiteDbStatus, LinkState } from './link.ts';
export type { LaneStatus } from './lane.ts';

/** A refused `link`/`unlink`: `status` is the HTTP status the API answers (400, 404, 409, 502). */
export class SiteError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface SiteSupervisorOptions {
  dataDir: string;
  /** This server's CouchDB API root (no credentials) and its admin. */
  local: { url: string; user: string; password: string };
  /** An external CouchDB (COUCH_URL): its replicator runs the links' `_replicator` documents (else the embedded one). */
  external?: boolean;
  /** Full sweep period (databases, `_security`, sequences), default 30 s. */
  sweepMs?: number;
  log?: (msg: string) => void;
}

export interface LinkInput {
  url: string;
  user: string;
  password: string;
  /** The remote certificate's SHA-256, when no trusted CA signs it (sites/trust.ts). */
  fingerprint?: string;
  /** Allow plain http:// to a non-loopback remote. */
  insecureHttp?: boolean;
}

export class SiteSupervisor {
  private readonly store: SiteStore;
  private readonly local: CouchHttp;
  private records: LinkRecord[] = [];
  private readonly links = new Map<string, SiteLink>();
  private started = false;

  constructor(private readonly opts: SiteSupervisorOptions) {
    this.store = new SiteStore(opts.dataDir);
    this.local = new CouchHttp(opts.local.url.replace(/\/+$/, ''), { username: opts.local.user, password: opts.local.password });
  }

  private get log() { return this.opts.log ?? (() => {}); }

  /** Reads sites.json and starts every link (throws when the file is not readable JSON). */
  async start(): Promise<void> {
    this.records = this.store.load();
    this.started = true;
    for (const r of this.records) {
      restoreLinkTransport(r.url, r); // how each remote is verified (sites/trust.ts)
      this.startLink(r);
    }
    if (this.records.length) this.log(`sites: ${this.records.length} link(s) started (${this.records.map((r) => r.url).join(', ')})`);
  }

  async stop(): Promise<void> {
    this.started = false;
    await Promise.all([...this.links.values()].map((l) => l.stop()));
    this.links.clear();
  }

  private startLink(r: LinkRecord): void {
    const link = new SiteLink(r, {
      local: this.local,
      external: !!this.opts.external,
      sweepMs: this.opts.sweepMs ?? 30_000,
      log: this.log,
      save: () => this.save(),
    });
    this.links.set(r.id, link);
    link.start();
  }

  private save(): void {
    this.store.save(this.records);
  }

  /** Status of every link, in the order they were made. */
  list(): SiteStatus[] {
    return this.records.map((r) => this.links.get(r.id)?.status()).filter((s): s is SiteStatus => !!s);
  }

  private find(idOrUrl: string): LinkRecord | undefined {
    const byId = this.records.find((r) => r.id === idOrUrl);
    if (byId) return byId;
    let url: string;
    try {
      url = cleanUrl(idOrUrl);
    } catch {
      return undefined;
    }
    return this.records.find((r) => r.url === url || r.url === `${url}/db`);
  }

  get(idOrUrl: string): SiteStatus | undefined {
    const r = this.find(idOrUrl);
    return r ? this.links.get(r.id)?.status() : undefined;
  }

  /**
   * Links this server with another: `url` is the other anybios server (its `/db` is used) or a CouchDB
   * API root; `user`/`password` are an admin's there. Checks before saving; throws SiteError.
   */
  async link(input: LinkInput): Promise<SiteStatus> {
    if (!this.started) throw new SiteError(503, 'starting', 'the site supervisor is not running');
    const { url, user, password } = checkInput(input);
    const transport = await linkTransport(url, input); // TLS verified (or plain HTTP allowed) before credentials go out
    const remote = await resolveRemote(url, { username: user, password });
    if (this.records.some((r) => r.url === remote.url)) throw new SiteError(409, 'exists', `${remote.url} is linked already (site ${this.records.find((r) => r.url === remote.url)!.id})`);
    const [mine, theirs] = await Promise.all([
      this.local.get<{ uuid?: string }>('/').catch(() => ({ uuid: undefined })),
      remote.get<{ uuid?: string }>('/'),
    ]);
    if ((mine.uuid && mine.uuid === theirs.uuid) || remote.url === this.local.url) throw new SiteError(400, 'self_link', `${remote.url} is this server itself`);
    const record: LinkRecord = { id: randomBytes(4).toString('hex'), url: remote.url, user, password, ...transport, createdAt: new Date().toISOString(), known: [] };
    this.records.push(record);
    this.save();
    this.startLink(record);
    this.log(`sites: linked ${record.url} as site ${record.id}`);
    return this.links.get(record.id)!.status();
  }

  /** Stops the link to `idOrUrl` and forgets it; what was replicated stays at both sites. */
  async unlink(idOrUrl: string): Promise<{ id: string; url: string }> {
    const r = this.find(idOrUrl);
    if (!r) throw new SiteError(404, 'not_found', `no site link ${idOrUrl}`);
    const link = this.links.get(r.id);
    this.links.delete(r.id);
    this.records = this.records.filter((x) => x.id !== r.id);
    this.save();
    try {
      await link?.remove();
    } catch (err) {
      this.log(`sites: unlinking ${r.url}: cleaning up failed: ${(err as Error).message}`);
    }
    this.log(`sites: unlinked ${r.url} (site ${r.id})`);
    return { id: r.id, url: r.url };
  }
}

function checkInput(input: unknown): LinkInput {
  const b = (input ?? {}) as Record<string, unknown>;
  if (typeof b.url !== 'string' || !b.url) throw new SiteError(400, 'invalid', 'url is required: the other anybios server, e.g. http://home.example:8080');
  let u: URL;
  try {
    u = new URL(b.url);
  } catch {
    throw new SiteError(400, 'invalid', `url "${b.url.slice(0, 200)}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SiteError(400, 'invalid', 'url must be http: or https:');
  const user = typeof b.user === 'string' && b.user ? b.user : decodeURIComponent(u.username);
  const password = typeof b.password === 'string' && b.password ? b.password : decodeURIComponent(u.password);
  if (!user) throw new SiteError(400, 'invalid', 'user is required: an admin of the remote site');
  if (!password) throw new SiteError(400, 'invalid', 'password is required: the password of that admin at the remote site');
  return { url: cleanUrl(b.url), user, password };
}

/** Finds the remote's CouchDB API (`URL/db` of an anybios server, else `URL` itself) and checks the admin. */
async function resolveRemote(url: string, auth: { username: string; password: string }): Promise<CouchHttp> {
  const candidates = /\/db$/.test(url) ? [url] : [`${url}/db`, url];
  let lastNotCouch = '';
  for (const c of candidates) {
    const http = new CouchHttp(c, auth, 10_000);
    let root: { couchdb?: string };
    try {
      root = await http.get('/');
    } catch (err) {
      const e = err as CouchHttpError;
      if (e.unreachable) throw new SiteError(502, 'remote_unreachable', `${url} cannot be reached: ${e.reason}`);
      if (e.status === 401 || e.status === 403) throw new SiteError(400, 'remote_unauthorized', `${c} refused the credentials of ${auth.username}: ${e.reason}`);
      lastNotCouch = `${c} answered ${e.status || e.message}`;
      continue;
    }
    if (root?.couchdb !== 'Welcome') {
      lastNotCouch = `${c} does not answer as a CouchDB API`;
      continue;
    }
    let session: { userCtx?: { name?: string | null; roles?: string[] } };
    try {
      session = await http.get('/_session');
    } catch (err) {
      const e = err as CouchHttpError;
      if (e.unreachable) throw new SiteError(502, 'remote_unreachable', `${url} cannot be reached: ${e.reason}`);
      throw new SiteError(400, 'remote_unauthorized', `${c} refused the credentials of ${auth.username}: ${e.reason}`);
    }
    if (!session.userCtx?.name) throw new SiteError(400, 'remote_unauthorized', `${c} refused the credentials of ${auth.username}`);
    if (!session.userCtx.roles?.includes('_admin')) {
      throw new SiteError(400, 'remote_not_admin', `${auth.username} is not an admin at ${c}: a link creates databases and writes _security and _users there, so it needs the remote's admin`);
    }
    return http;
  }
  throw new SiteError(502, 'remote_not_couchdb', `${url} is not an anybios server or CouchDB (${lastNotCouch})`);
}
