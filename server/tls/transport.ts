// Which transport a server speaks, and the rules that follow from it (docs/security.md):
// - --tls-cert/--tls-key: HTTPS with the operator's certificate;
// - bound to loopback only: plain HTTP (nothing leaves the machine);
// - bound to anything else: HTTPS with a self-signed certificate made at first start (server/tls/cert.ts);
// - --insecure-http: plain HTTP on any address, said at every start.
// Under TLS cookies are `Secure` and answers carry HSTS. In plain HTTP a request that carries
// credentials to a non-loopback address of ours is refused (403), unless --insecure-http.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { loadTls, selfSignedTls, TlsError, type TlsMaterial } from './cert.ts';

export interface TransportOptions {
  /** PEM files of the server's certificate (chain) and its private key. */
  tlsCert?: string;
  tlsKey?: string;
  /** Serve plain HTTP on a non-loopback address, credentials and all. */
  insecureHttp?: boolean;
}

export interface Transport {
  tls: TlsMaterial | null;
  insecureHttp: boolean;
  /** What the server must say at start (the self-signed fingerprint, the plain-HTTP warning). */
  notices: string[];
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return isLoopbackHost(h.slice(7));
  return h === '::1';
}

export function chooseTransport(dataDir: string, host: string, o: TransportOptions = {}): Transport {
  if (!!o.tlsCert !== !!o.tlsKey) throw new TlsError('TLS_FILE', '--tls-cert and --tls-key go together: give both or neither');
  if (o.tlsCert && o.insecureHttp) throw new TlsError('TLS_FILE', '--insecure-http cannot be combined with --tls-cert/--tls-key');
  if (o.tlsCert && o.tlsKey) return { tls: loadTls(o.tlsCert, o.tlsKey), insecureHttp: false, notices: [] };
  if (o.insecureHttp) {
    return {
      tls: null,
      insecureHttp: true,
      notices: isLoopbackHost(host) ? [] : [`WARNING: --insecure-http: serving plain HTTP on ${host}; passwords and session cookies cross the network in clear. Use TLS (drop --insecure-http, or give --tls-cert/--tls-key).`],
    };
  }
  if (isLoopbackHost(host)) return { tls: null, insecureHttp: false, notices: [] };
  const tls = selfSignedTls(dataDir, host);
  return {
    tls,
    insecureHttp: false,
    notices: [`TLS: self-signed certificate ${tls.certFile}${tls.generated ? ' (made now)' : ''}, SHA-256 fingerprint ${tls.fingerprint}`],
  };
}

const encrypted = (req: IncomingMessage) => !!(req.socket as TLSSocket).encrypted;

/** CouchDB's `AuthSession` cookie, marked `Secure` when it is set over TLS. */
export function sessionCookieFor(req: IncomingMessage, cookie: string): string {
  return encrypted(req) && !/;\s*Secure/i.test(cookie) ? `${cookie}; Secure` : cookie;
}

/** A year, as the usual HSTS preload lists ask; a self-signed certificate's clients pin it anyway. */
export const HSTS = 'max-age=31536000';

const hasCredentials = (req: IncomingMessage) => !!req.headers.authorization || /(?:^|;\s*)AuthSession=/.test(req.headers.cookie ?? '');

/**
 * The per-request transport rule, before the gate and express. Returns false when it answered.
 * `plainAllowed`: --insecure-http was given.
 */
export function transportGuard(req: IncomingMessage, res: ServerResponse, plainAllowed: boolean): boolean {
  if (encrypted(req)) {
    res.setHeader('Strict-Transport-Security', HSTS);
    return true;
  }
  if (plainAllowed || !hasCredentials(req) || isLoopbackHost(req.socket.localAddress ?? '')) return true;
  const body = JSON.stringify({ error: 'insecure_transport', reason: 'credentials over plain HTTP to a non-loopback address are refused: use https, or start the server with --insecure-http' }) + '\n';
  res.writeHead(403, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
  res.end(body);
  req.resume();
  return false;
}
