// A fetch `dispatcher` that verifies a server as its trust says (a pinned SHA-256 fingerprint and/or a
// CA), for everything that speaks HTTP through fetch: the CLI (nano, the REST client) and site links.
// Node's fetch is its bundled undici, which takes a `dispatcher` but whose classes Node 20 does not
// export; the global dispatcher's own class is that Agent, so it is taken from there (no second copy
// of undici as a dependency).
import tls from 'node:tls';
import { isIP } from 'node:net';
import { TransportError, trustFor } from '../../agent/sync/tls.ts';

export interface Trust {
  /** PEM the server's certificate must chain to. */
  ca?: string;
  /** SHA-256 fingerprint the server's certificate must have (AB:CD:…). */
  fingerprint?: string;
  insecureHttp?: boolean;
}

type Callback = (err: Error | null, socket: tls.TLSSocket | null) => void;
interface ConnectOpts { hostname: string; host?: string; port: string | number; servername?: string }

let AgentClass: (new (o: object) => object) | undefined;

function undiciAgent(): new (o: object) => object {
  if (AgentClass) return AgentClass;
  const key = Symbol.for('undici.globalDispatcher.1');
  // The global dispatcher is made (synchronously) by the first fetch; a data: URL touches no network.
  if (!(globalThis as Record<symbol, unknown>)[key]) void fetch('data:,').catch(() => {});
  const g = (globalThis as Record<symbol, unknown>)[key] as object | undefined;
  if (!g) throw new Error('this Node.js has no fetch dispatcher to carry a CA or a pinned fingerprint');
  AgentClass = g.constructor as new (o: object) => object;
  return AgentClass;
}

/**
 * A fetch `dispatcher` (also nano's `agentOptions`) that verifies the server as `trust` says; undefined
 * when the defaults (system CAs) apply. With a pin, the handshake completes and the fingerprint is
 * compared before the connection carries any request.
 */
export function dispatcherFor(trust: Trust): object | undefined {
  if (!trust.ca && !trust.fingerprint) return undefined;
  const Agent = undiciAgent();
  if (!trust.fingerprint) return new Agent({ connect: { ca: trust.ca } });
  const want = trust.fingerprint;
  const connect = (o: ConnectOpts, cb: Callback) => {
    const socket = tls.connect({ host: o.hostname, port: Number(o.port), servername: o.servername ?? (isIP(o.hostname) ? undefined : o.hostname), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      if (err) {
        socket.on('error', () => {}); // late errors of a socket we gave up on are nobody's
        socket.destroy();
        cb(err, null);
      } else cb(null, socket);
    };
    socket.once('error', finish);
    socket.once('secureConnect', () => {
      socket.removeListener('error', finish);
      const got = socket.getPeerCertificate()?.fingerprint256;
      if (got !== want) return finish(new TransportError('CERT_PIN_MISMATCH', `the certificate of ${o.hostname}:${o.port} is not the pinned one (SHA-256 expected ${want}, got ${got ?? 'none'}); nothing was sent`));
      finish(null);
    });
  };
  return new Agent({ connect });
}

const byOrigin = new Map<string, { key: string; dispatcher: object | undefined }>();

/** The dispatcher for `url` from the trust registered for its origin (agent/sync/tls.ts trustServer). */
export function dispatcherForUrl(url: string): object | undefined {
  const t = trustFor(url);
  if (!t || !url.startsWith('https:')) return undefined;
  const origin = new URL(url).origin;
  const key = `${t.fingerprint ?? ''}|${t.ca ?? ''}`;
  const hit = byOrigin.get(origin);
  if (hit?.key === key) return hit.dispatcher;
  const dispatcher = dispatcherFor(t);
  byOrigin.set(origin, { key, dispatcher });
  return dispatcher;
}
