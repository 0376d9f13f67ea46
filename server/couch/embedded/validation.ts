// Runs every design document's validate_doc_update on each write, as CouchDB does, for direct and
// replicated writes alike. Compiled functions are cached per database and recompiled when any
// design document's revision changes.
import { DdocFunction, DdocFunctionError } from '../../../ddocs/sandbox.ts';
import { CouchError } from '../errors.ts';
import type { UserCtx } from './auth.ts';
import type { DbStore, SecurityObject } from './store.ts';

interface Compiled { key: string; fns: { id: string; fn: DdocFunction }[] }

export class Validator {
  private readonly cache = new Map<string, Compiled>();

  constructor(private readonly store: DbStore) {}

  private async functions(dbName: string): Promise<Compiled['fns']> {
    const db = this.store.get(dbName);
    const heads = await db.allDocs({ startkey: '_design/', endkey: '_design0' });
    const key = heads.rows.map((r) => `${r.id}@${r.value.rev}`).join(',');
    const cached = this.cache.get(dbName);
    if (cached && cached.key === key) return cached.fns;
    const fns: Compiled['fns'] = [];
    if (heads.rows.length) {
      const full = await db.allDocs({ startkey: '_design/', endkey: '_design0', include_docs: true });
      for (const row of full.rows) {
        const ddoc = row.doc as unknown as Record<string, unknown>;
        if (typeof ddoc.validate_doc_update !== 'string') continue;
        try {
          fns.push({ id: row.id, fn: new DdocFunction(ddoc, ddoc.validate_doc_update) });
        } catch (err) {
          // A broken validate function must not open the database to everything: refuse writes instead.
          const reason = `${row.id}: validate_doc_update does not compile: ${(err as Error).message}`;
          fns.push({ id: row.id, fn: { run: () => { throw new DdocFunctionError(reason, { forbidden: reason }); } } as unknown as DdocFunction });
        }
      }
    }
    this.cache.set(dbName, { key, fns });
    return fns;
  }

  /** Throws CouchError 403/401 when a validate function refuses `newDoc`. */
  async check(dbName: string, newDoc: Record<string, unknown>, oldDoc: Record<string, unknown> | null, userCtx: UserCtx, sec: SecurityObject): Promise<void> {
    const id = String(newDoc._id ?? '');
    if (id.startsWith('_local/')) return;
    const ctx = { db: dbName, name: userCtx.name, roles: userCtx.roles };
    for (const { fn } of await this.functions(dbName)) {
      try {
        fn.run(newDoc, oldDoc, ctx, sec);
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
