// HTTP Range on attachments, as Apache CouchDB serves it for attachments stored uncompressed (ours
// always are): `Accept-Ranges: bytes`, one range → 206 with Content-Range, an unsatisfiable one → 416
// with `Content-Range: bytes */LENGTH`. A request for several ranges gets the whole attachment (200),
// which RFC 9110 allows; a resumable download (the agent's template pull) asks for one.

/**
 * The largest attachment a PUT may send (a template's rootfs.tar): above the JSON body limit, and below
 * what PouchDB can take, since it stores attachments from a base64 string (V8 strings end near 512 Mi).
 * Holding one costs the server about four times its size in memory while it is written, so only those
 * who may write templates get it (see `attachmentLimit`); everyone else keeps the JSON body limit.
 */
export const ATTACHMENT_MAX_BODY = 384 * 1024 * 1024;

/** Roles, besides server and database admins, that may PUT attachments up to ATTACHMENT_MAX_BODY. */
export const BIG_ATTACHMENT_ROLES = ['operator'];

/**
 * The body limit of an attachment PUT by `roles`: decided before the body is read, so a stolen node
 * credential (role `node`) cannot make the server hold hundreds of MiB.
 */
export function attachmentLimit(roles: string[], dbAdmin: boolean, maxBody: number): number {
  return dbAdmin || roles.some((r) => BIG_ATTACHMENT_ROLES.includes(r)) ? Math.max(maxBody, ATTACHMENT_MAX_BODY) : maxBody;
}

export type RangeAnswer = { kind: 'full' } | { kind: 'part'; start: number; end: number } | { kind: 'unsatisfiable' };

/** The answer to a Range header for a body of `length` bytes (a malformed header is ignored, as RFC 9110 says). */
export function parseRange(header: string | undefined, length: number): RangeAnswer {
  if (header === undefined) return { kind: 'full' };
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return { kind: 'full' }; // several ranges, another unit, or garbage: send it all
  const [, a, b] = m;
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    // suffix: the last N bytes
    const n = Number(b);
    if (n === 0 || length === 0) return { kind: 'unsatisfiable' };
    return { kind: 'part', start: Math.max(0, length - n), end: length - 1 };
  }
  const start = Number(a);
  if (!Number.isSafeInteger(start) || start >= length) return { kind: 'unsatisfiable' };
  const end = b === '' ? length - 1 : Math.min(Number(b), length - 1);
  if (!Number.isSafeInteger(end) || end < start) return { kind: 'full' }; // "5-2" is invalid: ignored
  return { kind: 'part', start, end };
}

/** Status, headers and the slice of `data` to send for a GET/HEAD of an attachment. */
export function rangeResponse(header: string | undefined, data: Buffer, headers: Record<string, string | number>): { status: number; headers: Record<string, string | number>; body: Buffer } {
  const r = parseRange(header, data.length);
  const base = { ...headers, 'Accept-Ranges': 'bytes' };
  if (r.kind === 'unsatisfiable') {
    return { status: 416, headers: { 'Content-Type': 'application/json', 'Content-Range': `bytes */${data.length}` }, body: Buffer.from('{"error":"requested_range_not_satisfiable","reason":"Requested range not satisfiable"}\n') };
  }
  if (r.kind === 'full') return { status: 200, headers: { ...base, 'Content-Length': data.length }, body: data };
  const body = data.subarray(r.start, r.end + 1);
  return { status: 206, headers: { ...base, 'Content-Length': body.length, 'Content-Range': `bytes ${r.start}-${r.end}/${data.length}` }, body };
}
