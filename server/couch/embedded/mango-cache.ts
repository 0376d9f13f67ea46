// The entries of Mango's JSON indexes, kept in memory: for each index of an open database, its
// (key, id) pairs in CouchDB's order, brought up to date from the database's changes before a query
// uses them (as CouchDB updates a view before reading it, `update: false` aside). A query then walks
// the key range its selector allows and reads only those documents, instead of every document.
// Memory is bounded: an index whose keys would take more than its share is not kept, and queries on
// it read every document instead (routes/mango.ts), which gives the same answers more slowly.
import { collate, getField, splitField } from './mango.ts';
import type { JsonIndex } from './mango-index.ts';

export interface Entry { key: unknown[]; id: string }

/** Approximate bytes all kept indexes may hold together (the `mangoIndexBytes` limit); one index a quarter. */
let cacheBytes = 64 * 1024 * 1024;
export const setCacheBytes = (n: number) => {
  cacheBytes = n;
};
const CHANGES_BATCH = 1000;
/** Per-entry overhead beyond the key and id text (array, object, map slot). */
const ENTRY_OVERHEAD = 120;

let totalBytes = 0;

export const compareEntries = (a: Entry, b: Entry) => collate(a.key, b.key) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The key a JSON index holds for a document; undefined when the document is not in the index. */
export function indexKey(idx: JsonIndex, doc: Record<string, unknown>, paths = idx.fields.map((f) => splitField(f.field))): unknown[] | undefined {
  const key: unknown[] = [];
  for (const path of paths) {
    const v = getField(doc, path);
    if (v === undefined) return undefined;
    key.push(v);
  }
  if (idx.partialMatch && !idx.partialMatch(doc)) return undefined;
  return key;
}

/** First position in `entries` where `before(entry)` is false (entries are sorted, `before` monotone). */
export function firstNotBefore(entries: Entry[], before: (e: Entry) => boolean): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(entries[mid])) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const sizeOf = (e: Entry) => ENTRY_OVERHEAD + 2 * e.id.length + 2 * JSON.stringify(e.key).length;

export class IndexEntries {
  entries: Entry[] = [];
  private byId = new Map<string, Entry>();
  private seq: number | string = 0;
  private bytes = 0;
  private lock: Promise<unknown> = Promise.resolve();
  /** Set once the index outgrew its share of memory; the entries are dropped. */
  tooBig = false;

  constructor(readonly index: JsonIndex, private readonly paths = index.fields.map((f) => splitField(f.field))) {}

  /**
   * Runs `read` on the entries, after applying the changes since the last update unless `update` is
   * false; no update runs meanwhile, so positions hold. `pause` lets other requests run between batches.
   */
  use<T>(db: PouchDB.Database, update: boolean, pause: () => Promise<void>, read: (entries: Entry[]) => Promise<T>): Promise<T> {
    const run = this.lock.then(async () => {
      if (update) await this.catchUp(db, pause);
      return read(this.entries);
    });
    this.lock = run.catch(() => {});
    return run;
  }

  private async catchUp(db: PouchDB.Database, pause: () => Promise<void>): Promise<void> {
    for (;;) {
      if (this.tooBig) return;
      const r = await db.changes({ since: this.seq, include_docs: true, limit: CHANGES_BATCH } as PouchDB.Core.ChangesOptions);
      const results = r.results as { id: string; deleted?: boolean; doc?: Record<string, unknown> }[];
      // Many changes at once (the first build): apply them all, then sort once.
      const bulk = results.length > 64 && results.length > this.entries.length / 8;
      for (const c of results) {
        if (c.id.startsWith('_design/')) continue;
        if (this.index.partialMatch) await pause(); // a partial filter's $regex may take up to its budget
        const old = this.byId.get(c.id);
        if (old) this.remove(old, bulk);
        const key = !c.deleted && c.doc ? indexKey(this.index, c.doc, this.paths) : undefined;
        if (key) this.add({ key, id: c.id }, bulk);
      }
      if (bulk) {
        this.entries = this.entries.filter((e) => this.byId.get(e.id) === e);
        this.entries.sort(compareEntries);
      }
      this.seq = r.last_seq;
      if (this.bytes > cacheBytes / 4 || totalBytes > cacheBytes) return this.drop();
      if (results.length < CHANGES_BATCH) return;
      await pause();
    }
  }

  private add(e: Entry, bulk: boolean): void {
    this.byId.set(e.id, e);
    const n = sizeOf(e);
    this.bytes += n;
    totalBytes += n;
    if (bulk) this.entries.push(e);
    else this.entries.splice(firstNotBefore(this.entries, (x) => compareEntries(x, e) < 0), 0, e);
  }

  private remove(e: Entry, bulk: boolean): void {
    this.byId.delete(e.id);
    const n = sizeOf(e);
    this.bytes -= n;
    totalBytes -= n;
    if (bulk) return; // filtered out after the batch
    const at = firstNotBefore(this.entries, (x) => compareEntries(x, e) < 0);
    if (this.entries[at] === e) this.entries.splice(at, 1);
    else {
      const i = this.entries.indexOf(e);
      if (i >= 0) this.entries.splice(i, 1);
    }
  }

  /** Frees the entries (memory, or the index is gone). */
  drop(): void {
    totalBytes -= this.bytes;
    this.bytes = 0;
    this.entries = [];
    this.byId.clear();
    this.tooBig = true;
  }
}

/**
 * Kept indexes per open database object (a deleted and re-created database is a new object); those of
 * databases closed or deleted since are freed on the next use.
 */
const kept = new Map<PouchDB.Database, Map<string, IndexEntries>>();

function prune(): void {
  for (const [db, byIndex] of kept) {
    const gone = db as unknown as { _destroyed?: boolean; _closed?: boolean };
    if (!gone._destroyed && !gone._closed) continue;
    for (const e of byIndex.values()) e.drop();
    kept.delete(db);
  }
}

/** The kept entries of one index (created empty on first use); drops those of indexes no longer defined. */
export function entriesOf(db: PouchDB.Database, idx: JsonIndex, defined: JsonIndex[]): IndexEntries {
  prune();
  let byIndex = kept.get(db);
  if (!byIndex) kept.set(db, (byIndex = new Map()));
  const name = (i: JsonIndex) => JSON.stringify([i.ddoc, i.name, i.fields, i.partialFilter]);
  const live = new Set(defined.map(name));
  for (const [k, v] of byIndex) {
    if (!live.has(k)) {
      v.drop();
      byIndex.delete(k);
    }
  }
  let e = byIndex.get(name(idx));
  if (!e) byIndex.set(name(idx), (e = new IndexEntries(idx)));
  return e;
}
