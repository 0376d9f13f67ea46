// HTTP to the server's databases for PouchDB (the agent's replication, template pulls, benches), made
// to survive the ways a connection ends under a client:
// - idle sockets: the pool closes a socket after CLIENT_IDLE_MS, well below the server's keep-alive
//   timeout (65 s by default, server/limits), so the server never closes one just as we reuse it;
// - a reused socket reset anyway (a proxy in between, a server restart): idempotent requests are
//   retried on a connection of their own (ECONNRESET / "socket hang up" / EPIPE), at most twice;
// - a pool we retire (replication cancelled, stop, watchdog restart): its sockets are destroyed, and
//   requests still in flight on it never settle instead of failing. PouchDB 9's replicator calls
//   `src.info().then(…)` with no catch after every batch, so a failure there is an unhandled
//   rejection that kills a process; nobody waits for a cancelled replication's requests.
import http from 'node:http';
import PouchDB from 'pouchdb';
import { agentFor, checkTransport } from './tls.ts';

/** Idle keep-alive sockets are closed after this; below any server keep-alive timeout we set or meet. */
export const CLIENT_IDLE_MS = 4_000;
const RETRIES = 2;

const retired = new WeakSet<http.Agent>();

/**
 * TCP keep-alive probes start after this much silence on a socket. Node's default (1 s) sends one every
 * second on a quiet connection — the radio of a phone kept awake for nothing; the live pull's longpoll
 * hears the server's heartbeat every 10 s anyway, idle pooled sockets close after CLIENT_IDLE_MS, and the
 * watchdog finds dead connections (node-sync.ts).
 */
const TCP_KEEPALIVE_MS = 30_000;

export function newAgent(url: string): http.Agent {
  return agentFor(url, { keepAlive: true, keepAliveMsecs: TCP_KEEPALIVE_MS, timeout: CLIENT_IDLE_MS });
}

/** A connection of its own, closed with its response (the watchdog's probes), with the server's TLS trust. */
export function oneShotAgent(url: string): http.Agent {
  checkTransport(url);
  return agentFor(url, { keepAlive: false, maxSockets: 1 });
}

/** Destroys a pool's sockets; what was in flight on it is dropped silently (see above). */
export function retireAgent(agent: http.Agent): void {
  retired.add(agent);
  agent.destroy();
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE']);

export function isConnectionReset(err: unknown): boolean {
  const e = err as { code?: string; errno?: string; message?: string; cause?: { code?: string } };
  return RESET_CODES.has(String(e?.code)) || RESET_CODES.has(String(e?.errno)) || RESET_CODES.has(String(e?.cause?.code)) || /socket hang up/.test(String(e?.message));
}

/** Requests that may be sent twice without effect: reads, PUT/DELETE, and replication's bulk calls. */
export function isIdempotent(url: string, options: { method?: string; body?: unknown }): boolean {
  const method = (options.method ?? 'GET').toUpperCase();
  if (method !== 'POST') return ['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS'].includes(method);
  const path = url.split('?')[0];
  if (/\/(_revs_diff|_bulk_get|_all_docs|_changes|_ensure_full_commit)$/.test(path)) return true;
  // Replication writes (new_edits=false) carry their revisions: a second copy changes nothing.
  return /\/_bulk_docs$/.test(path) && typeof options.body === 'string' && /"new_edits"\s*:\s*false/.test(options.body);
}

type Fetch = (url: string, options?: Record<string, unknown>) => Promise<unknown>;

/** The credentials of a remote, read at every request: a rotated password takes effect at once. */
export interface LiveAuth { username: string; password: string }

const basicOf = (a: LiveAuth) => 'Basic ' + Buffer.from(`${a.username}:${a.password}`).toString('base64');

function withAuth(options: Record<string, unknown>, auth: LiveAuth): Record<string, unknown> {
  const h = options.headers as { set?: (k: string, v: string) => void } | Record<string, string> | undefined;
  if (h && typeof (h as { set?: unknown }).set === 'function') {
    (h as { set: (k: string, v: string) => void }).set('Authorization', basicOf(auth));
    return options;
  }
  return { ...options, headers: { ...(h as Record<string, string> | undefined), Authorization: basicOf(auth) } };
}

/**
 * PouchDB's fetch on `agent`, with the retry and retirement rules above. With `auth`, the
 * Authorization header is set from it on every request; a request refused (401) because the password
 * was rotated while it was in flight is sent again once with the new one.
 */
export function agentFetch(agent: http.Agent, auth?: LiveAuth): Fetch {
  const pouchFetch = (PouchDB as unknown as { fetch: Fetch }).fetch;
  const send = async (url: string, options: Record<string, unknown>, a: http.Agent): Promise<unknown> => {
    if (!auth) return pouchFetch(url, { ...options, agent: a });
    const sent = auth.password;
    const res = await pouchFetch(url, { ...withAuth(options, auth), agent: a });
    if ((res as { status?: number }).status !== 401 || auth.password === sent) return res;
    return pouchFetch(url, { ...withAuth(options, auth), agent: a });
  };
  return async (url, options = {}) => {
    checkTransport(url); // no credentials over plain HTTP off loopback (agent/sync/tls.ts)
    for (let attempt = 0; ; attempt++) {
      // A retry goes over a connection of its own (not kept alive: it closes with its response), since
      // the pool may hold more sockets the server closed.
      const fresh = attempt > 0 ? agentFor(url) : null;
      try {
        return await send(url, options, fresh ?? agent);
      } catch (err) {
        if (retired.has(agent)) return new Promise(() => {});
        const signal = options.signal as AbortSignal | undefined;
        if (attempt >= RETRIES || signal?.aborted || !isConnectionReset(err) || !isIdempotent(url, options as { method?: string; body?: unknown })) throw err;
      }
    }
  };
}

/**
 * A remote database whose HTTP connections come from `agent` alone. A replication that stalled on a
 * connection that hangs silently is restarted with a fresh agent: reusing pooled keep-alive sockets
 * would put it straight back on the same dead connections.
 */
export function remoteDb(url: string, auth: LiveAuth, agent?: http.Agent): PouchDB.Database {
  return new PouchDB(url, {
    skip_setup: true,
    fetch: agentFetch(agent ?? newAgent(url), auth),
  } as PouchDB.Configuration.RemoteDatabaseConfiguration);
}
