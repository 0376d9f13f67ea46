// Request and response helpers for the CouchDB API: bounded body reading, JSON parsing that refuses
// deep nesting before it can hurt, and typed query parameters that answer 400 on nonsense.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CouchError, badRequest, tooLarge, unsupportedMedia } from './errors.ts';
import { bodyPolicy } from '../limits/gate.ts';

export const DEFAULT_MAX_BODY = 64 * 1024 * 1024;
export const MAX_JSON_DEPTH = 64;

/**
 * Reads a whole body, refusing it as soon as it is known to be too big: by Content-Length before a
 * byte is read, else when the bytes pass the limit. Behind the request gate (server/limits) the limit
 * is the anonymous one until a route has authenticated the caller, each byte counts against the
 * memory budget, and a body that goes silent for the idle timeout is refused with 408. A refused
 * body is left unread: the gate closes the connection after the answer.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const policy = bodyPolicy(req);
  if (policy) limit = Math.min(limit, policy.limit);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    // A pause first (callers without credentials or rate limits: none): a client that sends it again
    // at once is slowed to this pace instead of keeping the server busy refusing.
    if (policy?.refusalDelayMs) await new Promise((r) => setTimeout(r, policy.refusalDelayMs));
    throw tooLarge(limit);
  }
  if (policy && Number.isFinite(declared) && declared > 0) policy.admit(declared);
  if (req.complete && req.readableEnded) return Buffer.alloc(0);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    let paused: NodeJS.Timeout | undefined;
    const finish = (err: CouchError | null) => {
      clearTimeout(timer);
      clearTimeout(paused);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) {
        req.pause();
        reject(err);
      } else resolve(Buffer.concat(chunks, size));
    };
    const arm = () => {
      if (!policy) return;
      clearTimeout(timer);
      timer = setTimeout(() => finish(new CouchError(408, 'request_timeout', `no body data arrived for ${policy.idleMs} ms`)), policy.idleMs);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return finish(tooLarge(limit));
      let wait = 0;
      try {
        wait = policy?.take(chunk.length) ?? 0;
      } catch (err) {
        return finish(err as CouchError);
      }
      chunks.push(chunk);
      if (wait > 0) {
        // Over the caller's byte rate: stop reading (TCP back-pressure) until it refills; not idle time.
        clearTimeout(timer);
        req.pause();
        paused = setTimeout(() => {
          arm();
          req.resume();
        }, wait);
      } else arm();
    };
    const onEnd = () => finish(null);
    // The client went away mid-body ('aborted', ECONNRESET): its failure, not a 500 of ours.
    const onError = (err: Error) => finish(new CouchError(400, 'bad_request', `the request body was cut off: ${err?.message ?? String(err)}`));
    const onClose = () => { if (!req.complete) onError(new Error('the connection closed')); };
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    arm();
    req.resume();
  });
}

/** Nesting depth of a JSON text, counted without parsing (strings skipped), so deep input is refused cheaply. */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped char
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) max = depth;
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

export function parseJson(text: string, what = 'request body'): unknown {
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw badRequest(`${what} nests deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = String(req.headers['content-type'] ?? '');
  if (type.startsWith('multipart/')) throw unsupportedMedia('multipart bodies are not supported here; send JSON with base64 attachments');
  const body = await readBody(req, limit);
  if (body.length === 0) throw badRequest('a JSON body is required');
  return parseJson(body.toString('utf8'));
}

export async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const v = await readJson(req, limit);
  if (!isObject(v)) throw badRequest('the request body must be a JSON object');
  return v;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'must-revalidate', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Typed access to query parameters; each getter refuses malformed values with a 400 naming the parameter. */
export class Query {
  constructor(readonly params: URLSearchParams) {}
  has(name: string): boolean {
    return this.params.has(name);
  }
  str(name: string): string | undefined {
    return this.params.get(name) ?? undefined;
  }
  bool(name: string): boolean | undefined {
    const v = this.params.get(name);
    if (v === null) return undefined;
    if (v === 'true') return true;
    if (v === 'false') return false;
    throw badRequest(`query parameter ${name} must be true or false`);
  }
  int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.params.get(name);
    if (v === null) return undefined;
    if (!/^-?\d{1,16}$/.test(v)) throw badRequest(`query parameter ${name} must be an integer`);
    const n = Number(v);
    if (n < min || n > max) throw badRequest(`query parameter ${name} must be between ${min} and ${max}`);
    return n;
  }
  json(name: string): unknown {
    const v = this.params.get(name);
    if (v === null) return undefined;
    return parseJson(v, `query parameter ${name}`);
  }
}
