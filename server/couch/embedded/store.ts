// The embedded databases: one on-disk PouchDB (LevelDB) per CouchDB database under <data>/couch/,
// a registry of which databases exist (PouchDB's view indexes live beside them and are not databases),
// `_security` objects (kept outside the databases, see security.ts), one change signal per database
// that feeds _changes and _db_updates, and a per-database lock between writes and _changes reads.
import { mkdirSync, readFileSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Subject } from 'rxjs';
import PouchDB from 'pouchdb';
import { CouchError, notFound } from '../errors.ts';
import { LEGACY_SECURITY_DOC, SecurityStore, type SecurityObject } from './security.ts';
import { RwLock } from './rwlock.ts';

export { emptySecurity, normalizeSecurity, type SecurityObject } from './security.ts';

export type Doc = PouchDB.Core.Document<Record<string, unknown>> & PouchDB.Core.GetMeta & Record<string, unknown>;

export interface DbUpdate {
  db_name: string;
  type: 'created' | 'updated' | 'deleted';
}

// CouchDB's rule (couch_db.erl DBNAME_REGEX), `/` included; as in CouchDB each `/`-separated segment
// has at most 238 characters (the whole name at most 1024 here). And the system databases, also under
// a prefix (`team/_users`), as CouchDB's is_system_db_name allows.
const DB_NAME_RE = /^[a-z][a-z0-9_$()+/-]{0,1023}$/;
const MAX_SEGMENT = 238;
const SYSTEM_DBS = new Set(['_users', '_replicator', '_global_changes']);

export function checkDbName(name: string): void {
  const slash = name.lastIndexOf('/');
  const ok = DB_NAME_RE.test(name) || SYSTEM_DBS.has(name)
    || (slash > 0 && SYSTEM_DBS.has(name.slice(slash + 1)) && DB_NAME_RE.test(name.slice(0, slash)));
  if (!ok) {
    throw new CouchError(400, 'illegal_database_name',
      `Name: '${name.slice(0, 100)}'. Only lowercase characters (a-z), digits (0-9), and any of the characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.`);
  }
  if (name.split('/').some((s) => s.length > MAX_SEGMENT)) {
    throw new CouchError(400, 'database_name_too_long', `At least one path segment of \`${name.slice(0, 300)}\` is too long.`);
  }
}

/** Longer directory names are hashed: PouchDB adds `-mrview-<32 hex>` for view indexes, within 255 bytes. */
const MAX_DIR = 200;

/**
 * The directory (under <data>/couch/) of a valid database name. A `/` in a name is a character, never
 * a path separator: it becomes `~`, which no name may hold (so no two names share a directory), and no
 * name holds `.` (so none can say `..`). A long name with `/` becomes its first 150 characters, `@`
 * (in no other directory's name) and a hash. Names without `/` keep their directories of old.
 */
export function dirOf(name: string): string {
  checkDbName(name);
  if (!name.includes('/')) return name;
  const dir = name.replaceAll('/', '~');
  return dir.length <= MAX_DIR ? dir : `${dir.slice(0, 150)}@${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

export class DbStore {
  private readonly dir: string;
  private readonly registryPath: string;
  private readonly names: Set<string>;
  private readonly open = new Map<string, { db: PouchDB.Database; feed: PouchDB.Core.Changes<object> }>();
  private readonly security: SecurityStore;
  private readonly locks = new Map<string, RwLock>();
  /** Every write to any database, as CouchDB's _db_updates reports it. */
  readonly updates$ = new Subject<DbUpdate>();
  /** Databases whose design documents changed (by any writer): compiled validators must go. */
  readonly designChanged$ = new Subject<string>();
  private readonly Pouch: PouchDB.Static;

  constructor(dataDir: string, log?: (msg: string) => void) {
    this.dir = join(dataDir, 'couch');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.registryPath = join(this.dir, 'databases.json');
    this.names = new Set(existsSync(this.registryPath) ? (JSON.parse(readFileSync(this.registryPath, 'utf8')) as string[]) : []);
    this.Pouch = (PouchDB as unknown as { defaults(o: object): PouchDB.Static }).defaults({ prefix: this.dir + "/" });
    this.security = new SecurityStore(this.dir, {
      list: () => this.list(),
      readLegacy: async (name) => {
        try {
          const doc = (await this.handle(name).get(LEGACY_SECURITY_DOC)) as unknown as { _rev: string; security?: unknown };
          return { value: doc.security, rev: doc._rev };
        } catch (err) {
          if ((err as { status?: number }).status === 404) return undefined;
          throw err;
        }
      },
      removeLegacy: async (name, rev) => void (await this.handle(name).remove(LEGACY_SECURITY_DOC, rev)),
    }, log);
  }

  private lock(name: string): RwLock {
    let l = this.locks.get(name);
    if (!l) this.locks.set(name, (l = new RwLock()));
    return l;
  }

  /**
   * Runs a document write of `name` exclusively against `reading`. PouchDB's LevelDB adapter reads
   * _changes from an iterator snapshot but looks each document's metadata up live, and skips a row
   * whose document has a newer sequence: a write that commits while a _changes read runs moves a
   * document past the snapshot, and that change is missing from the answer (the read ends with an
   * older last_seq and no row for it; a one-shot replication then believes it is done).
   */
  writing<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.lock(name).exclusive(fn);
  }

  /** Runs a _changes read of `name`; many at once, but never while a write of it commits. */
  reading<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.lock(name).shared(fn);
  }

  private saveRegistry(): void {
    const tmp = this.registryPath + '.tmp';
    writeFileSync(tmp, JSON.stringify([...this.names].sort()), { mode: 0o600 });
    renameSync(tmp, this.registryPath);
  }

  list(): string[] {
    return [...this.names].sort();
  }

  exists(name: string): boolean {
    return this.names.has(name);
  }

  /** The open PouchDB of an existing database; 404 when it does not exist. */
  get(name: string): PouchDB.Database {
    checkDbName(name);
    if (!this.names.has(name)) throw notFound('Database does not exist.');
    return this.handle(name);
  }

  private handle(name: string): PouchDB.Database {
    let entry = this.open.get(name);
    if (!entry) {
      const db = new this.Pouch(dirOf(name), { auto_compaction: false });
      // Every open _changes feed listens for 'destroyed' on the db: many concurrent feeds are normal.
      (db as unknown as { setMaxListeners(n: number): void }).setMaxListeners(0);
      // One live feed per database turns every write (ours or PouchDB's own replication) into a signal.
      const feed = db.changes({ live: true, since: 'now', return_docs: false });
      feed.on('change', (c: { id: string }) => {
        if (c.id.startsWith('_design/')) this.designChanged$.next(name);
        this.updates$.next({ db_name: name, type: 'updated' });
      });
      feed.on('error', () => {});
      entry = { db, feed };
      this.open.set(name, entry);
    }
    return entry.db;
  }

  /** Bytes of a database's LevelDB files (its directory is flat); 0 when they cannot be read. */
  async diskSize(name: string): Promise<number> {
    this.get(name);
    const dir = join(this.dir, dirOf(name));
    try {
      const sizes = await Promise.all((await readdir(dir)).map((f) => stat(join(dir, f)).then((s) => (s.isFile() ? s.size : 0), () => 0)));
      return sizes.reduce((a, b) => a + b, 0);
    } catch {
      return 0;
    }
  }

  async create(name: string): Promise<void> {
    checkDbName(name);
    if (this.names.has(name)) throw new CouchError(412, 'file_exists', 'The database could not be created, the file already exists.');
    const db = this.handle(name);
    await db.info();
    this.names.add(name);
    this.saveRegistry();
    this.updates$.next({ db_name: name, type: 'created' });
  }

  async destroy(name: string): Promise<void> {
    const db = this.get(name);
    const entry = this.open.get(name);
    entry?.feed.cancel();
    this.open.delete(name);
    this.locks.delete(name);
    await this.security.remove(name);
    this.names.delete(name);
    this.saveRegistry();
    await db.destroy();
    this.designChanged$.next(name);
    this.updates$.next({ db_name: name, type: 'deleted' });
  }

  async getSecurity(name: string): Promise<SecurityObject> {
    this.get(name);
    return this.security.get(name);
  }

  async putSecurity(name: string, value: unknown): Promise<void> {
    this.get(name);
    await this.security.put(name, value);
  }

  async close(): Promise<void> {
    for (const { db, feed } of this.open.values()) {
      feed.cancel();
      await db.close().catch(() => {});
    }
    this.open.clear();
    this.updates$.complete();
    this.designChanged$.complete();
  }
}
