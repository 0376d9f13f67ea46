// What the CLI trusts when it speaks https to a server (docs/security.md): `--ca FILE` (env
// ANYBIOS_CA), `--fingerprint FP` (env ANYBIOS_FINGERPRINT), the config file's `ca`/`fingerprint`, or
// — on the server's own machine — the data dir's self-signed certificate (<data>/tls/cert.pem);
// otherwise the system's CAs. Credentials over plain http:// to a non-loopback address are refused
// unless --insecure-http (env ANYBIOS_INSECURE_HTTP=1).
//
// The CLI's HTTP goes through fetch (nano and the REST client), i.e. Node's bundled undici, which
// takes a `dispatcher` but whose classes Node 20 does not export; the global dispatcher's own class is
// that Agent, so it is taken from there (no second copy of undici as a dependency).
import tls from 'node:tls';
import { isIP } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../command.ts';
import { isLoopback, normalizeFingerprint, TransportError } from '../../agent/sync/tls.ts';
import { fingerprintOf } from '../../server/tls/cert.ts';

export interface CliTrust {
  /** PEM the server's certificate must chain to. */
  ca?: string;
  /** SHA-256 fingerprint the server's certificate must have (AB:CD:…). */
  fingerprint?: string;
  insecureHttp?: boolean;
}

export const TLS_USAGE = `  --ca FILE          CA (or the server's self-signed certificate) to verify https with (env ANYBIOS_CA)
  --fingerprint FP   the server certificate's SHA-256 fingerprint, pinned (env ANYBIOS_FINGERPRINT)
  --insecure-http    allow credentials over plain http:// to a non-loopback address (env ANYBIOS_INSECURE_HTTP=1)`;

export const tlsOptions = {
  ca: { type: 'string' },
  fingerprint: { type: 'string' },
  'insecure-http': { type: 'boolean' },
} as const;

export function resolveTrust(
  url: string,
  flags: { ca?: string; fingerprint?: string; 'insecure-http'?: boolean },
  cfg: { ca?: string; fingerprint?: string },
  dataDir: string,
  env = process.env,
): CliTrust {
  const u = new URL(url);
  const insecureHttp = !!flags['insecure-http'] || env.ANYBIOS_INSECURE_HTTP === '1';
  if (u.protocol === 'http:') {
    if (!insecureHttp && !isLoopback(u.hostname)) throw new CliError('INSECURE_HTTP', `refusing to send credentials over plain HTTP to ${u.host}: use https://, or pass --insecure-http`);
    return { insecureHttp };
  }
  let fingerprint: string | undefined;
  try {
    const fp = flags.fingerprint ?? env.ANYBIOS_FINGERPRINT ?? cfg.fingerprint;
    if (fp) fingerprint = normalizeFingerprint(fp);
  } catch (err) {
    throw new CliError('BAD_FINGERPRINT', (err as TransportError).message);
  }
  const caFile = flags.ca ?? env.ANYBIOS_CA;
  let ca: string | undefined = cfg.ca;
  if (caFile) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new CliError('CA_UNREADABLE', `cannot read --ca ${caFile}: ${(err as Error).message}`);
    }
  }
  const own = join(dataDir, 'tls', 'cert.pem');
  if (!ca && !fingerprint && existsSync(own)) {
    // On the server's machine: its own certificate, pinned (it may not name the address we use).
    try {
      ca = readFileSync(own, 'utf8');
      fingerprint = fingerprintOf(ca);
    } catch {
      ca = undefined;
    }
  }
  return { ca, fingerprint, insecureHttp };
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
  if (!g) throw new CliError('TLS_UNSUPPORTED', 'this Node.js has no fetch dispatcher to carry --ca/--fingerprint');
  AgentClass = g.constructor as new (o: object) => object;
  return AgentClass;
}

/**
 * A fetch `dispatcher` (also nano's `agentOptions`) that verifies the server as `trust` says; undefined
 * when the defaults (system CAs) apply. With a pin, the handshake completes and the fingerprint is
 * compared before the connection carries any request.
 */
export function dispatcherFor(trust: CliTrust): object | undefined {
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
