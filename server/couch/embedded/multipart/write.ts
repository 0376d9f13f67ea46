// Multipart answers, laid out byte for byte as Apache CouchDB 3.5 writes them (couch_httpd_multipart
// encode_multipart_stream, chttpd_db send_docs_multipart): a document with attachment bodies is
// `--B\r\nContent-Type: application/json\r\n\r\n{json}\r\n--B` then, per attachment,
// `\r\nContent-Disposition: attachment; filename="name"\r\nContent-Type: t\r\nContent-Length: n\r\n\r\n`
// its bytes and `\r\n--B`, closed by `--`. A document without attachment bodies is its JSON alone.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface AttachmentBody {
  name: string;
  contentType: string;
  data: Buffer;
}

/** 32 hex characters, as CouchDB's couch_uuids:random(). */
export const newBoundary = () => randomBytes(16).toString('hex');

/**
 * Whether the caller's Accept header names `type` (or `multipart/*`) with a non-zero q. Unlike CouchDB,
 * a missing Accept or `*\/*` does not count: browsers and fetch() send `*\/*`, and they get JSON.
 */
export function acceptsExplicitly(req: IncomingMessage, type: string): boolean {
  const header = req.headers.accept;
  if (!header) return false;
  const superType = type.split('/')[0] + '/*';
  let yes = false;
  for (const item of String(header).slice(0, 4096).split(',')) {
    const [range, ...params] = item.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const zero = q !== undefined && Number(q.slice(2)) === 0;
    if (range === type || range === superType) {
      if (zero) return false; // refused explicitly, as mochiweb does
      yes = true;
    }
  }
  return yes;
}

/** A filename that cannot break the part's header (a name stored before the name rule may hold CR/LF or quotes). */
const headerSafe = (s: string) => s.replace(/[\u0000-\u001f\u007f"\\]/g, (c) => encodeURIComponent(c));

/** The chunks of one document as `multipart/related` with `boundary` (or its JSON alone without bodies). */
export function relatedChunks(boundary: string, json: string, bodies: AttachmentBody[]): Buffer[] {
  if (!bodies.length) return [Buffer.from(json)];
  const out = [Buffer.from(`--${boundary}\r\nContent-Type: application/json\r\n\r\n`), Buffer.from(json), Buffer.from(`\r\n--${boundary}`, 'latin1')];
  for (const b of bodies) {
    out.push(Buffer.from(`\r\nContent-Disposition: attachment; filename="${headerSafe(b.name)}"\r\nContent-Type: ${b.contentType}\r\nContent-Length: ${b.data.length}\r\n\r\n`), b.data, Buffer.from(`\r\n--${boundary}`, 'latin1'));
  }
  out.push(Buffer.from('--'));
  return out;
}

export const relatedType = (boundary: string) => `multipart/related; boundary="${boundary}"`;

/** Writes chunks to the response, waiting for the socket to drain (large attachments are not queued whole). */
export async function writeChunks(res: ServerResponse, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) {
    if (res.destroyed) throw new Error('the client went away');
    if (!res.write(c)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done).off('close', done);
          resolve();
        };
        res.on('drain', done).on('close', done);
      });
    }
  }
}
