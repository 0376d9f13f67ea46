// A document PUT as `multipart/related`, the way CouchDB's replicator pushes a document with attachments:
// the JSON first, its attachments marked `"follows": true`, then one part per such attachment, in the
// order of `_attachments`. The result is the same document a JSON PUT would carry (base64 `data`), so it
// takes the one write path (writes.ts) with every check and quota. CouchDB reads the attachment parts
// as one stream cut by the declared lengths; here each part must be exactly its attachment, so a length
// that lies, a part too many or too few, or data that does not match its digest is a 400 naming it.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { CouchError, badRequest, unsupportedMedia } from '../../errors.ts';
import { isObject, parseJson, readBody } from '../../http.ts';
import { boundaryOf, parseMediaType, splitMultipart } from './parse.ts';

const gunzipAsync = promisify(gunzip);

export const isMultipartRelated = (contentType: string | undefined) => parseMediaType(contentType ?? '').type === 'multipart/related';

const nonNegative = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Reads and checks a multipart/related document body of at most `limit` bytes; returns the document. */
export async function readMultipartDoc(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const boundary = boundaryOf(String(req.headers['content-type']));
  const parts = splitMultipart(await readBody(req, limit), boundary);
  const [first, ...attParts] = parts;
  if (!first) throw badRequest('malformed multipart body: it has no parts (the document JSON comes first)');
  // CouchDB's answer to a first part that is not the document.
  if (parseMediaType(first.headers['content-type'] ?? '').type !== 'application/json') throw unsupportedMedia('Content-Type must be application/json');
  const doc = parseJson(first.body.toString('utf8'), 'the document part');
  if (!isObject(doc)) throw badRequest('the document part must be a JSON object');
  const atts = doc._attachments;
  const follows = isObject(atts) ? Object.entries(atts).filter(([, a]) => isObject(a) && a.follows === true) : [];
  if (attParts.length !== follows.length) {
    throw badRequest(`malformed multipart body: ${attParts.length} attachment part(s) for ${follows.length} attachment(s) marked "follows": true`);
  }
  if (!follows.length) return doc;
  const out: Record<string, unknown> = { ...(atts as Record<string, unknown>) };
  for (let i = 0; i < follows.length; i++) {
    const [name, att] = follows[i] as [string, Record<string, unknown>];
    out[name] = await attachmentFromPart(name, att, attParts[i].body, limit);
  }
  return { ...doc, _attachments: out };
}

async function attachmentFromPart(name: string, att: Record<string, unknown>, body: Buffer, limit: number): Promise<Record<string, unknown>> {
  const what = `_attachments.${JSON.stringify(name.slice(0, 80)).slice(1, -1)}`;
  const { length, encoding, encoded_length: encodedLength, digest } = att;
  if (length !== undefined && !nonNegative(length)) throw badRequest(`${what}.length must be a non-negative integer`);
  if (encodedLength !== undefined && !nonNegative(encodedLength)) throw badRequest(`${what}.encoded_length must be a non-negative integer`);
  if (encoding !== undefined && encoding !== 'gzip' && encoding !== 'identity') throw unsupportedMedia(`${what}.encoding ${JSON.stringify(String(encoding).slice(0, 40))} is not supported (gzip or identity)`);
  const gz = encoding === 'gzip';
  // The part carries the bytes as stored by the sender: gzip ones when it says so (CouchDB compresses text types).
  const sent = gz ? (encodedLength ?? length) : length;
  if (sent !== undefined && sent !== body.length) throw badRequest(`${what}: its part holds ${body.length} bytes, the document says ${String(sent)}`);
  // CouchDB's digest is the md5 of the bytes it stores, which are the bytes sent.
  if (typeof digest === 'string' && digest.startsWith('md5-') && createHash('md5').update(body).digest('base64') !== digest.slice(4)) {
    throw badRequest(`${what}: its data does not match its digest ${digest.slice(0, 60)}`);
  }
  let data = body;
  if (gz) {
    try {
      // Bounded: no more than the declared length (or the body limit) is ever inflated.
      data = await gunzipAsync(body, { maxOutputLength: Math.max(1, typeof length === 'number' ? length + 1 : limit) });
    } catch (err) {
      throw new CouchError(400, 'bad_request', `${what}: its gzip data does not inflate to its length (${(err as Error).message.slice(0, 80)})`);
    }
    if (length !== undefined && data.length !== length) throw badRequest(`${what}: its gzip data inflates to ${data.length} bytes, the document says ${String(length)}`);
  }
  const kept: Record<string, unknown> = { content_type: att.content_type ?? 'application/octet-stream', data: data.toString('base64') };
  if (att.revpos !== undefined) kept.revpos = att.revpos;
  return kept;
}
