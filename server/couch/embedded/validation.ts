// Runs every design document's validate_doc_update on each write, as CouchDB does, for direct and
// replicated writes alike. Compiled functions are cached per database and dropped when a design
// document changes (the write path says so at once; the store's change feed catches any other
// writer), so an ordinary write costs no design-document lookup at all. Databases whose design documents
// are the same (every node database carries the same one) share one compiled function: a vm context
// each cost about 1 MiB, a fleet of 1,000 nodes 1 GiB (bench/fleet). CouchDB shares its JS processes
// across databases the same way.
import { createHash } from 'node:crypto';
import { DdocFunction, DdocFunctionError } from '../../../ddocs/sandbox.ts';
import { CouchError } from '../errors.ts';
import type { UserCtx } from './auth.ts';
import type { DbStore, SecurityObject } from './store.ts';

type Compiled = { id: string; fn: DdocFunction }[];

const SHARED_MAX = 256;

export class Validator {
  private readonly cache = new Map<string, Promise<Compiled>>();
  /** Compiled functions by design-document content (its revision aside), oldest first. */
  private readonly shared = new Map<string, DdocFunction>();

  constructor(private readonly store: DbStore) {
    store.designChanged$.subscribe((db) => this.forget(db));
  }

  /** Drops the compiled functions of `dbName`; the next write compiles its design docs again. */
  forget(dbName: string): void {
    this.cache.delete(dbName);
  }

  private functions(dbName: string): Promise<Compiled> {
    let fns = this.cache.get(dbName);
    if (!fns) {
      fns = this.compile(dbName);
      this.cache.set(dbName, fns);
      fns.catch(() => this.cache.delete(dbName));
    }
    return fns;
  }

  private async compile(dbName: string): Promise<Compiled> {
    const full = await this.store.get(dbName).allDocs({ startkey: '_design/', endkey: '_design0', include_docs: true });
    const fns: Compiled = [];
    for (const row of full.rows) {
      const ddoc = row.doc as unknown as Record<string, unknown>;
      if (typeof ddoc.validate_doc_update !== 'string') continue;
      try {
        fns.push({ id: row.id, fn: this.sharedFunction(ddoc, ddoc.validate_doc_update) });
      } catch (err) {
        // A broken validate function must not open the database to everything: refuse writes instead.
        const reason = `${row.id}: validate_doc_update does not compile: ${(err as Error).message}`;
        fns.push({ id: row.id, fn: { run: () => { throw new DdocFunctionError(reason, { forbidden: reason }); } } as unknown as DdocFunction });
      }
    }
    return fns;
  }

  private sharedFunction(ddoc: Record<string, unknown>, source: string): DdocFunction {
    const { _rev: _r, ...content } = ddoc;
    const key = createHash('sha256').update(JSON.stringify(content)).digest('hex');
    let fn = this.shared.get(key);
    if (fn) {
      this.shared.delete(key); // most recently used last
    } else {
      fn = new DdocFunction(content, source);
      if (this.shared.size >= SHARED_MAX) this.shared.delete(this.shared.keys().next().value!);
    }
    this.shared.set(key, fn);
    return fn;
  }

  /** Throws CouchError 403/401 when a validate function refuses `newDoc`. */
  async check(dbName: string, newDoc: Record<string, unknown>, oldDoc: Record<string, unknown> | null, userCtx: UserCtx, sec: SecurityObject): Promise<void> {
    const id = String(newDoc._id ?? '');
    if (id.startsWith('_local/')) return;
    const ctx = { db: dbName, name: userCtx.name, roles: userCtx.roles };
    const fns = await this.functions(dbName);
    const seen = fns.length ? withStubs(newDoc) : newDoc;
    for (const { fn } of fns) {
      try {
        fn.run(seen, oldDoc, ctx, sec);
      } catch (err) {
        if (!(err instanceof DdocFunctionError)) throw err;
        const thrown = err.thrown as { unauthorized?: unknown };
        if (thrown && typeof thrown === 'object' && 'unauthorized' in thrown) throw new CouchError(401, 'unauthorized', err.message);
        throw new CouchError(403, 'forbidden', err.message);
      }
    }
  }

  /** The stored winners of `ids` (null where missing or deleted), for validation's oldDoc. */
  async oldDocs(dbName: string, ids: string[]): Promise<Map<string, Record<string, unknown> | null>> {
    const out = new Map<string, Record<string, unknown> | null>();
    const wanted = ids.filter((id) => id && !id.startsWith('_local/'));
    if (!wanted.length || !(await this.functions(dbName)).length) return out;
    const res = await this.store.get(dbName).allDocs({ keys: [...new Set(wanted)], include_docs: true });
    for (const row of res.rows) {
      const r = row as { key: string; doc?: Record<string, unknown> | null };
      out.set(r.key, r.doc ?? null);
    }
    return out;
  }
}

/**
 * The document as validate_doc_update sees it in CouchDB: attachments as stubs, never their bytes (a
 * 200 MB rootfs would be copied into the sandbox as a base64 string and run out its time limit).
 */
function withStubs(doc: Record<string, unknown>): Record<string, unknown> {
  const atts = doc._attachments;
  if (!atts || typeof atts !== 'object' || Array.isArray(atts)) return doc;
  const stubs: Record<string, unknown> = {};
  for (const [name, att] of Object.entries(atts as Record<string, Record<string, unknown>>)) {
    if (!att || typeof att !== 'object' || !('data' in att)) {
      stubs[name] = att;
      continue;
    }
    const { data: _data, ...rest } = att;
    stubs[name] = { ...rest, stub: true };
  }
  return { ...doc, _attachments: stubs };
}
