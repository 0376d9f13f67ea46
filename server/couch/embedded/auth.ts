// Who is asking: basic auth and `AuthSession` cookies against the `_users` database (CouchDB's format:
// pbkdf2 derived keys, never a stored password) and the server admin from configuration.
// Verified passwords are remembered by derived key, so basic auth costs one pbkdf2 per password change.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { IncomingMessage } from 'node:http';
import { CouchError, badRequest, forbidden, unauthorized } from '../errors.ts';
import type { DbStore } from './store.ts';
import { LiveCallers } from './live-callers.ts';

const pbkdf2Async = promisify(pbkdf2);

export interface UserCtx { name: string | null; roles: string[] }
export const ANONYMOUS: UserCtx = Object.freeze({ name: null, roles: [] as string[] }) as UserCtx;

export const USERS_DB = '_users';
export const USER_PREFIX = 'org.couchdb.user:';
const ITERATIONS = 50_000;
export const SESSION_SECONDS = 12 * 3600; // also `chttpd_auth.timeout` in `_config`
const USER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

interface UserDoc {
  _id: string;
  _rev?: string;
  type: 'user';
  name: string;
  roles: string[];
  password?: string;
  password_scheme?: string;
  pbkdf2_prf?: string;
  iterations?: number;
  derived_key?: string;
  salt?: string;
  [k: string]: unknown;
}

interface Credential { roles: string[]; salt: string; derivedKey: string; iterations: number; prf: string }

export interface AuthOptions {
  adminName: string;
  adminPassword: string;
  /** Signs session cookies; keep it stable across restarts so sessions survive them. */
  secret: string;
}

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

async function derive(password: string, salt: string, iterations: number, prf: string): Promise<string> {
  const digest = prf === 'sha' || prf === 'sha1' ? 'sha1' : prf;
  const keylen = digest === 'sha1' ? 20 : 32;
  return (await pbkdf2Async(password, salt, iterations, keylen, digest)).toString('hex');
}

export class Auth {
  private readonly verified = new Map<string, string>(); // derived key -> sha256(password)
  private readonly admin: Credential;
  /** Requests in progress per user, ended when that user's credentials change (live-callers.ts). */
  readonly live = new LiveCallers();

  constructor(private readonly store: DbStore, private readonly opts: AuthOptions) {
    const salt = randomBytes(16).toString('hex');
    // The admin's key is derived once at start; cheap sha256 here, since it never leaves memory.
    this.admin = { roles: ['_admin'], salt, derivedKey: sha(salt + opts.adminPassword), iterations: 0, prf: 'mem' };
  }

  private async credential(name: string): Promise<Credential | null> {
    if (name === this.opts.adminName) return this.admin;
    if (!this.store.exists(USERS_DB)) return null;
    try {
      const doc = (await this.store.get(USERS_DB).get(USER_PREFIX + name)) as unknown as UserDoc;
      if (!doc.derived_key || !doc.salt) return null;
      return { roles: Array.isArray(doc.roles) ? doc.roles.filter((r) => typeof r === 'string' && !r.startsWith('_')) : [], salt: doc.salt, derivedKey: doc.derived_key, iterations: doc.iterations ?? 10, prf: doc.pbkdf2_prf ?? 'sha' };
    } catch {
      return null;
    }
  }

  private async passwordMatches(cred: Credential, password: string): Promise<boolean> {
    if (cred.prf === 'mem') return safeEqual(sha(cred.salt + password), cred.derivedKey);
    const known = this.verified.get(cred.derivedKey);
    if (known !== undefined) return safeEqual(known, sha(password));
    const key = await derive(password, cred.salt, cred.iterations, cred.prf);
    if (!safeEqual(key, cred.derivedKey)) return false;
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(cred.derivedKey, sha(password));
    return true;
  }

  /** Checks a name and password; 401 when they do not match. */
  async login(name: string, password: string): Promise<UserCtx> {
    const cred = typeof name === 'string' && typeof password === 'string' ? await this.credential(name) : null;
    if (!cred || !(await this.passwordMatches(cred, password))) throw new CouchError(401, 'unauthorized', 'Name or password is incorrect.');
    return { name, roles: cred.roles };
  }

  /** The user of a request: basic auth first, then the session cookie; anonymous when neither. */
  async authenticate(req: IncomingMessage): Promise<{ userCtx: UserCtx; via: 'default' | 'cookie' | null }> {
    const header = req.headers.authorization;
    if (header) {
      const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
      if (!m) throw unauthorized('Authorization header must be Basic');
      const text = Buffer.from(m[1], 'base64').toString('utf8');
      const colon = text.indexOf(':');
      if (colon < 0) throw unauthorized('malformed basic credentials');
      return { userCtx: await this.login(text.slice(0, colon), text.slice(colon + 1)), via: 'default' };
    }
    const cookie = parseCookie(req.headers.cookie ?? '', 'AuthSession');
    if (cookie) {
      const userCtx = await this.fromSession(cookie);
      if (userCtx) return { userCtx, via: 'cookie' };
    }
    return { userCtx: ANONYMOUS, via: null };
  }

  private sign(name: string, expires: number, cred: Credential): string {
    return createHmac('sha256', this.opts.secret + cred.salt).update(`${name}:${expires}`).digest('base64url');
  }

  async sessionCookie(name: string): Promise<string> {
    const cred = await this.credential(name);
    if (!cred) throw unauthorized();
    const expires = Math.floor(Date.now() / 1000) + SESSION_SECONDS;
    const token = Buffer.from(`${name}:${expires.toString(16)}:${this.sign(name, expires, cred)}`).toString('base64url');
    return `AuthSession=${token}; Version=1; Path=/; Max-Age=${SESSION_SECONDS}; HttpOnly; SameSite=Lax`;
  }

  private async fromSession(token: string): Promise<UserCtx | null> {
    const text = Buffer.from(token, 'base64url').toString('utf8');
    const parts = text.split(':');
    if (parts.length !== 3) return null;
    const [name, expHex, mac] = parts;
    const expires = parseInt(expHex, 16);
    if (!Number.isFinite(expires) || expires * 1000 < Date.now()) return null;
    const cred = await this.credential(name);
    if (!cred || !safeEqual(mac, this.sign(name, expires, cred))) return null;
    return { name, roles: cred.roles };
  }

  /**
   * Prepares a `_users` document for storage: checks its shape and replaces `password` with a
   * pbkdf2 derived key. Only admins write users (CouchDB lets users edit themselves; we do not need it).
   */
  async prepareUserDoc(doc: Record<string, unknown>, userCtx: UserCtx, oldDoc: Record<string, unknown> | null = null): Promise<Record<string, unknown>> {
    const id = String(doc._id ?? '');
    if (!userCtx.roles.includes('_admin')) checkSelfUpdate(id, doc, userCtx, oldDoc);
    if (id.startsWith('_design/') || doc._deleted) return doc;
    if (!id.startsWith(USER_PREFIX)) throw forbidden(`_users holds ${USER_PREFIX}<name> documents`);
    const name = id.slice(USER_PREFIX.length);
    if (!USER_NAME_RE.test(name) || name === this.opts.adminName) throw forbidden(`_id: "${name}" is not an allowed user name`);
    if (doc.name !== name) throw forbidden('name must equal the name part of _id');
    if (doc.type !== 'user') throw forbidden('type must be "user"');
    if (!Array.isArray(doc.roles) || !doc.roles.every((r) => typeof r === 'string' && !r.startsWith('_'))) throw forbidden('roles must be an array of role names (not starting with _)');
    if (doc.password !== undefined) {
      if (typeof doc.password !== 'string' || doc.password.length < 8) throw badRequest('password must be a string of at least 8 characters');
      const salt = randomBytes(16).toString('hex');
      const derived_key = await derive(doc.password, salt, ITERATIONS, 'sha256');
      const { password: _drop, ...rest } = doc;
      return { ...rest, password_scheme: 'pbkdf2', pbkdf2_prf: 'sha256', iterations: ITERATIONS, salt, derived_key };
    }
    return doc;
  }
}

/**
 * CouchDB lets a user update its own `_users` document (a password change: an agent rotating its
 * credential, docs/security.md) but not create, delete or rename it, nor change its roles.
 */
function checkSelfUpdate(id: string, doc: Record<string, unknown>, userCtx: UserCtx, oldDoc: Record<string, unknown> | null): void {
  if (!userCtx.name || id !== USER_PREFIX + userCtx.name) throw forbidden('only admins write _users (a user may update its own document)');
  if (!oldDoc || oldDoc._deleted) throw forbidden('only admins create users');
  if (doc._deleted) throw forbidden('only admins delete users');
  if (doc.name !== userCtx.name) throw forbidden('name must equal the name part of _id');
  const roles = (r: unknown) => JSON.stringify(Array.isArray(r) ? [...r].map(String).sort() : r);
  if (roles(doc.roles) !== roles(oldDoc.roles)) throw forbidden('Only _admin may edit roles');
}

/** True when a `_users` write changes what a user can log in with (password or roles, or deletes it). */
export function credentialsChanged(doc: Record<string, unknown>, oldDoc: Record<string, unknown> | null): boolean {
  if (!oldDoc) return false;
  if (doc._deleted) return true;
  return doc.derived_key !== oldDoc.derived_key || doc.salt !== oldDoc.salt || JSON.stringify(doc.roles) !== JSON.stringify(oldDoc.roles);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function parseCookie(header: string, name: string): string | null {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}
