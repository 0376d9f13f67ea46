// The request gate: the first thing every request and connection meets, before express. It keeps
// what an unauthenticated caller can cost small and bounded:
// - connections that have not yet made an authenticated request are capped; beyond the cap the oldest
//   such connection is closed (a slow client that never sends its headers cannot hold a slot for long,
//   and an agent's connection leaves the pool with its first authenticated request);
// - requests without credentials in progress at once are capped (503 + Retry-After);
// - a request's body allowance is the anonymous one (a login) until a route has checked the caller
//   (`noteCaller`), so a large body is refused before it is read, and every byte held is counted
//   against the memory budget (budget.ts) until the response is done, and against the caller's byte
//   rate (rate.ts), which pauses reading;
// - a response sent while the request body is still unread closes the connection, so the rest of
//   that body is never read; timeouts answer 408 in `{error, reason}` form.
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Limits } from './config.ts';
import { BodyBudget, RETRY_AFTER_SECONDS } from './budget.ts';
import { BodyRate } from './rate.ts';

interface RequestState {
  gate: RequestGate;
  res: ServerResponse;
  /** The authenticated user once a route said so; null while the caller is unknown or anonymous. */
  user: string | null;
  /** Body bytes held for this request (released when the response is done), and for whom. */
  held: number;
  heldBy: string;
  /** Server admins are not rate limited (their credential is the server's own). */
  rated: boolean;
}

const states = new WeakMap<IncomingMessage, RequestState>();

/** What readBody must respect for a request: its size allowance, the idle timeout and the budget. */
export interface BodyPolicy {
  limit: number;
  idleMs: number;
  /** How long to wait before refusing a body too large by its declared length (0: at once). */
  refusalDelayMs: number;
  /** Checks a declared Content-Length against the budget before anything is read. */
  admit(length: number): void;
  /**
   * Counts `n` more bytes held for this request; throws 503 when the budget is spent. Returns how long
   * (ms) to pause reading for the caller's byte rate.
   */
  take(n: number): number;
}

export function bodyPolicy(req: IncomingMessage): BodyPolicy | undefined {
  const st = states.get(req);
  if (!st) return undefined;
  const { limits, budget, rate } = st.gate;
  const user = st.user ?? '';
  return {
    limit: st.user === null ? limits.anonymousMaxBody : Number.MAX_SAFE_INTEGER,
    idleMs: limits.bodyIdleTimeoutMs,
    refusalDelayMs: st.rated ? limits.refusalDelayMs : 0,
    admit: (length) => budget.admit(user, length),
    take: (n) => {
      budget.take(user, n);
      st.held += n;
      st.heldBy = user;
      return st.rated ? rate.take(user, n) : 0;
    },
  };
}

/**
 * Called by a route once it has authenticated the caller (name null: anonymous). An authenticated
 * request lifts the body allowance to the route's own limit and takes its connection out of the
 * anonymous pool for good.
 */
export function noteCaller(req: IncomingMessage, name: string | null, roles: readonly string[] = []): void {
  const st = states.get(req);
  if (!st || name === null || st.user !== null) return;
  st.user = name;
  st.rated = !roles.includes('_admin');
  st.gate.prove(req.socket);
}

const hasBody = (req: IncomingMessage) => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
const hasCredentials = (req: IncomingMessage) => !!req.headers.authorization || /(?:^|;\s*)AuthSession=/.test(req.headers.cookie ?? '');

export function sendError(res: ServerResponse, status: number, error: string, reason: string): void {
  const text = JSON.stringify({ error, reason }) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'must-revalidate' });
  res.end(text);
}

export class RequestGate {
  readonly budget: BodyBudget;
  readonly rate: BodyRate;
  /** Connections with no authenticated request yet, oldest first (a Set keeps insertion order). */
  private readonly unproven = new Set<Socket>();
  private readonly proven = new WeakSet<Socket>();
  private anonymousInFlight = 0;
  /** Counters for /metrics and the bench. */
  readonly stats = { evictedConnections: 0, refusedAnonymous: 0, refusedAnonymousBodies: 0, timeouts: 0 };

  constructor(readonly limits: Limits) {
    this.budget = new BodyBudget(limits.bodyBudget, limits.bodyBudgetPerUser);
    this.rate = new BodyRate(limits.bodyRatePerUser, limits.bodyBurstPerUser);
  }

  /** Options for http.createServer: node checks header/request timeouts on this interval (default 30 s). */
  serverOptions(): http.ServerOptions {
    const shortest = Math.min(this.limits.headersTimeoutMs, this.limits.requestTimeoutMs);
    return { connectionsCheckingInterval: Math.max(100, Math.min(5000, Math.floor(shortest / 4))) };
  }

  /** Timeouts, connection caps and the timeout answer on a node http server. */
  attach(server: http.Server): void {
    const l = this.limits;
    server.headersTimeout = l.headersTimeoutMs;
    server.requestTimeout = Math.max(l.requestTimeoutMs, l.headersTimeoutMs);
    server.keepAliveTimeout = l.keepAliveTimeoutMs;
    server.maxConnections = l.maxConnections;
    server.on('connection', (socket: Socket) => this.onConnection(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      const inResponse = (socket as unknown as { _httpMessage?: ServerResponse })._httpMessage?.headersSent;
      if (!socket.writable || inResponse) {
        socket.destroy();
        return;
      }
      let status = 400;
      let body = { error: 'bad_request', reason: 'malformed HTTP request' };
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        this.stats.timeouts++;
        status = 408;
        body = { error: 'request_timeout', reason: `the request was not received in time (headers within ${l.headersTimeoutMs} ms, the whole request within ${server.requestTimeout} ms)` };
      } else if (err.code === 'HPE_HEADER_OVERFLOW') {
        status = 431;
        body = { error: 'header_fields_too_large', reason: 'the request headers are too large' };
      }
      const text = JSON.stringify(body) + '\n';
      socket.end(`HTTP/1.1 ${status} ${status === 408 ? 'Request Timeout' : status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
      socket.destroySoon?.();
    });
  }

  private onConnection(socket: Socket): void {
    this.unproven.add(socket);
    socket.once('close', () => this.unproven.delete(socket));
    if (this.unproven.size > this.limits.maxAnonymousConnections) {
      // The oldest one goes: a legitimate client authenticates within moments of connecting.
      const oldest = this.unproven.values().next().value as Socket;
      this.unproven.delete(oldest);
      this.stats.evictedConnections++;
      oldest.destroy();
    }
  }

  /**
   * For requests forwarded to COUCH_URL (we do not check credentials ourselves): a connection whose
   * credentialed request the upstream CouchDB accepted leaves the anonymous pool.
   */
  proveWhenAccepted(req: IncomingMessage, res: ServerResponse): void {
    if (!hasCredentials(req)) return;
    res.once('finish', () => {
      if (res.statusCode < 400 || (res.statusCode !== 401 && res.statusCode !== 403 && res.statusCode < 500)) this.prove(req.socket);
    });
  }

  prove(socket: Socket | null): void {
    if (!socket || this.proven.has(socket)) return;
    this.proven.add(socket);
    this.unproven.delete(socket);
  }

  /** The front handler: returns false when it answered the request itself (refused). */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const st: RequestState = { gate: this, res, user: null, held: 0, heldBy: '', rated: true };
    states.set(req, st);
    // A response that starts while the body is still unread (refused before reading: 401, 413, 503…)
    // closes the connection, so the rest of that body is never read.
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      if (!req.complete && hasBody(req)) this.shouldKeepAlive = false;
      const status = typeof args[0] === 'number' ? args[0] : this.statusCode;
      if (status === 503 && !this.hasHeader('Retry-After')) {
        const h = args.find((a, i) => i > 0 && typeof a === 'object' && a !== null && !Array.isArray(a)) as Record<string, unknown> | undefined;
        if (!h || !Object.keys(h).some((k) => k.toLowerCase() === 'retry-after')) this.setHeader('Retry-After', String(RETRY_AFTER_SECONDS));
      }
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as typeof res.writeHead;
    res.once('close', () => {
      this.budget.release(st.heldBy, st.held);
      st.held = 0;
    });
    if (!hasCredentials(req)) {
      const declared = Number(req.headers['content-length'] ?? 0);
      if (req.headers['transfer-encoding'] !== undefined || declared > this.limits.anonymousMaxBody) {
        // Never a login: refused unread, after a pause that slows a client reconnecting in a loop. Not
        // an anonymous request slot (the connection cap bounds these).
        this.stats.refusedAnonymousBodies++;
        const t = setTimeout(() => sendError(res, 413, 'too_large', `a request without credentials may carry at most ${this.limits.anonymousMaxBody} bytes (a login)`), this.limits.refusalDelayMs);
        res.once('close', () => clearTimeout(t));
        return false;
      }
      if (this.anonymousInFlight >= this.limits.maxAnonymousRequests) {
        this.stats.refusedAnonymous++;
        sendError(res, 503, 'service_unavailable', `too many requests without credentials in progress (${this.limits.maxAnonymousRequests}); retry later`);
        return false;
      }
      this.anonymousInFlight++;
      res.once('close', () => this.anonymousInFlight--);
    }
    return true;
  }

  /** Prometheus lines for /metrics. */
  metrics(): string {
    const m = this.snapshot();
    const g = (name: string, help: string, type: 'gauge' | 'counter', v: number) => `# HELP anybios_${name} ${help}\n# TYPE anybios_${name} ${type}\nanybios_${name} ${v}\n`;
    return g('unauthenticated_connections', 'Open connections with no authenticated request yet.', 'gauge', m.unprovenConnections)
      + g('anonymous_requests_in_flight', 'Requests without credentials in progress.', 'gauge', m.anonymousInFlight)
      + g('request_body_bytes', 'Request body bytes held in memory (the body budget in use).', 'gauge', m.bodyBytes)
      + g('connections_evicted_total', 'Unauthenticated connections closed for the connection cap.', 'counter', m.evictedConnections)
      + g('anonymous_requests_refused_total', 'Requests without credentials refused for the request cap.', 'counter', m.refusedAnonymous)
      + g('anonymous_bodies_refused_total', 'Bodies from requests without credentials refused as larger than a login.', 'counter', m.refusedAnonymousBodies)
      + g('body_budget_refusals_total', 'Requests refused because the body budget was spent.', 'counter', m.budgetRefusals)
      + g('request_timeouts_total', 'Requests cut for not arriving in time (headers or whole request).', 'counter', m.timeouts);
  }

  snapshot() {
    return { unprovenConnections: this.unproven.size, anonymousInFlight: this.anonymousInFlight, bodyBytes: this.budget.inUse, budgetRefusals: this.budget.refused, ...this.stats };
  }
}
