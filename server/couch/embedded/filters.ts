// `_changes?filter=ddoc/name` (a design document's filter function) and `filter=_view&view=ddoc/name`
// (a document passes when the view's map function emits for it), as CouchDB runs them: the filter gets
// each document and CouchDB's `req` object, and a document passes when the result is truthy.
//
// Design documents are written by database admins, but their code must still not cost the server more
// than a bounded share: it runs in a worker thread (never on the event loop, so a filter that loops
// holds no other request), in the same `vm` sandbox as validate_doc_update (ddocs/sandbox.ts: only
// strings cross in, CommonJS `require` over the design document), with a heap of its own (a filter
// that allocates without end kills its worker, not the server), under a time limit per document and a
// budget per batch of changes. A failure fails the request with CouchDB's error names (500
// `compilation_error`, the thrown error's name, `os_process_error` for time and memory).
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { CouchError } from '../errors.ts';
import { PRELUDE } from '../../../ddocs/sandbox.ts';

/** The most one call of the filter on one document may take. */
export const FILTER_CALL_MS = 1000;
/** The most the filter may take over one batch of changes (one answer; one wake-up of a live feed). */
export const FILTER_BATCH_MS = 5000;
/** The worker's heap (old generation); a filter that needs more fails the request. */
export const FILTER_HEAP_MB = 96;
/** Filter workers alive at once; more requests wait for one to end. */
const MAX_WORKERS = 4;
/** A pooled worker ends after this long without work. */
const IDLE_MS = 10_000;
/** Documents go to the worker in messages of about this many bytes of JSON. */
const CHUNK_BYTES = 4 * 1024 * 1024;

export type FilterKind = 'filter' | 'view';

// The worker: plain JavaScript (the server runs from one bundle; an eval'd worker needs no file).
// Everything the design document's code sees lives inside the vm context; it gets strings only.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const vm = require('node:vm');
const { ddocJson, source, kind, callMs, filename } = workerData;
const SETUP = ${JSON.stringify(PRELUDE)} + [
  'var __ddoc = JSON.parse(__ddocJson); var require = __makeRequire(__ddoc, []);',
  'function log() {} function isArray(x) { return Array.isArray(x); } function toJSON(x) { return JSON.stringify(x); }',
  'function sum(v) { var s = 0; for (var i = 0; i < v.length; i++) s += v[i]; return s; }',
  'var __emitted = false; function emit() { __emitted = true; }',
  'var __req = JSON.parse(__reqJson);',
  'function __describe(e) {',
  '  try {',
  '    if (e && typeof e === "object") {',
  '      if (typeof e.error === "string") return JSON.stringify([e.error, String(e.reason)]);',
  '      return JSON.stringify([String(e.name || "Error"), String(e.message)]);',
  '    }',
  '    return JSON.stringify(["Error", String(e)]);',
  '  } catch (x) { return JSON.stringify(["Error", "an exception that cannot be printed"]); }',
  '}',
  'function __test(docJson) {',
  '  var doc = JSON.parse(docJson);',
  '  try {',
  '    if (__kind === "view") { __emitted = false; __fn(doc); return __emitted ? 1 : 0; }',
  '    return __fn.call(__ddoc, doc, __req) ? 1 : 0;',
  '  } catch (e) { return __describe(e); }',
  '}',
].join('\\n');
let context;
let compileError = null;
try {
  context = vm.createContext({ __ddocJson: ddocJson, __reqJson: 'null', __kind: kind, __docJson: 'null' }, { codeGeneration: { strings: true, wasm: false } });
  vm.runInContext(SETUP + '\\nvar __fn = (' + source + ');\\nif (typeof __fn !== "function") throw new Error("not a function");', context, { timeout: callMs * 10, filename });
} catch (e) {
  compileError = String((e && e.message) || e);
}
const test = new vm.Script('__test(__docJson)');
const setReq = new vm.Script('__req = JSON.parse(__reqJson)');
let lastReq = null;
parentPort.on('message', ({ id, docs, req }) => {
  if (compileError !== null) return parentPort.postMessage({ id, compileError });
  // A pooled worker serves one request after another: each message brings its request's req.
  if (req !== lastReq) {
    context.__reqJson = req;
    setReq.runInContext(context, { timeout: callMs });
    lastReq = req;
  }
  const passes = [];
  for (let i = 0; i < docs.length; i++) {
    context.__docJson = docs[i];
    let r;
    try {
      r = test.runInContext(context, { timeout: callMs });
    } catch (e) {
      if (e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return parentPort.postMessage({ id, timeoutAt: i });
      return parentPort.postMessage({ id, errorAt: i, error: ['Error', String((e && e.message) || e)] });
    }
    if (typeof r === 'string') return parentPort.postMessage({ id, errorAt: i, error: JSON.parse(r) });
    passes.push(r === 1);
  }
  parentPort.postMessage({ id, passes });
});
`;

// Workers alive at once are counted; a worker between batches waits in a pool, keyed by its function,
// for the next batch of any request that runs the same function (a live feed, a replication polling).
let alive = 0;
const waiting: (() => void)[] = [];
const dead = new WeakSet<Worker>();
const pool: { key: string; w: Worker; timer: NodeJS.Timeout }[] = [];

async function acquire(): Promise<void> {
  if (alive < MAX_WORKERS) {
    alive++;
    return;
  }
  const oldest = pool.shift(); // an idle worker gives its place up
  if (oldest) {
    clearTimeout(oldest.timer);
    void oldest.w.terminate();
  }
  await new Promise<void>((resolve) => waiting.push(resolve));
}

function release(): void {
  const next = waiting.shift();
  if (next) next();
  else alive--;
}

function take(key: string): Worker | null {
  const i = pool.findIndex((p) => p.key === key);
  if (i < 0) return null;
  const [p] = pool.splice(i, 1);
  clearTimeout(p.timer);
  return p.w;
}

function park(key: string, w: Worker): void {
  if (dead.has(w)) return;
  if (waiting.length) {
    void w.terminate(); // someone waits for a place: this one's
    return;
  }
  const timer = setTimeout(() => {
    const i = pool.findIndex((p) => p.w === w);
    if (i >= 0) pool.splice(i, 1);
    void w.terminate();
  }, IDLE_MS).unref();
  pool.push({ key, w, timer });
}

function spawn(spec: FilterSpec, ddocJson: string): Worker {
  const w = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { ddocJson, source: spec.source, kind: spec.kind, callMs: FILTER_CALL_MS, filename: spec.name },
    resourceLimits: { maxOldGenerationSizeMb: FILTER_HEAP_MB, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    stdout: true,
    stderr: true,
  });
  w.unref();
  w.on('error', () => {}); // a send in progress learns of it through 'exit' (see send)
  w.once('exit', () => {
    dead.add(w);
    const i = pool.findIndex((p) => p.w === w);
    if (i >= 0) {
      clearTimeout(pool[i].timer);
      pool.splice(i, 1);
    }
    release();
  });
  return w;
}

export interface FilterSpec {
  /** `the filter _design/x/filters/y` or `the map function _design/x/views/y`, for messages. */
  name: string;
  kind: FilterKind;
  ddoc: Record<string, unknown>;
  source: string;
  /** CouchDB's request object, as the filter function's second argument. */
  req: Record<string, unknown>;
}

const sanitize = (s: unknown, max = 500) => String(s).replace(/[^\x20-\x7e]/g, '?').slice(0, max);

/** One request's filter: each batch borrows a worker running this function (pooled or new). */
export class FilterRunner {
  private closed = false;
  private seq = 0;
  private readonly ddocJson: string;
  private readonly reqJson: string;
  private readonly key: string;

  constructor(private readonly spec: FilterSpec) {
    this.ddocJson = JSON.stringify(spec.ddoc);
    this.reqJson = JSON.stringify(spec.req);
    this.key = createHash('sha256').update(JSON.stringify([spec.kind, spec.name, spec.source, this.ddocJson])).digest('hex');
  }

  private fail(error: string, reason: string): CouchError {
    return new CouchError(500, error, reason);
  }

  private async borrow(): Promise<Worker> {
    const pooled = take(this.key);
    if (pooled) return pooled;
    await acquire();
    if (this.closed) {
      release();
      throw this.fail('os_process_error', 'the request ended');
    }
    try {
      return spawn(this.spec, this.ddocJson);
    } catch (err) {
      release();
      throw err;
    }
  }

  /** The request is over: no further batch starts a worker. */
  close(): void {
    this.closed = true;
  }

  /**
   * Whether each document passes. `budget.leftMs` bounds the time the worker spends on the batch (not
   * the wait for a worker); what this call spends is taken off it.
   */
  async test(docs: { _id?: unknown }[], budget: { leftMs: number }): Promise<boolean[]> {
    if (!docs.length) return [];
    const w = await this.borrow();
    try {
      const out: boolean[] = [];
      let chunk: string[] = [];
      let size = 0;
      const flush = async () => {
        if (!chunk.length) return;
        const started = Date.now();
        try {
          out.push(...(await this.send(w, chunk, docs, out.length, budget.leftMs)));
        } finally {
          budget.leftMs -= Date.now() - started;
        }
        chunk = [];
        size = 0;
      };
      for (const doc of docs) {
        const json = JSON.stringify(doc);
        if (size + json.length > CHUNK_BYTES) await flush();
        chunk.push(json);
        size += json.length;
      }
      await flush();
      return out;
    } finally {
      park(this.key, w);
    }
  }

  private send(w: Worker, chunk: string[], docs: { _id?: unknown }[], from: number, leftMs: number): Promise<boolean[]> {
    const id = ++this.seq;
    const what = this.spec.name;
    const idOf = (i: number) => JSON.stringify(sanitize(docs[from + i]?._id ?? '', 200));
    return new Promise<boolean[]>((resolve, reject) => {
      let done = false;
      let lastError: unknown = null;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('exit', onExit);
        w.off('error', onError);
        fn();
      };
      const onError = (err: unknown) => { lastError = err; };
      const onExit = () => finish(() => {
        const code = (lastError as { code?: string } | null)?.code;
        reject(code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? this.fail('os_process_error', `${what} ran out of memory (its limit is ${FILTER_HEAP_MB} MiB); the server stopped it`)
          : this.fail('os_process_error', `${what} stopped: ${sanitize((lastError as Error | null)?.message ?? 'its worker ended')}`));
      });
      const onMessage = (m: { id: number; passes?: boolean[]; compileError?: string; timeoutAt?: number; errorAt?: number; error?: [unknown, unknown] }) => {
        if (m.id !== id) return;
        finish(() => {
          if (m.passes) return resolve(m.passes);
          if (m.compileError !== undefined) return reject(this.fail('compilation_error', `${what} does not compile: ${sanitize(m.compileError)}`));
          if (m.timeoutAt !== undefined) return reject(this.fail('os_process_error', `${what} took longer than ${FILTER_CALL_MS} ms on document ${idOf(m.timeoutAt)}; the server stops a filter there`));
          const [name, reason] = m.error ?? ['Error', 'unknown'];
          const error = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(String(name)) ? String(name) : 'filter_error';
          reject(this.fail(error, `${what} threw on document ${idOf(m.errorAt ?? 0)}: ${sanitize(reason)}`));
        });
      };
      const timer = setTimeout(() => finish(() => {
        void w.terminate();
        reject(this.fail('os_process_error', `${what} took longer than ${FILTER_BATCH_MS} ms over one batch of changes; the server stopped it`));
      }), Math.max(0, leftMs));
      if (dead.has(w)) return onExit();
      w.on('message', onMessage);
      w.once('exit', onExit);
      w.on('error', onError);
      w.postMessage({ id, docs: chunk, req: this.reqJson });
    });
  }
}

/** CouchDB's error for a member missing along `path` in a design document. */
function member(obj: Record<string, unknown>, path: string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) {
    const next = cur && typeof cur === 'object' && !Array.isArray(cur) ? (cur as Record<string, unknown>)[key] : undefined;
    if (next === undefined || next === null) throw new CouchError(404, 'not_found', `missing json key: ${key.slice(0, 200)}`);
    cur = next;
  }
  return cur;
}

/**
 * The filter a `_changes` request names, as CouchDB parses it (couch_changes:configure_filter):
 * `ddoc/name` for a filter function, `_view` with `view=ddoc/name`. `openDdoc` reads the design
 * document (its 404 is CouchDB's: `missing` or `deleted`).
 */
export async function filterSpec(
  filter: string,
  view: string | undefined,
  openDdoc: (id: string) => Promise<Record<string, unknown>>,
  req: Record<string, unknown>,
): Promise<FilterSpec> {
  const parts = (s: string) => s.split('/').filter((p) => p !== '');
  if (filter === '_view') {
    if (!view) throw new CouchError(400, 'bad_request', '`view` filter parameter is not provided.');
    const p = parts(view);
    if (p.length !== 2) throw new CouchError(400, 'bad_request', '`view` must be of the form `designname/viewname`');
    const ddoc = await openDdoc(`_design/${p[0]}`);
    member(ddoc, ['views', p[1]]);
    const source = member(ddoc, ['views', p[1], 'map']);
    if (typeof source !== 'string') throw new CouchError(500, 'compilation_error', `_design/${p[0]}/views/${p[1]}: the map function must be a string`);
    return { name: `the map function _design/${p[0]}/views/${p[1]}`, kind: 'view', ddoc, source, req };
  }
  if (filter.startsWith('_')) throw new CouchError(400, 'bad_request', 'unknown builtin filter name');
  const p = parts(filter);
  if (p.length !== 2) throw new CouchError(400, 'bad_request', '`filter` must be of the form `designname/filtername`');
  const ddoc = await openDdoc(`_design/${p[0]}`);
  const source = member(ddoc, ['filters', p[1]]);
  if (typeof source !== 'string') throw new CouchError(500, 'compilation_error', `_design/${p[0]}/filters/${p[1]}: the filter must be a string`);
  return { name: `the filter _design/${p[0]}/filters/${p[1]}`, kind: 'filter', ddoc, source, req };
}

export interface ChangeRow { id: string; seq: unknown; changes: { rev: string }[]; doc?: Record<string, unknown> | null; deleted?: boolean }
export interface ChangesPage { results: ChangeRow[]; last_seq: unknown }

/** Changes are read (and their documents tested) this many at a time. */
const PAGE = 200;

/** The document as a filter sees it in CouchDB: attachments as stubs, never their bytes. */
function stubbed(doc: Record<string, unknown>): Record<string, unknown> {
  const atts = doc._attachments;
  if (!atts || typeof atts !== 'object') return doc;
  const stubs: Record<string, unknown> = {};
  for (const [name, att] of Object.entries(atts as Record<string, Record<string, unknown>>)) {
    const { data: _data, ...rest } = att ?? {};
    stubs[name] = 'data' in (att ?? {}) ? { ...rest, stub: true } : att;
  }
  return { ...doc, _attachments: stubs };
}

/**
 * One batch of filtered changes: reads pages of changes (documents included) from `since` and keeps
 * the rows whose document passes, until `limit` rows passed or the changes end. With style=all_docs
 * every leaf revision is tested and a row lists the revisions that passed, as CouchDB does.
 */
export async function filterChanges(runner: FilterRunner, o: {
  read(since: unknown, limit: number): Promise<ChangesPage>;
  /** The leaf revisions of a row with several (style=all_docs). */
  leaves(row: ChangeRow): Promise<Record<string, unknown>[]>;
  since: unknown;
  limit?: number;
  includeDocs: boolean;
  allDocs: boolean;
  descending: boolean;
}): Promise<ChangesPage> {
  const budget = { leftMs: FILTER_BATCH_MS };
  const out: ChangeRow[] = [];
  let since = o.since;
  for (;;) {
    const page = await o.read(since, PAGE);
    const tested: { row: ChangeRow; docs: Record<string, unknown>[] }[] = [];
    for (const row of page.results) {
      const docs = o.allDocs && row.changes.length > 1 ? await o.leaves(row) : row.doc ? [row.doc] : [];
      tested.push({ row, docs });
    }
    const passes = await runner.test(tested.flatMap((t) => t.docs.map(stubbed)), budget);
    let k = 0;
    for (const { row, docs } of tested) {
      const passed = docs.filter(() => passes[k++]).map((d) => String(d._rev));
      if (!passed.length) continue;
      if (o.allDocs) row.changes = passed.map((rev) => ({ rev }));
      if (!o.includeDocs) delete row.doc;
      out.push(row);
      if (o.limit !== undefined && out.length >= o.limit) return { results: out, last_seq: row.seq };
    }
    since = page.last_seq;
    if (page.results.length < PAGE || o.descending) return { results: out, last_seq: page.last_seq };
  }
}
