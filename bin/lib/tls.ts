// What the CLI trusts when it speaks https to a server (docs/security.md): `--ca FILE` (env
// ANYBIOS_CA), `--pin FP` (env ANYBIOS_FINGERPRINT), the config file's `ca`/`fingerprint`, or
// — on the server's own machine — the data dir's self-signed certificate (<data>/tls/cert.pem);
// otherwise the system's CAs. Credentials over plain http:// to a non-loopback address are refused
// unless --insecure-http (env ANYBIOS_INSECURE_HTTP=1).
// The CLI's HTTP goes through fetch (nano and the REST client) with a dispatcher from server/tls/dispatcher.ts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError } from '../command.ts';
import { isLoopback, normalizeFingerprint, type TransportError } from '../../agent/sync/tls.ts';
export { dispatcherFor } from '../../server/tls/dispatcher.ts';
import { fingerprintOf } from '../../server/tls/cert.ts';

export type { Trust as CliTrust } from '../../server/tls/dispatcher.ts';
import type { Trust as CliTrust } from '../../server/tls/dispatcher.ts';

export const TLS_USAGE = `  --ca FILE          CA (or the server's self-signed certificate) to verify https with (env ANYBIOS_CA)
  --pin FP           the server certificate's SHA-256 fingerprint, pinned (env ANYBIOS_FINGERPRINT)
  --insecure-http    allow credentials over plain http:// to a non-loopback address (env ANYBIOS_INSECURE_HTTP=1)`;

export const tlsOptions = {
  ca: { type: 'string' },
  pin: { type: 'string' },
  'insecure-http': { type: 'boolean' },
} as const;

export function resolveTrust(
  url: string,
  flags: { ca?: string; pin?: string; 'insecure-http'?: boolean },
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
    const fp = flags.pin ?? env.ANYBIOS_FINGERPRINT ?? cfg.fingerprint;
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

/**
 * Says what a TLS-shaped connection failure means for the CLI (null when it is not one): plain HTTP
 * to a server that speaks TLS, or a certificate nothing here vouches for.
 */
export function tlsFailureHint(err: unknown, url: string): string | null {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string; cause?: { code?: string; message?: string } } };
  const text = [e.code, e.message, e.cause?.code, e.cause?.message, e.cause?.cause?.code, e.cause?.cause?.message].filter(Boolean).join(' ');
  if (url.startsWith('http:') && /other side closed|ECONNRESET|socket hang up/i.test(text)) {
    return `${url} closed the connection: a server bound off loopback speaks TLS; use --url ${url.replace(/^http:/, 'https:')}`;
  }
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify|self[- ]signed|CERT_/i.test(text)) {
    return `the certificate of ${url} is not trusted here (${text.match(/[A-Z_]*(SELF_SIGNED|VERIFY|CERT)[A-Z_]*/)?.[0] ?? 'unverified'}): pass --pin FP (the fingerprint the server printed at start), --ca FILE, or --data DIR on the server's machine`;
  }
  return null;
}
