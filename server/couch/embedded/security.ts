// Where the embedded databases' `_security` objects live: one file, `<data>/couch/security.json`
// (mode 0600), outside every database. No HTTP request can write it except `PUT /{db}/_security`,
// which only a database admin may call. (They used to be `_local/_anybios_security` inside each
// database, and any member may PUT `_local/*`: a node could make itself admin of its own database.)
//
// Migration from that old location, once (when security.json does not exist yet): an old
// `_local/_anybios_security` is NOT trusted, because a member may have written it before the
// upgrade and nothing tells such a document from one the server wrote. Each one is copied to
// `<data>/couch/security-legacy.json` for an admin to review, removed from its database, and the
// database starts admin-only (CouchDB's `admin_only` default). `setupCouch` then gives the catalog
// and every node database whose `_security` is empty their standard objects again, so an anybios
// installation keeps working; a custom database needs its `_security` PUT again by an admin.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { badRequest } from '../errors.ts';

export interface SecurityObject {
  admins: { names: string[]; roles: string[] };
  members: { names: string[]; roles: string[] };
}

export const emptySecurity = (): SecurityObject => ({ admins: { names: [], roles: [] }, members: { names: [], roles: [] } });

/** The old, member-writable location; read only by the one-time migration, then removed. */
export const LEGACY_SECURITY_DOC = '_local/_anybios_security';

function writeAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 1), { mode: 0o600 });
  renameSync(tmp, path);
}

/** What the migration needs from the database store: names, and reading/removing one `_local` doc. */
export interface LegacySource {
  list(): string[];
  readLegacy(db: string): Promise<{ value: unknown; rev: string } | undefined>;
  removeLegacy(db: string, rev: string): Promise<void>;
}

export class SecurityStore {
  private readonly path: string;
  private readonly legacyPath: string;
  private objects = new Map<string, SecurityObject>();
  private ready: Promise<void>;

  constructor(dir: string, source: LegacySource, log: (msg: string) => void = () => {}) {
    this.path = join(dir, 'security.json');
    this.legacyPath = join(dir, 'security-legacy.json');
    if (existsSync(this.path)) {
      const saved = JSON.parse(readFileSync(this.path, 'utf8')) as Record<string, unknown>;
      for (const [db, sec] of Object.entries(saved)) this.objects.set(db, normalizeSecurity(sec));
      this.ready = Promise.resolve();
    } else {
      this.ready = this.migrate(source, log);
      this.ready.catch(() => {}); // reported to every caller of get/put instead
    }
  }

  private async migrate(source: LegacySource, log: (msg: string) => void): Promise<void> {
    const legacy: Record<string, unknown> = existsSync(this.legacyPath) ? JSON.parse(readFileSync(this.legacyPath, 'utf8')) : {};
    let found = 0;
    for (const db of source.list()) {
      const old = await source.readLegacy(db);
      if (old === undefined) continue;
      legacy[db] = old.value;
      found++;
      writeAtomic(this.legacyPath, legacy); // kept before it is removed: a crash loses nothing
      await source.removeLegacy(db, old.rev);
    }
    writeAtomic(this.path, {});
    if (found) log(`_security: ${found} database(s) had a member-writable _local/_anybios_security; not trusted, copied to ${this.legacyPath} and removed (those databases are admin-only until their _security is PUT again)`);
  }

  async get(db: string): Promise<SecurityObject> {
    await this.ready;
    return this.objects.get(db) ?? emptySecurity();
  }

  async put(db: string, value: unknown): Promise<void> {
    const sec = normalizeSecurity(value);
    await this.ready;
    this.objects.set(db, sec);
    this.save();
  }

  /** A deleted database's `_security` goes with it, so a database created again starts admin-only. */
  async remove(db: string): Promise<void> {
    await this.ready;
    if (this.objects.delete(db)) this.save();
  }

  private save(): void {
    writeAtomic(this.path, Object.fromEntries([...this.objects.entries()].sort(([a], [b]) => (a < b ? -1 : 1))));
  }
}

function names(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw badRequest(`_security: ${field} must be an array of strings`);
  return v as string[];
}

/** Checks and fills a `_security` object: {admins:{names,roles}, members:{names,roles}}. */
export function normalizeSecurity(value: unknown): SecurityObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('_security must be a JSON object');
  const v = value as Record<string, Record<string, unknown> | undefined>;
  const part = (k: 'admins' | 'members') => {
    const p = v[k];
    if (p !== undefined && (typeof p !== 'object' || p === null || Array.isArray(p))) throw badRequest(`_security: ${k} must be an object`);
    return { names: names(p?.names, `${k}.names`), roles: names(p?.roles, `${k}.roles`) };
  };
  return { admins: part('admins'), members: part('members') };
}
