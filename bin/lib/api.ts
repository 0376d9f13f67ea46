// A small client for the server's REST API (/api) over fetch, with the CLI's connection (basic auth).
// API refusals become CliError with the server's code and reason (each field error on its own line);
// a server that cannot be reached becomes SERVER_UNREACHABLE naming the URL.
import { CliError } from '../command.ts';
import { resolveConnection, type Connection } from './connection.ts';
import { tlsFailureHint } from './tls.ts';

/** The API's error body: `{error, reason, details?}`. */
export interface ApiErrorBody { error: string; reason: string; details?: { path: string; message: string }[] }

/** A refusal from the API: `status` is the HTTP status, `code` the API's `error` upper-cased. */
export class ApiFailure extends CliError {
  constructor(readonly status: number, code: string, message: string, readonly details: ApiErrorBody['details'] = []) {
    super(code, message);
  }
}

const TIMEOUT_MS = 30_000;

/** `/api` path from segments, each URL-encoded: `path('nodes', n, 'systems')`. */
export const path = (...segments: string[]) => '/' + segments.map(encodeURIComponent).join('/');

export class Api {
  /** `endpoint` overrides where requests go and how they authenticate (the agent's loopback API). */
  constructor(readonly conn: Connection, private readonly endpoint?: { base: string; authorization: string }) {}

  async request<T = unknown>(method: string, apiPath: string, body?: unknown): Promise<T> {
    const url = `${this.endpoint?.base ?? `${this.conn.url}/api`}${apiPath}`;
    const headers: Record<string, string> = {
      Accept: 'application/json',
      Authorization: this.endpoint?.authorization ?? 'Basic ' + Buffer.from(`${this.conn.user}:${this.conn.password}`).toString('base64'),
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      const dispatcher = this.endpoint ? undefined : this.conn.dispatcher; // TLS trust (bin/lib/tls.ts)
      res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(TIMEOUT_MS), ...(dispatcher ? { dispatcher } : {}) } as RequestInit);
    } catch (err) {
      throw unreachable(err, this.conn.url);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      if (res.ok) throw new CliError('BAD_RESPONSE', `${method} ${url} answered ${res.status} with something that is not JSON (is ${this.conn.url} an anybios server?)`);
    }
    if (res.ok) return parsed as T;
    throw this.failure(res.status, parsed, text);
  }

  get<T = unknown>(p: string): Promise<T> { return this.request<T>('GET', p); }
  put<T = unknown>(p: string, body: unknown): Promise<T> { return this.request<T>('PUT', p, body); }
  post<T = unknown>(p: string, body?: unknown): Promise<T> { return this.request<T>('POST', p, body ?? {}); }
  delete<T = unknown>(p: string): Promise<T> { return this.request<T>('DELETE', p); }

  /** GET that answers null for 404 (and throws every other failure). */
  async find<T = unknown>(p: string): Promise<T | null> {
    try {
      return await this.get<T>(p);
    } catch (err) {
      if (err instanceof ApiFailure && err.status === 404) return null;
      throw err;
    }
  }

  private failure(status: number, parsed: unknown, text: string): ApiFailure {
    const b = parsed as Partial<ApiErrorBody> | undefined;
    const code = typeof b?.error === 'string' ? b.error.toUpperCase() : `HTTP_${status}`;
    let reason = typeof b?.reason === 'string' ? b.reason : text.trim().slice(0, 200) || `HTTP ${status}`;
    if (status === 401) reason = `${this.conn.url} refused the credentials of ${this.conn.user}: ${reason}`;
    const details = Array.isArray(b?.details) ? b.details : [];
    const lines = [reason, ...details.map((d) => `  ${d.path}: ${d.message}`)];
    return new ApiFailure(status, code, lines.join('\n'), details);
  }
}

function unreachable(err: unknown, url: string): CliError {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return new CliError('SERVER_UNREACHABLE', `${url} did not answer within ${TIMEOUT_MS / 1000} s`, 1, { cause: err });
  const hint = tlsFailureHint(err, url);
  if (hint) return new CliError('TLS', hint, 1, { cause: err });
  const why = e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
  return new CliError('SERVER_UNREACHABLE', `cannot reach ${url}: ${why} (is \`anybios server\` running? set --url or ANYBIOS_URL)`, 1, { cause: err });
}

/** The API client for a command's connection flags (see CONNECTION_USAGE). */
export function apiOf(flags: { url?: string; user?: string; password?: string; data?: string }): Api {
  return new Api(resolveConnection(flags));
}
