// The node's side of bundles, on its local PouchDB copies (the agent's, or opened directly when no
// agent runs): import what the server sent (desired state and templates), export what the node has
// to say (statuses, heartbeat, edits made on the device). Revisions move as a replication moves them:
// `revsDiff`, then `bulkDocs(..., {new_edits: false})`, so revision trees merge and a second import of
// the same bundle, or an older one after a newer one, changes nothing.
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { decodeCheckpoint, encodeCheckpoint } from './checkpoint.ts';
import { BundleError } from './errors.ts';
import { BundleWriter, readBundle, withAttachmentData, type DocRecord, type KeyParams, type ReadBundle } from './format.ts';
import { keyFromPassword, keyOfUserDoc } from './key.ts';
import { deviceRefusals, refusalMessage } from './rules.ts';

export interface DeviceBundleContext {
  node: string;
  password: string;
  db: PouchDB.Database;
  catalog: PouchDB.Database;
  /** `<data>/agent/bundle.json` (0600): the key parameters learnt from the server and the last checkpoint imported. */
  statePath: string;
}

export interface DeviceState { key?: KeyParams; imported?: string | null; importedAt?: string }

export interface DeviceImportReport { node: string; origin: string; docs: number; written: number; present: number; blobs: number; checkpoint: string }

type Doc = Record<string, unknown> & { _id: string; _rev: string };

export function loadDeviceState(path: string): DeviceState {
  if (!existsSync(path)) return {};
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as DeviceState;
  } catch {
    return {};
  }
}

function saveDeviceState(path: string, s: DeviceState): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Verifies a server bundle for this node completely, checks every document, then writes what is new. */
export async function importOnDevice(c: DeviceBundleContext, file: string): Promise<DeviceImportReport> {
  const b = await readBundle(file, {
    keyFor: async (h) => {
      if (h.node !== c.node) throw new BundleError('BUNDLE_WRONG_NODE', `this bundle is for node ${h.node}; this device is node ${c.node}`);
      if (h.origin !== 'server') throw new BundleError('BUNDLE_WRONG_ORIGIN', `this bundle was made by node ${h.node} itself (its status): import it on the server (\`anybios import FILE\` with the server's --url)`);
      return keyFromPassword(c.password, h.key, c.node);
    },
  });
  const refused = deviceRefusals(b.docs, c.node);
  if (refused.length) throw new BundleError('BUNDLE_REFUSED', refusalMessage(refused), refused);
  // Templates first: a system that arrived before its template would be marked TEMPLATE_MISSING.
  const catalogDocs = b.docs.filter((r) => r.db === 'catalog');
  const nodeDocs = b.docs.filter((r) => r.db === 'node');
  const [catalogNew, nodeNew] = await Promise.all([missing(c.catalog, catalogDocs), missing(c.db, nodeDocs)]);
  // Every attachment the new revisions need must be in the bundle or here already: checked before writing.
  for (const [db, docs] of [[c.catalog, catalogNew], [c.db, nodeNew]] as const) {
    for (const r of docs) await checkAttachments(db, r.doc, b);
  }
  let written = 0;
  const write = async (db: PouchDB.Database, batch: Doc[]) => {
    const pending = db.bulkDocs(batch, { new_edits: false });
    // PouchDB has copied the documents by now (it clones its input at once): dropping our reference to
    // a blob's bytes lets them go while PouchDB writes its copy (bench/bundle: one template size less).
    for (const d of batch) for (const a of Object.values((d._attachments ?? {}) as Record<string, { data?: unknown }>)) delete a.data;
    const res = (await pending) as ({ error?: unknown; id?: string; message?: string })[];
    const failed = res.filter((x) => x && 'error' in x && x.error);
    if (failed.length) throw new BundleError('BUNDLE_REFUSED', `${failed.length} document(s) not written: ${failed.slice(0, 5).map((f) => `${f.id}: ${f.message ?? String(f.error)}`).join('; ')}`);
    written += batch.length;
  };
  for (const [db, docs] of [[c.catalog, catalogNew], [c.db, nodeNew]] as const) {
    let batch: Doc[] = [];
    for (const r of docs) {
      const carriesBlob = Object.values((r.doc._attachments ?? {}) as Record<string, { sha256: string }>).some((a) => b.blobs.has(a.sha256));
      // A document with blob bytes goes alone: never two templates' bytes in memory at once.
      if (carriesBlob || batch.length >= 200) {
        if (batch.length) await write(db, batch);
        batch = [];
      }
      batch.push(await withAttachmentData(r.doc, b, file, (bytes) => bytes));
      if (carriesBlob) {
        await write(db, batch);
        batch = [];
      }
    }
    if (batch.length) await write(db, batch);
  }
  const state = loadDeviceState(c.statePath);
  saveDeviceState(c.statePath, { ...state, key: b.header.key, imported: b.checkpoint, importedAt: new Date().toISOString() });
  return { node: c.node, origin: b.header.origin, docs: b.docs.length, written, present: b.docs.length - written, blobs: b.blobs.size, checkpoint: b.checkpoint };
}

async function missing(db: PouchDB.Database, docs: DocRecord[]): Promise<DocRecord[]> {
  if (!docs.length) return [];
  const ask: Record<string, string[]> = {};
  for (const r of docs) (ask[r.doc._id] ??= []).push(r.doc._rev);
  const diff = (await db.revsDiff(ask)) as Record<string, { missing?: string[] }>;
  return docs.filter((r) => diff[r.doc._id]?.missing?.includes(r.doc._rev));
}

async function checkAttachments(db: PouchDB.Database, doc: Doc, b: ReadBundle): Promise<void> {
  const atts = doc._attachments as Record<string, { sha256: string; digest?: string }> | undefined;
  if (!atts) return;
  for (const [name, a] of Object.entries(atts)) {
    if (b.blobs.has(a.sha256)) continue;
    if (a.digest && (await heldDigests(db, doc._id)).has(a.digest)) continue;
    throw new BundleError('BUNDLE_MISSING_ATTACHMENT', `${doc._id} ${doc._rev}: attachment ${name} (sha256 ${a.sha256}) is neither in this bundle nor on this device; export again without --since`);
  }
}

/** Attachment digests held by the leaves of `id` here. */
async function heldDigests(db: PouchDB.Database, id: string): Promise<Set<string>> {
  const out = new Set<string>();
  try {
    const leaves = (await db.get(id, { open_revs: 'all' } as PouchDB.Core.GetOpenRevisions)) as unknown as { ok?: { _attachments?: Record<string, { digest?: string }> } }[];
    for (const l of leaves) for (const a of Object.values(l.ok?._attachments ?? {})) if (a.digest) out.add(a.digest);
  } catch {
    // not here at all
  }
  return out;
}

/**
 * Exports this node's database (changes since `since`, or everything) for the server: statuses with
 * their history, the heartbeat, and any edit made on the device. The key parameters come from the last
 * server bundle imported here (a node that never imported one cannot know them offline).
 */
export async function exportFromDevice(c: DeviceBundleContext, out: Writable, since: string | null = null): Promise<{ node: string; docs: number; blobs: number; bytes: number; checkpoint: string }> {
  const cp = since ? decodeCheckpoint(since, c.node, 'node') : null;
  const state = loadDeviceState(c.statePath);
  if (!state.key) throw new BundleError('BUNDLE_KEY_UNKNOWN', `node ${c.node} does not know its key parameters yet: import a bundle from the server first (it carries them), or let the agent connect once`);
  const key = await keyFromPassword(c.password, state.key, c.node);
  const w = new BundleWriter(out, key, { node: c.node, origin: 'node', created: new Date().toISOString(), key: state.key, since, imported: state.imported ?? null });
  let seq: unknown = cp?.n ?? 0;
  for (;;) {
    const page = await c.db.changes({ since: seq as number, limit: 1000, style: 'all_docs' } as PouchDB.Core.ChangesOptions);
    for (const r of page.results) {
      if (r.id.startsWith('_design/')) continue;
      const leaves = (await c.db.get(r.id, { open_revs: r.changes.map((x) => x.rev), revs: true } as PouchDB.Core.GetOpenRevisions)) as unknown as { ok?: Doc }[];
      for (const l of leaves) if (l.ok) await writeDoc(w, c.db, l.ok);
    }
    seq = page.last_seq;
    if (page.results.length < 1000) break;
  }
  const checkpoint = encodeCheckpoint({ v: 1, node: c.node, origin: 'node', n: seq });
  const r = await w.end(checkpoint);
  return { node: c.node, ...r, checkpoint };
}

async function writeDoc(w: BundleWriter, db: PouchDB.Database, doc: Doc): Promise<void> {
  const atts = doc._attachments as Record<string, { content_type?: string; digest?: string }> | undefined;
  if (atts) {
    const out: Record<string, unknown> = {};
    for (const [name, a] of Object.entries(atts)) {
      const data = (await db.getAttachment(doc._id, name, { rev: doc._rev })) as Buffer;
      const sha = createHash('sha256').update(data).digest('hex');
      await w.blob(sha, data.length, [data], `${doc._id}/${name}`);
      out[name] = { stub: true, sha256: sha, length: data.length, content_type: a.content_type ?? 'application/octet-stream', ...(a.digest ? { digest: a.digest } : {}) };
    }
    doc = { ...doc, _attachments: out };
  }
  await w.doc('node', doc);
}

/** A GET with headers, answering status and body text (the agent passes its own, agent/sync/request.ts). */
export type HttpGet = (url: string, headers: Record<string, string>) => Promise<{ status: number; text: string }>;

const fetchGet: HttpGet = async (url, headers) => {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  return { status: res.status, text: await res.text() };
};

/**
 * Online, the node reads its own `_users` document (CouchDB lets a user read its own) and keeps its key
 * parameters, so it can export bundles later with no server in reach, even if it never imported one.
 * Kept only when they derive, from this node's password, the very key the server holds. Returns
 * whether they were stored.
 */
export async function learnKeyParams(c: DeviceBundleContext, serverBase: string, user: string, get: HttpGet = fetchGet): Promise<boolean> {
  const res = await get(`${serverBase}/db/_users/${encodeURIComponent(`org.couchdb.user:${user}`)}`, { Authorization: 'Basic ' + Buffer.from(`${user}:${c.password}`).toString('base64'), Accept: 'application/json' });
  if (res.status !== 200) return false;
  const doc = JSON.parse(res.text) as Record<string, unknown>;
  const { params, key } = keyOfUserDoc(doc, c.node);
  if (!(await keyFromPassword(c.password, params, c.node)).equals(key)) return false;
  const state = loadDeviceState(c.statePath);
  if (JSON.stringify(state.key) === JSON.stringify(params)) return false;
  saveDeviceState(c.statePath, { ...state, key: params });
  return true;
}
