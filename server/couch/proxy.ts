// With COUCH_URL set, /db/ forwards to that Apache CouchDB, so agents and browsers use one URL either
// way. The caller's own credentials travel through; the server's admin credentials in COUCH_URL do not.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http.ts';
import { agentFor } from '../../agent/sync/tls.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

export function createCouchProxy(couchUrl: string): (req: IncomingMessage, res: ServerResponse) => void {
  const target = new URL(couchUrl);
  const base = target.pathname.replace(/\/$/, '');
  // https: with the trust registered for COUCH_URL (a private CA, --couch-ca; agent/sync/tls.ts).
  const agent = agentFor(couchUrl, { keepAlive: true });
  return (req, res) => {
    res.on('error', () => {});
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers['x-forwarded-for'] = forwardedFor(req);
    const upstream = (target.protocol === 'https:' ? https : http).request(
      { protocol: target.protocol, hostname: target.hostname, port: target.port, method: req.method, path: base + (req.url ?? '/'), headers, agent },
      (up) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(up.statusCode ?? 502, out);
        up.pipe(res);
        up.on('error', () => res.destroy());
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) sendJson(res, 502, { error: 'bad_gateway', reason: `CouchDB at ${target.host} is unreachable: ${err.message}` });
      else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  };
}

/**
 * Apache CouchDB's lockout ([chttpd_auth_lockout]) counts wrong passwords per user name and client
 * address, and from a loopback or private peer (as this server usually is) it takes that address from
 * the last X-Forwarded-For entry. Appending the caller's own address counts every caller as itself: one
 * caller's wrong passwords no longer lock a name out for everyone behind us (this server's own admin
 * client included), and an X-Forwarded-For a caller sends cannot pose as another address.
 */
export function forwardedFor(req: IncomingMessage): string {
  const prior = [req.headers['x-forwarded-for'] ?? []].flat().join(', ');
  const own = (req.socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
  return prior ? `${prior}, ${own}` : own;
}
