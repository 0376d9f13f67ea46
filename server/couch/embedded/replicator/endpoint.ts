// A replication endpoint as CouchDB 3 takes it: a URL string (credentials in it allowed) or
// `{url, headers, auth: {basic: {username, password}}}`. Only http:// and https:// URLs: CouchDB 3 no
// longer replicates "local" databases by name. Credentials end up in an Authorization header and never
// in the URL we show (`_scheduler`, `_active_tasks`, logs).
//
// The reach rule (docs/couchdb.md, "Replication"): a replication owned by anyone but a server admin may
// not reach loopback, link-local (cloud metadata), unspecified or multicast addresses — checked on the
// literal host when the document is written and again on every address a name resolves to, at connect
// time (a DNS answer that changes after the check is caught there too). The server never adds
// credentials of its own to a replication's requests.
import { isIP } from 'node:net';
import { lookup as dnsLookup } from 'node:dns';
import { CouchError, badRequest } from '../../errors.ts';
import { isObject } from '../../http.ts';

export interface Endpoint {
  /** Without credentials; as given otherwise. */
  url: string;
  /** Sent with every request (the credentials among them). */
  headers: Record<string, string>;
  /** A database of this server named in `_replicate` (see `LocalNames`): the reach rule does not apply. */
  self?: true;
}

/**
 * `_replicate` only (CouchDB 3.5's chttpd "hack"): a database NAME as source or target means this server's
 * database, reached over HTTP with the caller's own Authorization header and session cookie — never
 * credentials of the server's. `_replicator` documents get no such help (local_endpoints_not_supported).
 */
export type LocalNames = (name: string) => Endpoint;

const MAX_URL = 4096;
const MAX_HEADERS = 32;

/** CouchDB's name for an endpoint it does not take as a URL (`{error, <<"… has an invalid url">>}`). */
const invalidUrl = (field: string, why: string) => new CouchError(400, 'invalid_replication', `${field} has an invalid url: ${why}`);

const isHttp = (v: string) => /^https?:\/\//i.test(v);

export function parseEndpoint(v: unknown, field: 'source' | 'target', local?: LocalNames): Endpoint {
  if (v === undefined || v === null) throw badRequest(`${field} is missing: the URL of a database, e.g. http://user:password@host:5984/db`);
  const name = typeof v === 'string' ? v : isObject(v) && typeof v.url === 'string' ? v.url : null;
  if (name !== null && !isHttp(name)) {
    // Another scheme (file:, ftp:, gopher:…) is no database name either (names cannot hold ':').
    if (/^[a-z][a-z0-9+.-]*:/i.test(name)) throw invalidUrl(field, 'only http:// and https:// are replicated');
    if (local && name.length > 0 && name.length <= 1024) return local(name);
    throw new CouchError(400, 'local_endpoints_not_supported', `local_endpoints_not_supported: ${field} "${name.slice(0, 100)}" is not an http(s) URL; a replication document names databases by URL (here: <server>/db/<name>)`);
  }
  if (typeof v === 'string') return fromUrl(v, {}, field);
  if (!isObject(v)) throw badRequest(`${field} must be a URL string or an object {url, headers, auth}`);
  if (typeof v.url !== 'string') throw invalidUrl(field, 'url must be a string');
  const headers: Record<string, string> = {};
  if (v.headers !== undefined) {
    if (!isObject(v.headers)) throw badRequest(`${field}.headers must be an object of strings`);
    const entries = Object.entries(v.headers);
    if (entries.length > MAX_HEADERS) throw badRequest(`${field}.headers has more than ${MAX_HEADERS} entries`);
    for (const [k, val] of entries) {
      if (typeof val !== 'string') throw badRequest(`${field}.headers.${k.slice(0, 60)} must be a string`);
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/.test(k) || /[\r\n\0]/.test(val) || val.length > 8192) throw badRequest(`${field}.headers: "${k.slice(0, 60)}" is not a valid HTTP header`);
      headers[k] = val;
    }
  }
  if (v.auth !== undefined) {
    if (!isObject(v.auth)) throw badRequest(`${field}.auth must be an object`);
    const b = v.auth.basic;
    if (b !== undefined) {
      if (!isObject(b) || typeof b.username !== 'string' || typeof b.password !== 'string') throw badRequest(`${field}.auth.basic must be {username, password} (strings)`);
      setHeader(headers, 'Authorization', basicOf(b.username, b.password));
    }
  }
  return fromUrl(v.url as string, headers, field);
}

function fromUrl(raw: string, headers: Record<string, string>, field: string): Endpoint {
  if (raw.length > MAX_URL) throw invalidUrl(field, `longer than ${MAX_URL} characters`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw invalidUrl(field, 'not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalidUrl(field, 'only http:// and https:// are replicated');
  if (u.username || u.password) {
    let user: string, pass: string;
    try {
      [user, pass] = [decodeURIComponent(u.username), decodeURIComponent(u.password)];
    } catch {
      throw invalidUrl(field, 'the credentials in it are not valid percent-encoding');
    }
    // Explicit headers win, as CouchDB's ukeymerge does.
    if (!hasHeader(headers, 'authorization')) headers['Authorization'] = basicOf(user, pass);
    u.username = '';
    u.password = '';
  }
  u.hash = '';
  return { url: u.toString().replace(/\/+$/, ''), headers };
}

const basicOf = (user: string, pass: string) => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
const hasHeader = (h: Record<string, string>, name: string) => Object.keys(h).some((k) => k.toLowerCase() === name);
function setHeader(h: Record<string, string>, name: string, value: string): void {
  for (const k of Object.keys(h)) if (k.toLowerCase() === name.toLowerCase()) delete h[k];
  h[name] = value;
}

/** How CouchDB shows an endpoint in `_scheduler` and `_active_tasks`: no credentials, a trailing `/`. */
export const showEndpoint = (e: Endpoint) => (e.url.includes('?') ? e.url : `${e.url}/`);

// ---- the reach rule -----------------------------------------------------------------------------------

/** Addresses a replication not owned by a server admin may not connect to. */
export function isForbiddenAddress(address: string): boolean {
  const v = isIP(address);
  if (v === 4) {
    const [a, b] = address.split('.').map(Number);
    return a === 127 || a === 0 || (a === 169 && b === 254) || a >= 224;
  }
  if (v === 6) {
    const x = address.toLowerCase();
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(x);
    if (mapped) return isForbiddenAddress(mapped[1]);
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(x); // the WHATWG URL parser writes them this way
    if (hex) {
      const [hi, lo] = [parseInt(hex[1], 16), parseInt(hex[2], 16)];
      return isForbiddenAddress(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
    }
    return x === '::1' || x === '::' || /^fe[89ab]/.test(x) || x.startsWith('ff');
  }
  return false;
}

/** The literal host of an endpoint breaks the reach rule (names resolve at connect time, see guardedLookup). */
export function forbiddenHost(e: Endpoint): string | null {
  if (e.self) return null;
  const host = new URL(e.url).hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return host;
  return isIP(host) && isForbiddenAddress(host) ? host : null;
}

type LookupCb = (err: NodeJS.ErrnoException | null, address: string | { address: string; family: number }[], family?: number) => void;

/** A `lookup` for http.Agent that refuses forbidden addresses (see the header). */
export function guardedLookup(hostname: string, options: object, cb: LookupCb): void {
  dnsLookup(hostname, { ...(options as object), all: true }, (err, addresses) => {
    if (err) return cb(err, []);
    const list = addresses as unknown as { address: string; family: number }[];
    const bad = list.find((a) => isForbiddenAddress(a.address));
    if (bad) {
      const e = Object.assign(new Error(`${hostname} resolves to ${bad.address}: a replication not owned by a server admin may not reach loopback, link-local or unspecified addresses`), { code: 'EFORBIDDENADDR' });
      return cb(e, []);
    }
    if ((options as { all?: boolean }).all) return cb(null, list);
    cb(null, list[0].address, list[0].family);
  });
}
