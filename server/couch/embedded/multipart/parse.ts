// A bounded parser for the multipart bodies CouchDB's replicator sends (`multipart/related`: the document
// as JSON, then one part per attachment). It works on a body already read under the request's body limit
// (http.ts readBody: Content-Length refused up front, bytes counted as they arrive, idle timeout), so a
// hostile body costs at most that limit. Every search is a Buffer.indexOf from a moving offset: linear
// in the body, whatever boundary an attacker picks. No part is trusted to say its own length: the
// delimiters decide, and a Content-Length that disagrees is refused.
import { badRequest } from '../../errors.ts';

export interface Part {
  /** Lower-cased header names; repeated headers keep the first value. */
  headers: Record<string, string>;
  body: Buffer;
}

/** RFC 2046 bchars: what a boundary may hold (1-70 of them, not ending in a space). */
const BOUNDARY_RE = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
const MAX_PARTS = 10_000;
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_HEADERS = 32;

const malformed = (reason: string) => badRequest(`malformed multipart body: ${reason}`);

/** The media type (lower case) and the parameters of a Content-Type header. */
export function parseMediaType(header: string): { type: string; params: Record<string, string> } {
  const semi = header.indexOf(';');
  const type = (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase();
  const params: Record<string, string> = {};
  let rest = semi < 0 ? '' : header.slice(semi + 1);
  // name=token or name="quoted string", separated by ';' (RFC 9110 5.6.6); anything else ends the list.
  const PARAM_RE = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\\r\n]|\\[^\r\n]){0,1024})"|([!#$%&'*+.^_`|~0-9A-Za-z-]{1,1024}))\s*(?:;|$)/;
  for (let i = 0; i < 64 && rest.trim(); i++) {
    const m = PARAM_RE.exec(rest);
    if (!m) break;
    const name = m[1].toLowerCase();
    if (!(name in params)) params[name] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
    rest = rest.slice(m[0].length);
  }
  return { type, params };
}

/** The boundary of a `multipart/*` Content-Type, or a 400 saying what is wrong with it. */
export function boundaryOf(contentType: string): string {
  const { type, params } = parseMediaType(contentType);
  if (!type.startsWith('multipart/')) throw badRequest(`Content-Type ${type.slice(0, 80)} is not multipart`);
  const b = params.boundary;
  if (b === undefined) throw malformed('the Content-Type has no boundary parameter');
  if (!BOUNDARY_RE.test(b)) throw malformed('the boundary must be 1-70 characters of RFC 2046 bchars');
  return b;
}

function parseHeaders(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  let count = 0;
  for (const line of block.split('\r\n')) {
    if (line === '') continue;
    if (++count > MAX_HEADERS) throw malformed(`a part has more than ${MAX_HEADERS} headers`);
    const colon = line.indexOf(':');
    if (colon <= 0) throw malformed(`a part header is not "Name: value": ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) throw malformed(`a part header name is not a token: ${JSON.stringify(name.slice(0, 80))}`);
    if (!(name in headers)) headers[name] = line.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * Splits `body` into its parts (RFC 2046: optional preamble, `--boundary` lines, headers, a blank line,
 * the part's bytes, up to the closing `--boundary--`; the epilogue is ignored). Refuses a body whose
 * closing delimiter is missing, a part without the blank line after its headers, and a part whose
 * Content-Length is not its length.
 */
export function splitMultipart(body: Buffer, boundary: string): Part[] {
  const dash = Buffer.from(`--${boundary}`, 'latin1');
  const delim = Buffer.from(`\r\n--${boundary}`, 'latin1');
  // The first delimiter may start the body (no CRLF before it) or follow a preamble.
  let at = body.subarray(0, dash.length).equals(dash) ? 0 : body.indexOf(delim);
  if (at < 0) throw malformed('the boundary given in the Content-Type never occurs in the body');
  at += at === 0 && body[0] === 0x2d ? dash.length : delim.length;
  const parts: Part[] = [];
  for (;;) {
    // After a delimiter: "--" closes the body; else transport padding (spaces, tabs) and the headers.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts;
    if (parts.length >= MAX_PARTS) throw malformed(`more than ${MAX_PARTS} parts`);
    const headEnd = body.indexOf('\r\n\r\n', at, 'latin1');
    if (headEnd < 0 || headEnd - at > MAX_HEADER_BYTES) {
      throw malformed(headEnd < 0 ? `part ${parts.length + 1} has no blank line after its headers (the body is cut off?)` : `part ${parts.length + 1} has more than ${MAX_HEADER_BYTES} bytes of headers`);
    }
    const block = body.toString('latin1', at, headEnd).replace(/^[ \t]*/, '');
    if (block !== '' && !block.startsWith('\r\n')) throw malformed(`a boundary line is followed by ${JSON.stringify(block.slice(0, 20))}, not a line end`);
    const headers = parseHeaders(block);
    const start = headEnd + 4;
    const end = body.indexOf(delim, start);
    if (end < 0) throw malformed(`part ${parts.length + 1} is not closed by a boundary (the body is cut off?)`);
    const part = { headers, body: body.subarray(start, end) };
    const declared = headers['content-length'];
    if (declared !== undefined && (!/^\d{1,15}$/.test(declared) || Number(declared) !== part.body.length)) {
      throw malformed(`part ${parts.length + 1} says Content-Length: ${declared.slice(0, 20)} but holds ${part.body.length} bytes`);
    }
    parts.push(part);
    at = end + delim.length;
    if (at >= body.length) throw malformed('the closing boundary (--boundary--) is missing');
  }
}
