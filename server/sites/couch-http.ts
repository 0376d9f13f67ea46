// A small CouchDB HTTP client for site links (fetch, basic auth, a timeout on every call). Both ends of a
// link are spoken to the same way: our own CouchDB API and the remote's, each with admin credentials.

import { dispatcherForUrl } from '../tls/dispatcher.ts';

export interface BasicAuth { username: string; password: string }

/** A CouchDB refusal (`status` > 0) or a network failure (`status` 0, `code` from the socket). */
export class CouchHttpError extends Error {
  constructor(readonly status: number, readonly error: string, readonly reason: string, readonly code?: string) {
    super(status ? `${status} ${error}: ${reason}` : reason);
  }
  /** The other end could not be reached at all (or did not answer in time). */
  get unreachable(): boolean { return this.status === 0; }
  get authFailed(): boolean { return this.status === 401 || this.status === 403; }
}

export const basicHeader = (a: BasicAuth) => 'Basic ' + Buffer.from(`${a.username}:${a.password}`).toString('base64');

/** `url` without credentials and without a trailing slash. */
export function cleanUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.hash = '';
  u.search = '';
  return u.toString().replace(/\/+$/, '');
}

/** Shows a URL without its credentials, for logs and errors. */
export const showUrl = (url: string) => {
  try {
    return cleanUrl(url);
  } catch {
    return '(invalid URL)';
  }
};

export class CouchHttp {
  /** `url` is a CouchDB API root (e.g. http://host:8080/db), without credentials. */
  /** `signal` aborts every request of this client (a link's requests end when the link stops). */
  constructor(readonly url: string, readonly auth: BasicAuth, private readonly timeoutMs = 15_000, private readonly signal?: AbortSignal) {}

  /** The same endpoint, its requests also ended by `signal`. */
  withSignal(signal: AbortSignal): CouchHttp {
    return new CouchHttp(this.url, this.auth, this.timeoutMs, signal);
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json', Authorization: basicHeader(this.auth) };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signals = [timeout, opts.signal, this.signal].filter((x): x is AbortSignal => !!x);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : timeout;
    let res: Response;
    try {
      const dispatcher = dispatcherForUrl(this.url); // a pinned remote certificate (sites/trust.ts)
      res = await fetch(this.url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal, ...(dispatcher ? { dispatcher } : {}) } as RequestInit);
    } catch (err) {
      const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') throw new CouchHttpError(0, 'timeout', `${showUrl(this.url)} did not answer within ${Math.round((opts.timeoutMs ?? this.timeoutMs) / 1000)} s`, 'ETIMEDOUT');
      if (e.name === 'AbortError') throw new CouchHttpError(0, 'aborted', 'aborted', 'ABORTED');
      const code = e.cause?.code ?? 'ENETWORK';
      throw new CouchHttpError(0, 'unreachable', `cannot reach ${showUrl(this.url)}: ${e.cause?.code ?? e.cause?.message ?? e.message}`, code);
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    if (!res.ok) {
      const b = (parsed ?? {}) as { error?: string; reason?: string };
      throw new CouchHttpError(res.status, String(b.error ?? `http_${res.status}`), String(b.reason ?? (text.slice(0, 200) || res.statusText)));
    }
    if (parsed === undefined && text) throw new CouchHttpError(502, 'bad_response', `${showUrl(this.url)}${path} did not answer JSON (is it a CouchDB API?)`);
    return parsed as T;
  }

  get<T = unknown>(path: string, opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<T> { return this.request<T>('GET', path, undefined, opts); }
  put<T = unknown>(path: string, body: unknown): Promise<T> { return this.request<T>('PUT', path, body); }
  post<T = unknown>(path: string, body: unknown): Promise<T> { return this.request<T>('POST', path, body); }
  delete<T = unknown>(path: string): Promise<T> { return this.request<T>('DELETE', path); }

  /** PUT /db; false when it exists already. */
  async createDb(db: string): Promise<boolean> {
    try {
      await this.put(`/${encodeURIComponent(db)}`, undefined);
      return true;
    } catch (err) {
      if (err instanceof CouchHttpError && err.status === 412) return false;
      throw err;
    }
  }

  allDbs(): Promise<string[]> { return this.get<string[]>('/_all_dbs'); }

  /** update_seq of each existing database among `dbs` (batches of 100, CouchDB's default limit). */
  async updateSeqs(dbs: string[]): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    for (let i = 0; i < dbs.length; i += 100) {
      const rows = await this.post<{ key: string; info?: { update_seq: unknown } }[]>('/_dbs_info', { keys: dbs.slice(i, i + 100) });
      for (const r of rows) if (r.info) out.set(r.key, r.info.update_seq);
    }
    return out;
  }
}
