// Who calls the API, and acting as them: the caller's Authorization or session cookie is checked by
// CouchDB's own `_session`, and every read or write the API makes on their behalf carries the same
// credentials — so the API can never do what Fauxton could not.
import type { Request } from 'express';
import type { ServerScope } from 'nano';
import nano, { type Configuration } from 'nano';
import { ApiError } from './errors.ts';
import { forwardedFor } from '../couch/proxy.ts';

export interface Caller {
  name: string;
  roles: string[];
  /** nano on the CouchDB API with the caller's credentials. */
  couch: ServerScope;
}

interface Cached { name: string; roles: string[]; until: number }

export class Callers {
  private readonly cache = new Map<string, Cached>();

  /** `couchUrl` is how this server reaches the CouchDB API (its own /db, or COUCH_URL without credentials). */
  constructor(private readonly couchUrl: string, private readonly ttlMs = 10_000) {}

  private credentialHeaders(req: Request): Record<string, string> {
    const h: Record<string, string> = {};
    if (req.headers.authorization) h.authorization = req.headers.authorization;
    const cookie = /(?:^|;\s*)AuthSession=([^;]*)/.exec(req.headers.cookie ?? '');
    if (cookie) h.cookie = `AuthSession=${cookie[1]}`;
    // Apache CouchDB's lockout counts wrong passwords per caller address (see forwardedFor).
    h['x-forwarded-for'] = forwardedFor(req);
    return h;
  }

  couchFor(headers: Record<string, string>): ServerScope {
    return nano({ url: this.couchUrl, parseUrl: false, headers } as Configuration);
  }

  async of(req: Request): Promise<Caller> {
    const headers = this.credentialHeaders(req);
    const key = `${headers.authorization ?? ''}|${headers.cookie ?? ''}`;
    if (key === '|') throw new ApiError(401, 'unauthorized', 'log in first: send Basic credentials or the AuthSession cookie from POST /db/_session');
    const couch = this.couchFor(headers);
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return { name: hit.name, roles: hit.roles, couch };
    let session: { userCtx?: { name: string | null; roles: string[] } };
    try {
      session = (await couch.request({ path: '_session' })) as typeof session;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 401) throw new ApiError(401, 'unauthorized', 'name or password is incorrect');
      // Apache CouchDB's lockout after repeated wrong passwords from this caller ([chttpd_auth_lockout]).
      if ((err as { statusCode?: number }).statusCode === 403) throw new ApiError(403, 'forbidden', (err as Error).message || 'refused by CouchDB');
      throw err;
    }
    const u = session.userCtx;
    if (!u?.name) throw new ApiError(401, 'unauthorized', 'log in first: the session is not valid (expired?)');
    if (this.cache.size > 1000) this.cache.clear();
    this.cache.set(key, { name: u.name, roles: u.roles, until: Date.now() + this.ttlMs });
    return { name: u.name, roles: u.roles, couch };
  }
}
