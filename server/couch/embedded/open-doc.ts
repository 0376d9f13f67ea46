// A stored revision as CouchDB hands it out when attachments are asked for: `atts_since` (CouchDB's
// couch_db apply_open_options) keeps as stubs the attachments the caller already has (revpos at or
// below the newest of its revisions in this one's history), and only the others are read from the
// store: inline as base64 (`attachments=true` in JSON) or as bodies that follow (multipart). PouchDB
// reads documents without attachment data here; each body is read alone, only when it is sent.
import { notFound } from '../errors.ts';
import { cleanDoc, servedContentType } from './attachments.ts';
import type { AttachmentBody } from './multipart/write.ts';

export type AttMode = 'stub' | 'inline' | 'follows';

export interface OpenedDoc {
  json: Record<string, unknown>;
  bodies: AttachmentBody[];
}

interface Stub { content_type?: unknown; digest?: unknown; length?: unknown; revpos?: unknown }

/**
 * `db.get`, with `latest` resolved here: PouchDB resolves it by walking the revision tree and throws out
 * of a storage callback for a revision that is not in it, which ends the process. Here the leaves are
 * read and each revision asked for maps to the leaves whose history holds it (CouchDB's `latest`); one
 * that no leaf descends from is `{missing}` (open_revs) or a 404 (rev).
 */
export async function readDoc(db: PouchDB.Database, id: string, opts: Record<string, unknown>, leavesCache?: Map<string, Promise<unknown>>): Promise<unknown> {
  const { latest, ...rest } = opts;
  const asked = Array.isArray(opts.open_revs) ? (opts.open_revs as string[]) : typeof opts.rev === 'string' ? [opts.rev] : [];
  if (!latest || !asked.length || id.startsWith('_local/')) return db.get(id, rest);
  let leaves: { ok?: Record<string, unknown> }[];
  try {
    const { rev: _one, open_revs: _asked, ...base } = rest;
    // One read of the leaves per document and request: `_bulk_get?latest=true` asks once per revision,
    // and reading every leaf each time made 200 conflicting revisions take 55 s (PouchDB's suite).
    const key = `${id}\u0000${JSON.stringify(base)}`;
    let p = leavesCache?.get(key);
    if (!p) {
      p = db.get(id, { ...base, open_revs: 'all', revs: true } as PouchDB.Core.GetOpenRevisions);
      leavesCache?.set(key, p);
    }
    leaves = (await p) as unknown as { ok?: Record<string, unknown> }[];
  } catch (err) {
    if ((err as { status?: number }).status === 404 && Array.isArray(opts.open_revs)) leaves = [];
    else throw err;
  }
  const holds = (leaf: Record<string, unknown>, rev: string) => {
    // A leaf holds itself, whatever its `_revisions` say: PouchDB gives `2-a` after `1-a` the history
    // {start: 1, ids: ["a"]} (PouchDB's suite, "multiple remote conflicts (#789)").
    if (leaf._rev === rev) return true;
    const r = leaf._revisions as { start: number; ids: string[] } | undefined;
    const dash = rev.indexOf('-');
    const pos = Number(rev.slice(0, dash));
    return !!r && pos <= r.start && r.ids[r.start - pos] === rev.slice(dash + 1);
  };
  const out: unknown[] = [];
  const sent = new Set<string>();
  for (const rev of asked) {
    // Every leaf that descends from it (a revision below a conflict has two), as CouchDB's get_key_leafs.
    const found = leaves.filter((l) => l.ok && holds(l.ok, rev)).map((l) => l.ok!);
    if (!found.length) out.push({ missing: rev });
    for (const leaf of found) {
      if (sent.has(String(leaf._rev))) continue; // two revisions of one branch: its leaf once
      sent.add(String(leaf._rev));
      const doc = { ...leaf };
      if (!opts.revs) delete doc._revisions;
      out.push({ ok: doc });
    }
  }
  if (Array.isArray(opts.open_revs)) return out;
  const [first] = out as ({ ok: unknown } | { missing: string })[];
  if ('missing' in first) throw notFound('missing');
  return first.ok;
}

/** CouchDB's find_ancestor_rev_pos: the position of the newest revision of `revisions` named in `attsSince`, else 0. */
export function ancestorPos(revisions: unknown, attsSince: string[] | undefined): number {
  const r = revisions as { start?: unknown; ids?: unknown } | undefined;
  if (!attsSince?.length || typeof r?.start !== 'number' || !Array.isArray(r.ids)) return 0;
  const wanted = new Set(attsSince);
  for (let i = 0; i < r.ids.length; i++) if (wanted.has(`${r.start - i}-${String(r.ids[i])}`)) return r.start - i;
  return 0;
}

/** Members in CouchDB's order: _id, _rev, the body, _deleted, _revisions, the other metadata, _attachments. */
export function couchOrder(doc: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const meta = ['_id', '_rev'];
  const late = ['_deleted', '_revisions', '_revs_info', '_local_seq', '_conflicts', '_deleted_conflicts', '_attachments'];
  for (const k of meta) if (doc[k] !== undefined) out[k] = doc[k];
  for (const [k, v] of Object.entries(doc)) if (!meta.includes(k) && !late.includes(k)) out[k] = v;
  for (const k of late) if (doc[k] !== undefined) out[k] = doc[k];
  return out;
}

/**
 * Shapes `raw` (read from PouchDB without attachment data, with `_revisions` when `attsSince` is given)
 * for the caller: attachments per `mode`, `_revisions` only when `keepRevisions`, CouchDB's member order.
 */
export async function openDoc(db: PouchDB.Database, raw: Record<string, unknown>, opts: { mode: AttMode; attsSince?: string[]; keepRevisions: boolean }): Promise<OpenedDoc> {
  const doc = { ...cleanDoc(raw) };
  if (!opts.keepRevisions) delete doc._revisions;
  const stubs = doc._attachments as Record<string, Stub> | undefined;
  const bodies: AttachmentBody[] = [];
  if (stubs && typeof stubs === 'object') {
    const since = ancestorPos(raw._revisions, opts.attsSince);
    const atts: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(stubs)) {
      const head = { content_type: servedContentType(s.content_type), revpos: s.revpos, digest: s.digest };
      const revpos = typeof s.revpos === 'number' ? s.revpos : 0;
      if (opts.mode === 'stub' || revpos <= since) {
        atts[name] = { ...head, length: s.length, stub: true };
        continue;
      }
      const data = (await db.getAttachment(String(doc._id), name, { rev: String(doc._rev) })) as Buffer;
      if (opts.mode === 'inline') atts[name] = { ...head, data: data.toString('base64') };
      else {
        atts[name] = { ...head, length: data.length, follows: true };
        bodies.push({ name, contentType: head.content_type, data });
      }
    }
    doc._attachments = atts;
  }
  return { json: couchOrder(doc), bodies };
}
