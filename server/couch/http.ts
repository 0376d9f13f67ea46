// Request and response helpers for the CouchDB API: bounded body reading, JSON parsing that refuses
// deep nesting before it can hurt, and typed query parameters that answer 400 on nonsense.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CouchError, badRequest, tooLarge, unsupportedMedia } from './errors.ts';

export const DEFAULT_MAX_BODY = 64 * 1024 * 1024;
export const MAX_JSON_DEPTH = 64;

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw tooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        req.resume();
        throw tooLarge(limit);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof CouchError) throw err;
    // The client went away mid-body ('aborted', ECONNRESET): its failure, not a 500 of ours.
    throw new CouchError(400, 'bad_request', `the request body was cut off: ${(err as Error)?.message ?? String(err)}`);
  }
  return Buffer.concat(chunks);
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
