// The server's side of bundles, over the CouchDB API with an admin's credentials (the embedded server or
// an external CouchDB alike): export a node's database and the templates its systems use, and import
// what a node sent back. Both read revisions the way CouchDB's replicator does: `_changes` with
// `style=all_docs` (every leaf, conflicts and deletions included), `_bulk_get?revs=true` (each leaf with
// its `_revisions`), `_revs_diff` before writing and `_bulk_docs` with `new_edits:false`.
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { CATALOG_DB, DDOC_ID, nodeDbName, nodeUserName } from '../ddocs/build.ts';
import { AGENT_ONLY_TYPES } from '../ddocs/schemas/index.ts';
import { CouchHttp, CouchHttpError, basicHeader } from '../server/sites/couch-http.ts';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.ts';
import { BundleError } from './errors.ts';
import { BundleWriter, readBundle, withAttachmentData, type DocRecord, type ReadBundle } from './format.ts';
import { keyOfUserDoc } from './key.ts';
import { ddocRefusals, refusalMessage } from './rules.ts';

type Doc = Record<string, unknown> & { _id: string; _rev: string };
type Stub = { content_type?: string; length?: number; digest?: string; revpos?: number; stub?: boolean };

export interface ExportReport { node: string; docs: number; blobs: number; bytes: number; checkpoint: string; templates: string[] }
export interface ImportReport { node: string; origin: string; docs: number; written: number; present: number; blobs: number; checkpoint: string; imported: string | null }

const enc = encodeURIComponent;
const AGENT_ONLY = AGENT_ONLY_TYPES.map((t) => `${t}:`);
const BATCH = 200;

/** Turns network and CouchDB failures into one bundle error that says where. */
async function couch<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BundleError) throw err;
    if (err instanceof CouchHttpError) throw new BundleError('BUNDLE_SOURCE_UNREACHABLE', `${what}: ${err.message}`);
    throw err;
  }
}

async function nodeKey(http: CouchHttp, node: string) {
  const user = await http.get<Record<string, unknown>>(`/_users/${enc(`org.couchdb.user:${nodeUserName(node)}`)}`).catch((err) => {
    if (err instanceof CouchHttpError && err.status === 404) throw new BundleError('BUNDLE_KEY_UNKNOWN', `there is no node ${node} (no user ${nodeUserName(node)}); enrol it with \`anybios node add ${node}\``);
    if (err instanceof CouchHttpError && err.authFailed) throw new BundleError('BUNDLE_KEY_UNKNOWN', `the key of node ${node} comes from its _users document, which only a server admin may read (${err.message})`);
    throw err;
  });
  return keyOfUserDoc(user, node);
}

/** Every leaf revision changed since `since` (opaque), with its history, paged; and the sequence reached. */
async function changedLeaves(http: CouchHttp, db: string, since: unknown, onDoc: (d: Doc) => Promise<void>): Promise<unknown> {
  let seq = since;
  for (;;) {
    const q = `style=all_docs&limit=1000${seq === undefined || seq === null ? '' : `&since=${enc(typeof seq === 'string' ? seq : JSON.stringify(seq))}`}`;
    const page = await http.get<{ results: { id: string; changes: { rev: string }[] }[]; last_seq: unknown }>(`/${enc(db)}/_changes?${q}`, { timeoutMs: 120_000 });
    const wanted = page.results.filter((r) => !r.id.startsWith('_design/')).flatMap((r) => r.changes.map((c) => ({ id: r.id, rev: c.rev })));
    for (let i = 0; i < wanted.length; i += BATCH) {
      const got = await http.request<{ results: { id: string; docs: ({ ok: Doc } | { error: unknown })[] }[] }>('POST', `/${enc(db)}/_bulk_get?revs=true`, { docs: wanted.slice(i, i + BATCH) }, { timeoutMs: 120_000 });
      for (const r of got.results) for (const d of r.docs) if ('ok' in d) await onDoc(d.ok);
    }
    seq = page.last_seq;
    if (page.results.length < 1000) return seq;
  }
}

/** An attachment's content as a stream from CouchDB (never whole in memory). */
async function* attachmentStream(http: CouchHttp, db: string, id: string, name: string, rev: string): AsyncIterable<Uint8Array> {
  const res = await fetch(`${http.url}/${enc(db)}/${enc(id)}/${enc(name)}?rev=${enc(rev)}`, { headers: { Authorization: basicHeader(http.auth) } });
  if (!res.ok || !res.body) throw new BundleError('BUNDLE_SOURCE_UNREACHABLE', `${db}/${id}/${name}: HTTP ${res.status}`);
  yield* res.body as unknown as AsyncIterable<Uint8Array>;
}

/**
 * Writes the document with its attachments as blobs (once per sha256, and not at all when the node
 * has the blob from an earlier bundle), its stubs then naming them by sha256.
 */
async function writeWithAttachments(w: BundleWriter, http: CouchHttp, db: string, dbKind: DocRecord['db'], doc: Doc, sent: Set<string>): Promise<string[]> {
  const atts = doc._attachments as Record<string, Stub> | undefined;
  const shas: string[] = [];
  if (atts) {
    const out: Record<string, unknown> = {};
    for (const [name, a] of Object.entries(atts)) {
      // A tar template states the sha256 of rootfs.tar; any other attachment is hashed first.
      let sha = name === 'rootfs.tar' && typeof doc.sha256 === 'string' ? doc.sha256 : undefined;
      let buffered: Buffer | undefined;
      if (!sha) {
        const chunks: Buffer[] = [];
        for await (const c of attachmentStream(http, db, doc._id, name, doc._rev)) chunks.push(Buffer.from(c));
        buffered = Buffer.concat(chunks);
        sha = createHash('sha256').update(buffered).digest('hex');
      }
      const length = buffered?.length ?? a.length ?? 0;
      if (!sent.has(sha)) await w.blob(sha, length, buffered ? [buffered] : attachmentStream(http, db, doc._id, name, doc._rev), `${db}/${doc._id}/${name}`);
      out[name] = { stub: true, sha256: sha, length, content_type: a.content_type ?? 'application/octet-stream', ...(a.digest ? { digest: a.digest } : {}) };
      shas.push(sha);
    }
    doc = { ...doc, _attachments: out };
  }
  await w.doc(dbKind, doc);
  return shas;
}

/**
 * Exports node `node`'s database (changes since `since`, or everything) and the templates its systems
 * use (those not sent before or changed since) into `out`. Returns the next checkpoint.
 */
export async function exportNodeBundle(http: CouchHttp, node: string, out: Writable, since: string | null = null): Promise<ExportReport> {
  return couch(`export for node ${node}`, async () => {
    const db = nodeDbName(node);
    const cp = since ? decodeCheckpoint(since, node, 'server') : null;
    const { params, key } = await nodeKey(http, node);
    const w = new BundleWriter(out, key, { node, origin: 'server', created: new Date().toISOString(), key: params, since });
    // The catalog's sequence first: a template changed from here on is carried again next time.
    const catalogSeq = (await http.get<{ update_seq: unknown }>(`/${CATALOG_DB}`)).update_seq;
    const used = new Set<string>();
    const nodeSeq = await changedLeaves(http, db, cp?.n, async (d) => {
      // Statuses and the heartbeat are the node's own (it is their only writer): they travel the
      // other way only, so the server's copies of them are never sent back to it.
      if (AGENT_ONLY.some((p) => d._id.startsWith(p))) return;
      if (d._id.startsWith('system:') && !d._deleted && typeof d.template === 'string') used.add(d.template);
      await writeWithAttachments(w, http, db, 'node', d, new Set());
    });
    // The templates of every current system (not only the changed ones).
    const systems = await http.get<{ rows: { doc?: Doc }[] }>(`/${enc(db)}/_all_docs?include_docs=true&startkey=${enc('"system:"')}&endkey=${enc('"system:\ufff0"')}`, { timeoutMs: 120_000 });
    for (const r of systems.rows) if (typeof r.doc?.template === 'string') used.add(r.doc.template);
    let templates = [...used].sort();
    // Which blobs each template's leaves had when it was last sent: the node holds those (older ones
    // may be compacted away there), so they are not carried again.
    const sentTemplates: Record<string, string[]> = { ...(cp?.t ?? {}) };
    if (cp) {
      const sentBefore = new Set(Object.keys(sentTemplates));
      const changed = new Set<string>();
      if (templates.length) {
        const ch = await http.request<{ results: { id: string }[] }>('POST', `/${CATALOG_DB}/_changes?filter=_doc_ids&since=${enc(typeof cp.c === 'string' ? cp.c : JSON.stringify(cp.c ?? 0))}`, { doc_ids: templates.map((t) => `template:${t}`) });
        for (const r of ch.results) changed.add(r.id.slice('template:'.length));
      }
      templates = templates.filter((t) => !sentBefore.has(t) || changed.has(t));
    }
    const held = new Set(Object.values(sentTemplates).flat());
    for (const t of templates) {
      let leaves: ({ ok: Doc } | { missing: string })[];
      try {
        leaves = await http.get(`/${CATALOG_DB}/${enc(`template:${t}`)}?open_revs=all&revs=true`, { timeoutMs: 120_000 });
      } catch (err) {
        if (err instanceof CouchHttpError && err.status === 404) continue; // a system naming a template that is not there: the agent says TEMPLATE_MISSING
        throw err;
      }
      const shas: string[] = [];
      for (const l of leaves) if ('ok' in l) shas.push(...(await writeWithAttachments(w, http, CATALOG_DB, 'catalog', l.ok, held)));
      sentTemplates[t] = [...new Set(shas)];
    }
    // Templates no system uses any more are forgotten: the checkpoint stays as small as the node's set.
    for (const t of Object.keys(sentTemplates)) if (!used.has(t)) delete sentTemplates[t];
    const checkpoint = encodeCheckpoint({ v: 1, node, origin: 'server', n: nodeSeq, c: catalogSeq, t: sentTemplates });
    const r = await w.end(checkpoint);
    return { node, ...r, checkpoint, templates };
  });
}

/**
 * Imports a node's bundle (its statuses, heartbeat and edits made on the device) into its database:
 * verified whole first (MAC with the node's key, structure, limits), then each revision the database
 * lacks checked by the database's validate_doc_update as the node, then written. All or nothing
 * before the write; the write itself is as a replication's (`new_edits:false`, revisions merge).
 */
export async function importNodeBundle(http: CouchHttp, file: string): Promise<ImportReport> {
  const b = await couch('import', () => readBundle(file, {
    keyFor: async (h) => {
      if (h.origin !== 'node') throw new BundleError('BUNDLE_WRONG_ORIGIN', `this bundle was made by the server for node ${h.node}: import it on that node (\`anybios import FILE --data DIR\` there)`);
      const { params, key } = await couch(`the key of node ${h.node}`, () => nodeKey(http, h.node));
      if (params.salt !== h.key.salt) throw new BundleError('BUNDLE_MAC_MISMATCH', `this bundle was made with another password of node ${h.node} than the current one; make a new one on the node`);
      return key;
    },
  }));
  return couch(`import into node ${b.header.node}`, () => writeNodeBundle(http, b, file));
}

async function writeNodeBundle(http: CouchHttp, b: ReadBundle, file: string): Promise<ImportReport> {
  const node = b.header.node;
  const db = nodeDbName(node);
  const missing = await missingRevs(http, db, b.docs);
  const todo = b.docs.filter((r) => missing.has(`${r.doc._id}\n${r.doc._rev}`));
  const [ddoc, security] = await Promise.all([
    http.get<Record<string, unknown>>(`/${enc(db)}/${DDOC_ID}`).catch((err) => {
      if (err instanceof CouchHttpError && err.status === 404) return null;
      throw err;
    }),
    http.get<unknown>(`/${enc(db)}/_security`),
  ]);
  const refused = ddocRefusals(b.docs.filter((r) => r.db !== 'node' || missing.has(`${r.doc._id}\n${r.doc._rev}`)), node, db, ddoc, security);
  if (refused.length) throw new BundleError('BUNDLE_REFUSED', refusalMessage(refused), refused);
  // Batches of at most BATCH documents and about 16 MiB of JSON: well under CouchDB's request limits.
  let docs: Doc[] = [];
  let size = 0;
  const flush = async () => {
    if (!docs.length) return;
    const res = await http.request<{ id: string; error?: string; reason?: string }[]>('POST', `/${enc(db)}/_bulk_docs`, { docs, new_edits: false }, { timeoutMs: 120_000 });
    const failed = res.filter((x) => x.error);
    if (failed.length) throw new BundleError('BUNDLE_REFUSED', `${failed.length} document(s) not written: ${failed.slice(0, 5).map((f) => `${f.id}: ${f.reason ?? f.error}`).join('; ')}`, failed);
    docs = [];
    size = 0;
  };
  for (const r of todo) {
    const doc = await withAttachmentData(r.doc, b, file, (bytes) => bytes.toString('base64'));
    const bytes = JSON.stringify(doc).length;
    if (docs.length >= BATCH || (docs.length && size + bytes > 16 * 1024 * 1024)) await flush();
    docs.push(doc);
    size += bytes;
  }
  await flush();
  return { node, origin: b.header.origin, docs: b.docs.length, written: todo.length, present: b.docs.length - todo.length, blobs: b.blobs.size, checkpoint: b.checkpoint, imported: b.header.imported ?? null };
}

/** Which of the bundle's revisions the database lacks (`_revs_diff`, as the replicator asks). */
export async function missingRevs(http: CouchHttp, db: string, docs: DocRecord[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < docs.length; i += 1000) {
    const ask: Record<string, string[]> = {};
    for (const r of docs.slice(i, i + 1000)) (ask[r.doc._id] ??= []).push(r.doc._rev);
    const res = await http.request<Record<string, { missing?: string[] }>>('POST', `/${enc(db)}/_revs_diff`, ask, { timeoutMs: 120_000 });
    for (const [id, v] of Object.entries(res)) for (const rev of v.missing ?? []) out.add(`${id}\n${rev}`);
  }
  return out;
}
