// One small HTTP request to a server, on node:http/https with the server's TLS trust (agent/sync/tls.ts).
// The agent's own requests outside replication (the template follower's longpoll, the bundle key
// lookup) use this rather than the global fetch: fetch is undici, which compiles its HTTP parser to
// WebAssembly on first use and costs an idle agent about 10 MiB of RSS (docs/phone.md), and a plain
// fetch would not see a pinned certificate either.
import http from 'node:http';
import https from 'node:https';
import { agentFor, checkTransport } from './tls.ts';

export interface SmallResponse { status: number; text: string }

export interface SmallRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** Whole-request limit (connect to last byte); none by default. */
  timeoutMs?: number;
  /** Answers longer than this fail (default 16 MiB): a server cannot make us buffer without end. */
  maxBytes?: number;
}

/** Sends one request on a connection of its own and reads the whole answer as text. */
export function requestText(url: string, o: SmallRequest = {}): Promise<SmallResponse> {
  checkTransport(url); // no credentials over plain HTTP off loopback
  const max = o.maxBytes ?? 16 * 1024 * 1024;
  return new Promise<SmallResponse>((resolve, reject) => {
    if (o.signal?.aborted) return reject(o.signal.reason ?? new Error('aborted'));
    const mod = url.startsWith('https:') ? https : http;
    const headers = { ...o.headers, ...(o.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(o.body)) } : {}) };
    const req = mod.request(url, { method: o.method ?? 'GET', headers, agent: agentFor(url, { keepAlive: false, maxSockets: 1 }) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size > max) req.destroy(new Error(`the answer of ${new URL(url).host} is over ${max} bytes`));
        else chunks.push(d);
      });
      res.on('end', () => finish(null, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => finish(err));
    });
    const onAbort = () => req.destroy(o.signal?.reason instanceof Error ? o.signal.reason : new Error('aborted'));
    const timer = o.timeoutMs ? setTimeout(() => req.destroy(new Error(`no answer from ${new URL(url).host} in ${o.timeoutMs} ms`)), o.timeoutMs) : undefined;
    let settled = false;
    const finish = (err: Error | null, value?: SmallResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(value!);
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish(err));
    req.end(o.body);
  });
}
