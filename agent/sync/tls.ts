// What the agent trusts about each server it talks to (docs/security.md):
// - a pinned certificate: the SHA-256 fingerprint `anybios node add` printed. The TLS handshake is
//   finished and the leaf's fingerprint compared *before* the connection is handed to HTTP, so not a
//   byte (no password) is sent to a server whose certificate is not the pinned one. A self-signed
//   certificate has no CA to check, so the pin is the whole proof; a CA-signed one is pinned too;
// - a CA certificate (`ca` PEM): ordinary verification against it instead of the system's CAs;
// - neither: the system's CAs (a server with a public certificate).
// Plain http:// to an address other than loopback is refused before connecting unless the config
// says `insecureHttp: true`: credentials would cross the network in clear. Nothing ever falls back
// from https to http.
// Trust is kept per origin (scheme, host, port), so every connection pool of the agent (replication,
// watchdog probes, template pulls, retries) gets it without being handed it.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';

export interface ServerTrust {
  /** SHA-256 of the server's certificate, hex, with or without colons. */
  fingerprint?: string;
  /** PEM of the CA (or the self-signed certificate) that must have signed the server's certificate. */
  ca?: string;
  /** Allow credentials over plain http:// to a non-loopback address. */
  insecureHttp?: boolean;
}

export class TransportError extends Error {
  constructor(readonly code: 'CERT_PIN_MISMATCH' | 'INSECURE_HTTP' | 'BAD_FINGERPRINT', message: string) {
    super(message);
  }
}

/** `ab:cd…`/`ABCD…` → `AB:CD:…` (64 hex digits), as node's `fingerprint256` prints it. */
export function normalizeFingerprint(text: string): string {
  const hex = String(text).replace(/^sha-?256[:=]/i, '').replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new TransportError('BAD_FINGERPRINT', `"${String(text).slice(0, 120)}" is not a SHA-256 fingerprint (64 hex digits, colons allowed)`);
  return hex.match(/../g)!.join(':');
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1' || (h.startsWith('::ffff:') && isLoopback(h.slice(7)));
}

const originOf = (url: string) => new URL(url).origin;
const trusts = new Map<string, ServerTrust & { log?: (msg: string) => void }>();

/** Says what to trust for the server at `url` (its origin). */
export function trustServer(url: string, trust: ServerTrust, log?: (msg: string) => void): void {
  const t = { ...trust, log };
  if (t.fingerprint) t.fingerprint = normalizeFingerprint(t.fingerprint);
  trusts.set(originOf(url), t);
}

export function trustFor(url: string): (ServerTrust & { log?: (msg: string) => void }) | undefined {
  try {
    return trusts.get(originOf(url));
  } catch {
    return undefined;
  }
}

/** Throws when `url` is plain HTTP to a non-loopback host and the config did not allow it. */
export function checkTransport(url: string): void {
  const u = new URL(url);
  const t = trustFor(url);
  if (u.protocol !== 'http:' || isLoopback(u.hostname) || t?.insecureHttp) return;
  const err = new TransportError('INSECURE_HTTP', `refusing to send credentials over plain HTTP to ${u.host}: use https:// (the server serves TLS off loopback), or set "insecureHttp": true in the agent config`);
  logOnce(u.host, err.message, t?.log);
  throw err;
}

const lastLogged = new Map<string, number>();

/** Says a transport refusal in the agent's log once a minute per server and cause, not per request. */
function logOnce(key: string, message: string, log?: (m: string) => void): void {
  if (!log || Date.now() - (lastLogged.get(key + message) ?? 0) < 60_000) return;
  lastLogged.set(key + message, Date.now());
  log(message);
}

/** The error a pin mismatch fails with, logged once a minute per server and certificate. */
function pinMismatch(host: string, want: string, got: string | undefined, log?: (m: string) => void): TransportError {
  const err = new TransportError('CERT_PIN_MISMATCH', `TLS: the certificate of ${host} is not the pinned one (SHA-256 expected ${want}, got ${got ?? 'none'}): the server's certificate changed or this is not our server; nothing was sent. If the server's certificate was replaced on purpose, put its new fingerprint in the agent config ("fingerprint")`);
  logOnce(host, err.message, log);
  return err;
}

type Oncreate = (err: Error | null, socket?: Duplex) => void;

/** Options for an https.Agent (or a one-off request) to the server at `url`. */
export function httpsAgentOptions(url: string, base: https.AgentOptions = {}): https.AgentOptions {
  const t = trustFor(url);
  if (!t) return base;
  // With a pin, sessions are not resumed: every connection shows its certificate and is checked.
  return { ...base, ...(t.ca ? { ca: t.ca } : {}), ...(t.fingerprint ? { maxCachedSessions: 0 } : {}) };
}

/** An https.Agent that hands HTTP a connection only after the pinned fingerprint matched. */
export function trustedHttpsAgent(url: string, base: https.AgentOptions = {}): https.Agent {
  const agent = new https.Agent(httpsAgentOptions(url, base));
  const t = trustFor(url);
  if (!t?.fingerprint) return agent;
  const want = t.fingerprint;
  (agent as unknown as { createConnection: (o: tls.ConnectionOptions, cb: Oncreate) => undefined }).createConnection = (options, cb) => {
    // The chain of a self-signed certificate cannot verify; the pin decides instead (below).
    const socket = tls.connect({ ...options, rejectUnauthorized: false });
    let settled = false;
    const fail = (err: Error) => {
      socket.on('error', () => {}); // late errors of a socket we gave up on are nobody's
      socket.destroy();
      if (!settled) cb(err);
      settled = true;
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      socket.removeListener('error', fail);
      const got = socket.getPeerCertificate()?.fingerprint256;
      if (got !== want) return fail(pinMismatch(`${options.host}:${options.port}`, want, got, t.log));
      settled = true;
      cb(null, socket);
    });
    return undefined;
  };
  return agent;
}

/** A connection pool for `url`: http, or https with the server's trust. */
export function agentFor(url: string, o: http.AgentOptions = {}): http.Agent {
  return url.startsWith('https:') ? trustedHttpsAgent(url, o) : new http.Agent(o);
}
