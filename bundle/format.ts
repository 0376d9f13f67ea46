// The bundle file: a node database's revisions (and the templates its systems use) carried by hand,
// the way a replication carries them over HTTP. Layout (see docs/bundles.md):
//
//   ANYBIOS-BUNDLE/1\n
//   {"t":"header",...}\n                          node, origin, key parameters, since
//   {"t":"doc","db":"node"|"catalog","doc":{...}}\n   one leaf revision with its _revisions
//   {"t":"blob","sha256":H,"length":N}\n<N bytes>\n   attachment content, once per sha256
//   {"t":"end","docs":D,"blobs":B,"checkpoint":C}\n
//   MAC <hex HMAC-SHA256 of every byte above>\n
//
// Written as a stream (a blob goes from its source to the file chunk by chunk); read in two passes by
// the importers: `readBundle` checks every record, every blob's sha256 and the MAC before anything is
// written, keeping only the documents (bounded) and where each blob lies; the blobs are read again by
// offset when they are written, and their sha256 checked again then (the file may have changed).
import { createHash, createHmac, timingSafeEqual, type Hmac } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { MAX_JSON_DEPTH, jsonDepth } from '../server/couch/http.ts';
import { NAME_RE } from '../ddocs/schemas/common.ts';
import { BundleError } from './errors.ts';

export { BundleError } from './errors.ts';

export const MAGIC = 'ANYBIOS-BUNDLE/1\n';

/** Who made a bundle: the server (desired state for the node) or the node (its status and edits). */
export type Origin = 'server' | 'node';

/** How the node's derived key is made from its password (CouchDB's `_users` fields; see bundle/key.ts). */
export interface KeyParams { scheme: 'pbkdf2'; prf: string; iterations: number; salt: string }

export interface BundleHeader {
  t: 'header';
  v: 1;
  node: string;
  origin: Origin;
  created: string;
  key: KeyParams;
  /** The checkpoint this bundle continues from (null: everything). */
  since: string | null;
  /** Device bundles: the last server checkpoint the device imported (so the server knows where to go on). */
  imported?: string | null;
}

export interface AttachmentRef { content_type: string; length: number; sha256: string; digest?: string; stub: true }

export interface DocRecord { t: 'doc'; db: 'node' | 'catalog'; doc: Record<string, unknown> & { _id: string; _rev: string } }

export interface BlobPlace { sha256: string; length: number; offset: number }

export interface ReadBundle {
  header: BundleHeader;
  docs: DocRecord[];
  blobs: Map<string, BlobPlace>;
  checkpoint: string;
  bytes: number;
}

export interface Limits {
  /** Longest JSON record (one document). */
  maxLine: number;
  maxDocs: number;
  /** All documents together (they are kept in memory between the passes). */
  maxDocBytes: number;
  maxBlob: number;
  maxBlobs: number;
  maxRevisions: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxLine: 8 * 1024 * 1024,
  maxDocs: 200_000,
  maxDocBytes: 256 * 1024 * 1024,
  maxBlob: 8 * 1024 * 1024 * 1024,
  maxBlobs: 10_000,
  maxRevisions: 1000,
};

const HEX64 = /^[0-9a-f]{64}$/;
const REV_RE = /^([1-9][0-9]{0,9})-([0-9a-f]{1,64})$/;
const ID_MAX = 1024;
const PRFS = new Set(['sha1', 'sha224', 'sha256', 'sha384', 'sha512']);
export const MAX_ITERATIONS = 5_000_000;

// ---- writing -------------------------------------------------------------------------------------

/** Streams a bundle into `out`, the MAC computed as it goes. `end()` writes the trailer. */
export class BundleWriter {
  private readonly mac: Hmac;
  private docs = 0;
  private blobs = new Set<string>();
  bytes = 0;

  constructor(private readonly out: Writable, key: Buffer, header: Omit<BundleHeader, 't' | 'v'>) {
    this.mac = createHmac('sha256', key);
    this.started = this.write(Buffer.from(MAGIC)).then(() => this.line({ t: 'header', v: 1, ...header }));
  }

  private readonly started: Promise<void>;

  private async write(b: Buffer): Promise<void> {
    this.mac.update(b);
    await this.push(b);
  }

  private async push(b: Buffer): Promise<void> {
    // A stream that failed (disk full, reader gone) never drains again: say so instead of waiting.
    if (this.out.errored || this.out.destroyed) throw new BundleError('BUNDLE_SOURCE_UNREACHABLE', `the bundle cannot be written: ${this.out.errored?.message ?? 'the output was closed'}`);
    this.bytes += b.length;
    if (!this.out.write(b)) await once(this.out, 'drain');
  }

  private line(v: unknown): Promise<void> {
    return this.write(Buffer.from(JSON.stringify(v) + '\n'));
  }

  async doc(db: DocRecord['db'], doc: Record<string, unknown>): Promise<void> {
    await this.started;
    this.docs++;
    await this.line({ t: 'doc', db, doc });
  }

  /** Writes `length` bytes from `source`, checking they are exactly that many and hash to `sha256`. */
  async blob(sha256: string, length: number, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, what: string): Promise<void> {
    await this.started;
    if (this.blobs.has(sha256)) return;
    await this.line({ t: 'blob', sha256, length });
    const h = createHash('sha256');
    let n = 0;
    for await (const chunk of source) {
      const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      n += b.length;
      if (n > length) throw new BundleError('BUNDLE_SOURCE_CHANGED', `${what}: more than the ${length} bytes its document states`);
      h.update(b);
      await this.write(b);
    }
    if (n !== length) throw new BundleError('BUNDLE_SOURCE_CHANGED', `${what}: ${n} bytes, its document states ${length}`);
    const got = h.digest('hex');
    if (got !== sha256) throw new BundleError('BUNDLE_SOURCE_CHANGED', `${what}: its content has sha256 ${got}, its document states ${sha256}`);
    await this.write(Buffer.from('\n'));
    this.blobs.add(sha256);
  }

  async end(checkpoint: string): Promise<{ docs: number; blobs: number; bytes: number }> {
    await this.started;
    await this.line({ t: 'end', docs: this.docs, blobs: this.blobs.size, checkpoint });
    const mac = this.mac.digest('hex');
    await this.push(Buffer.from(`MAC ${mac}\n`));
    return { docs: this.docs, blobs: this.blobs.size, bytes: this.bytes };
  }
}

// ---- reading -------------------------------------------------------------------------------------

/** Pulls bytes from a file stream: whole lines (bounded) or a counted run of bytes. */
class ByteReader {
  private buf = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  private eof = false;
  /** Bytes consumed so far (offset of the next byte in the file). */
  offset = 0;
  onConsume: (b: Buffer) => void = () => {};

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.eof) return false;
    const r = await this.it.next();
    if (r.done) {
      this.eof = true;
      return false;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, r.value]) : r.value;
    return true;
  }

  private take(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.offset += n;
    this.onConsume(out);
    return out;
  }

  /** The next line without its \n; null at a clean end of file; `cut` when the file ends inside it. */
  async line(max: number, what: string): Promise<Buffer | null> {
    let scanned = 0;
    for (;;) {
      const nl = this.buf.indexOf(10, scanned);
      if (nl >= 0) {
        if (nl > max) break;
        const l = this.take(nl + 1);
        return l.subarray(0, nl);
      }
      scanned = this.buf.length;
      if (scanned > max) break;
      if (!(await this.more())) {
        if (!this.buf.length) return null;
        throw new BundleError('BUNDLE_TRUNCATED', `the file ends at byte ${this.offset + this.buf.length} inside ${what} (begun at byte ${this.offset}): the bundle is incomplete; copy it again`);
      }
    }
    throw new BundleError('BUNDLE_TOO_LARGE', `${what} at byte ${this.offset} is longer than ${max} bytes`);
  }

  /** Feeds exactly `n` bytes to `sink`; `cut` when the file ends first. */
  async bytes(n: number, sink: (b: Buffer) => void, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      if (!this.buf.length && !(await this.more())) {
        throw new BundleError('BUNDLE_TRUNCATED', `the file ends at byte ${this.offset} inside ${what} (${n - left} of ${n} bytes): the bundle is incomplete; copy it again`);
      }
      const b = this.take(Math.min(left, this.buf.length));
      sink(b);
      left -= b.length;
    }
  }

  /** Up to `n` bytes ahead, not consumed. */
  async peek(n: number): Promise<Buffer> {
    while (this.buf.length < n && (await this.more()));
    return this.buf.subarray(0, n);
  }

  async atEnd(): Promise<boolean> {
    return !this.buf.length && !(await this.more());
  }
}

const malformed = (at: number, msg: string) => new BundleError('BUNDLE_MALFORMED', `byte ${at}: ${msg}`);

function parseRecord(line: Buffer, at: number): Record<string, unknown> {
  const text = line.toString('utf8');
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw malformed(at, `a record nests deeper than ${MAX_JSON_DEPTH} levels`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw malformed(at, `a record is not JSON (${(err as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw malformed(at, 'a record must be a JSON object');
  return v as Record<string, unknown>;
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

function checkHeader(r: Record<string, unknown>, at: number): BundleHeader {
  if (r.t !== 'header') throw malformed(at, 'the first record must be the header');
  if (r.v !== 1) throw new BundleError('BUNDLE_VERSION', `bundle version ${JSON.stringify(r.v)} is not supported (this anybios reads version 1)`);
  if (typeof r.node !== 'string' || !NAME_RE.test(r.node)) throw malformed(at, 'header.node must be a node id');
  if (r.origin !== 'server' && r.origin !== 'node') throw malformed(at, 'header.origin must be "server" or "node"');
  const k = r.key as Record<string, unknown> | undefined;
  if (!k || typeof k !== 'object' || k.scheme !== 'pbkdf2') throw malformed(at, 'header.key.scheme must be "pbkdf2"');
  if (typeof k.prf !== 'string' || !PRFS.has(k.prf)) throw malformed(at, `header.key.prf must be one of ${[...PRFS].join(', ')}`);
  // A hostile header could ask for a billion rounds to keep the device busy: bounded.
  if (!isInt(k.iterations, 1, MAX_ITERATIONS)) throw malformed(at, `header.key.iterations must be an integer from 1 to ${MAX_ITERATIONS}`);
  if (typeof k.salt !== 'string' || !k.salt || k.salt.length > 256) throw malformed(at, 'header.key.salt must be a string of 1-256 characters');
  for (const f of ['since', 'imported'] as const) if (r[f] !== undefined && r[f] !== null && (typeof r[f] !== 'string' || (r[f] as string).length > 65536)) throw malformed(at, `header.${f} must be a checkpoint string or null`);
  if (typeof r.created !== 'string' || r.created.length > 64) throw malformed(at, 'header.created must be a time');
  return { t: 'header', v: 1, node: r.node, origin: r.origin, created: r.created, key: { scheme: 'pbkdf2', prf: k.prf, iterations: k.iterations, salt: k.salt }, since: (r.since as string | null) ?? null, imported: (r.imported as string | null) ?? null };
}

/** Structure of one document record (not its content rules: those are the importer's, as CouchDB's). */
function checkDoc(r: Record<string, unknown>, at: number, limits: Limits): DocRecord {
  if (r.db !== 'node' && r.db !== 'catalog') throw malformed(at, 'doc.db must be "node" or "catalog"');
  const doc = r.doc as Record<string, unknown> | undefined;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw malformed(at, 'doc.doc must be an object');
  const id = doc._id;
  if (typeof id !== 'string' || !id || id.length > ID_MAX) throw malformed(at, `doc._id must be a string of 1-${ID_MAX} characters`);
  const what = `document ${JSON.stringify(id.slice(0, 80))}`;
  if (id.startsWith('_local/')) throw malformed(at, `${what}: local documents never travel`);
  const m = typeof doc._rev === 'string' ? REV_RE.exec(doc._rev) : null;
  if (!m) throw malformed(at, `${what}: _rev must be N-hex`);
  const revs = doc._revisions as { start?: unknown; ids?: unknown } | undefined;
  if (!revs || typeof revs !== 'object') throw malformed(at, `${what}: _revisions is required (the revision history travels with each revision)`);
  if (revs.start !== Number(m[1])) throw malformed(at, `${what}: _revisions.start must be the generation of _rev (${m[1]})`);
  if (!Array.isArray(revs.ids) || !revs.ids.length || revs.ids.length > limits.maxRevisions || revs.ids.length > Number(m[1])) throw malformed(at, `${what}: _revisions.ids must list 1-${Math.min(limits.maxRevisions, Number(m[1]))} revision hashes`);
  if (!revs.ids.every((x) => typeof x === 'string' && /^[0-9a-f]{1,64}$/.test(x))) throw malformed(at, `${what}: _revisions.ids must be hex hashes`);
  if (revs.ids[0] !== m[2]) throw malformed(at, `${what}: _revisions.ids[0] must be the hash of _rev`);
  for (const k of Object.keys(doc)) if (k.startsWith('_') && !['_id', '_rev', '_revisions', '_deleted', '_attachments'].includes(k)) throw malformed(at, `${what}: field ${k.slice(0, 40)} is not allowed in a bundle`);
  if (doc._deleted !== undefined && doc._deleted !== true) throw malformed(at, `${what}: _deleted must be true when present`);
  const atts = doc._attachments;
  if (atts !== undefined) {
    if (!atts || typeof atts !== 'object' || Array.isArray(atts)) throw malformed(at, `${what}: _attachments must be an object`);
    const entries = Object.entries(atts as Record<string, unknown>);
    if (entries.length > 64) throw malformed(at, `${what}: more than 64 attachments`);
    for (const [name, a] of entries) {
      // CouchDB's rule (no leading underscore) plus no control characters or path separators: names
      // never become paths here, but nothing hostile should reach a database either.
      if (!name || name.length > 255 || name.startsWith('_') || /[\u0000-\u001f\u007f/\\]/.test(name)) throw malformed(at, `${what}: attachment name ${JSON.stringify(name.slice(0, 80))} is not allowed`);
      const x = a as Record<string, unknown>;
      if (!x || typeof x !== 'object' || x.stub !== true || typeof x.sha256 !== 'string' || !HEX64.test(x.sha256) || !isInt(x.length, 0, limits.maxBlob) || typeof x.content_type !== 'string' || x.content_type.length > 255) {
        throw malformed(at, `${what}: attachment ${name} must be {stub:true, sha256, length, content_type} (content travels as a blob record)`);
      }
      for (const k of Object.keys(x)) if (!['stub', 'sha256', 'length', 'content_type', 'digest', 'revpos'].includes(k)) throw malformed(at, `${what}: attachment ${name}: field ${k.slice(0, 40)} is not allowed`);
    }
  }
  return { t: 'doc', db: r.db, doc: doc as DocRecord['doc'] };
}

export interface ReadOptions {
  /** The HMAC key for this header (throws a BundleError when the importer cannot or will not make it). */
  keyFor: (header: BundleHeader) => Promise<Buffer>;
  limits?: Partial<Limits>;
}

/**
 * The verifying pass: every record well formed, every blob as long as stated with the stated sha256,
 * the end record's counts right, and the MAC over all of it correct — else a BundleError saying which
 * byte and why. Nothing is written anywhere.
 */
export async function readBundle(file: string, o: ReadOptions): Promise<ReadBundle> {
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
  try {
    const r = new ByteReader(stream as AsyncIterable<Buffer>);
    const head: Buffer[] = [];
    r.onConsume = (b) => head.push(b);
    const start = (await r.peek(MAGIC.length)).toString('latin1');
    if (!start.length) throw new BundleError('BUNDLE_TRUNCATED', 'the file is empty');
    if (start.length < MAGIC.length && MAGIC.startsWith(start)) throw new BundleError('BUNDLE_TRUNCATED', `the file ends at byte ${start.length}, inside the first line: the bundle is incomplete; copy it again`);
    const magic = start === MAGIC ? await r.line(64, 'the first line') : null;
    if (magic === null || magic.toString('latin1') + '\n' !== MAGIC) throw new BundleError('BUNDLE_NOT_A_BUNDLE', `not an anybios bundle (it does not begin with ${JSON.stringify(MAGIC.trim())})`);
    const headerAt = r.offset;
    const headerLine = await r.line(70_000, 'the header');
    if (headerLine === null) throw new BundleError('BUNDLE_TRUNCATED', `the file ends at byte ${r.offset}, before the header: the bundle is incomplete; copy it again`);
    const header = checkHeader(parseRecord(headerLine, headerAt), headerAt);
    const mac = createHmac('sha256', await o.keyFor(header));
    for (const b of head) mac.update(b);
    r.onConsume = (b) => mac.update(b);
    const docs: DocRecord[] = [];
    const blobs = new Map<string, BlobPlace>();
    let docBytes = 0;
    for (;;) {
      const at = r.offset;
      const line = await r.line(limits.maxLine, `the record after ${docs.length} documents and ${blobs.size} blobs`);
      if (line === null) throw new BundleError('BUNDLE_TRUNCATED', `the file ends at byte ${at} after ${docs.length} documents and ${blobs.size} blobs, without its end record and MAC: the bundle is incomplete; copy it again`);
      const rec = parseRecord(line, at);
      if (rec.t === 'doc') {
        if (docs.length >= limits.maxDocs) throw new BundleError('BUNDLE_TOO_LARGE', `more than ${limits.maxDocs} documents`);
        docBytes += line.length;
        if (docBytes > limits.maxDocBytes) throw new BundleError('BUNDLE_TOO_LARGE', `the documents exceed ${limits.maxDocBytes} bytes together`);
        docs.push(checkDoc(rec, at, limits));
      } else if (rec.t === 'blob') {
        if (typeof rec.sha256 !== 'string' || !HEX64.test(rec.sha256)) throw malformed(at, 'blob.sha256 must be 64 lowercase hex characters');
        if (!isInt(rec.length, 0, limits.maxBlob)) throw new BundleError('BUNDLE_TOO_LARGE', `byte ${at}: blob.length must be an integer from 0 to ${limits.maxBlob}`);
        if (blobs.has(rec.sha256)) throw malformed(at, `blob ${rec.sha256} appears twice`);
        if (blobs.size >= limits.maxBlobs) throw new BundleError('BUNDLE_TOO_LARGE', `more than ${limits.maxBlobs} blobs`);
        const h = createHash('sha256');
        const offset = r.offset;
        await r.bytes(rec.length, (b) => h.update(b), `blob ${rec.sha256.slice(0, 12)}…`);
        let nl = -1;
        await r.bytes(1, (b) => { nl = b[0]; }, `the newline after blob ${rec.sha256.slice(0, 12)}…`);
        if (nl !== 10) throw malformed(r.offset - 1, `blob ${rec.sha256} is not followed by a newline (its length is wrong?)`);
        const got = h.digest('hex');
        if (got !== rec.sha256) throw new BundleError('BUNDLE_MAC_MISMATCH', `blob at byte ${offset} has sha256 ${got}, not the ${rec.sha256} it states: the bundle was altered or damaged`);
        blobs.set(rec.sha256, { sha256: rec.sha256, length: rec.length, offset });
      } else if (rec.t === 'end') {
        if (rec.docs !== docs.length || rec.blobs !== blobs.size) throw malformed(at, `the end record counts ${String(rec.docs)} documents and ${String(rec.blobs)} blobs, the bundle has ${docs.length} and ${blobs.size}`);
        if (typeof rec.checkpoint !== 'string' || rec.checkpoint.length > 65536) throw malformed(at, 'end.checkpoint must be a string');
        r.onConsume = () => {};
        const macAt = r.offset;
        const trailer = await r.line(80, 'the MAC line');
        if (trailer === null) throw new BundleError('BUNDLE_TRUNCATED', `the file ends at byte ${macAt}, before its MAC line: the bundle is incomplete; copy it again`);
        const m = /^MAC ([0-9a-f]{64})$/.exec(trailer.toString('latin1'));
        if (!m) throw malformed(macAt, 'the last line must be "MAC <64 hex>"');
        if (!(await r.atEnd())) throw malformed(r.offset, 'bytes after the MAC line');
        const want = mac.digest();
        if (!timingSafeEqual(want, Buffer.from(m[1], 'hex'))) {
          throw new BundleError('BUNDLE_MAC_MISMATCH', `the MAC does not match: the bundle was altered after it was made, or made with another credential than node ${header.node}'s`);
        }
        return { header, docs, blobs, checkpoint: rec.checkpoint, bytes: r.offset };
      } else throw malformed(at, `unknown record type ${JSON.stringify(String(rec.t).slice(0, 40))}`);
    }
  } finally {
    stream.destroy();
  }
}

/** The bytes of one blob, read again by offset and checked against its sha256 (the file may have changed since the verifying pass). */
export async function readBlob(file: string, place: BlobPlace): Promise<Buffer> {
  const out = Buffer.allocUnsafe(place.length);
  let n = 0;
  if (place.length) {
    for await (const chunk of createReadStream(file, { start: place.offset, end: place.offset + place.length - 1, highWaterMark: 1024 * 1024 })) {
      const b = chunk as Buffer;
      if (n + b.length > out.length) break;
      b.copy(out, n);
      n += b.length;
    }
  }
  if (n !== place.length || createHash('sha256').update(out).digest('hex') !== place.sha256) {
    throw new BundleError('BUNDLE_CHANGED', `blob ${place.sha256} changed on disk while it was being imported; nothing after it was written — import the bundle again`);
  }
  return out;
}

/**
 * The revision as a database takes it with `new_edits:false`: each attachment as data (its blob from
 * the bundle, in the form `asData` gives: a Buffer for PouchDB, base64 for `_bulk_docs`) or, when the
 * bundle does not carry it, as a stub naming the digest the target must already hold.
 */
export async function withAttachmentData(doc: DocRecord['doc'], b: ReadBundle, file: string, asData: (bytes: Buffer) => unknown): Promise<DocRecord['doc']> {
  const atts = doc._attachments as Record<string, AttachmentRef> | undefined;
  if (!atts) return doc;
  const out: Record<string, unknown> = {};
  for (const [name, a] of Object.entries(atts)) {
    const place = b.blobs.get(a.sha256);
    if (place) out[name] = { content_type: a.content_type, data: asData(await readBlob(file, place)) };
    else if (a.digest) out[name] = { stub: true, content_type: a.content_type, digest: a.digest };
    else throw new BundleError('BUNDLE_MISSING_ATTACHMENT', `${doc._id}: attachment ${name} (sha256 ${a.sha256}) is neither in the bundle nor named by a digest`);
  }
  return { ...doc, _attachments: out };
}
