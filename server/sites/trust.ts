// How a site link verifies the remote server (docs/security.md). At link time the remote's certificate
// is fetched (no credentials sent) and:
// - signed by a CA this machine trusts: used as is (no pin, so the remote can renew it);
// - not (a self-signed anybios server): refused with its SHA-256 fingerprint in the answer, so the
//   operator can compare it with what the remote printed and link again with `fingerprint` (the CLI
//   shows it and asks); from then on every connection of the link must show exactly that certificate;
// - a `fingerprint` given that does not match: refused.
// Plain http:// to a non-loopback remote is refused unless `insecureHttp` (admin credentials in clear).
import tls from 'node:tls';
import { isIP } from 'node:net';
import { isLoopback, normalizeFingerprint, trustServer } from '../../agent/sync/tls.ts';
import { SiteError } from './supervisor.ts';

export interface LinkTransport { fingerprint?: string; insecureHttp?: boolean }

/** The certificate the remote at `url` shows, and whether this machine's CAs vouch for it. */
export function remoteCertificate(url: string, timeoutMs = 10_000): Promise<{ fingerprint: string; trusted: boolean; why: string | null }> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(u.port || 443), servername: isIP(host) ? undefined : host, rejectUnauthorized: false, timeout: timeoutMs });
    socket.once('secureConnect', () => {
      const fingerprint = socket.getPeerCertificate()?.fingerprint256 ?? '';
      // `authorized` covers the chain; the name is checked as a normal https client would.
      const nameError = socket.authorized ? tls.checkServerIdentity(host, socket.getPeerCertificate()) : undefined;
      const why = socket.authorized ? (nameError ? nameError.message : null) : String(socket.authorizationError);
      socket.destroy();
      resolve({ fingerprint, trusted: !why, why });
    });
    socket.once('timeout', () => socket.destroy(new Error(`no TLS answer within ${Math.round(timeoutMs / 1000)} s`)));
    socket.once('error', reject);
  });
}

/** Decides (and registers) how the link to `url` is verified; throws SiteError when it cannot be. */
export async function linkTransport(url: string, input: { fingerprint?: unknown; insecureHttp?: unknown }): Promise<LinkTransport> {
  const u = new URL(url);
  if (input.fingerprint !== undefined && typeof input.fingerprint !== 'string') throw new SiteError(400, 'invalid', 'fingerprint must be a string (the SHA-256 of the remote\'s certificate)');
  if (u.protocol === 'http:') {
    if (!isLoopback(u.hostname) && input.insecureHttp !== true) throw new SiteError(400, 'insecure_http', `${u.host} is plain HTTP: the link would send the remote admin's password in clear. Use https://, or link with insecureHttp (--remote-insecure-http)`);
    const t = { insecureHttp: input.insecureHttp === true || undefined };
    trustServer(url, t);
    return t;
  }
  let want: string | undefined;
  try {
    want = input.fingerprint ? normalizeFingerprint(input.fingerprint as string) : undefined;
  } catch (err) {
    throw new SiteError(400, 'invalid', (err as Error).message);
  }
  let seen: Awaited<ReturnType<typeof remoteCertificate>>;
  try {
    seen = await remoteCertificate(url);
  } catch (err) {
    throw new SiteError(502, 'remote_unreachable', `${u.host} cannot be reached over TLS: ${(err as Error).message}`);
  }
  if (want && want !== seen.fingerprint) throw new SiteError(400, 'certificate_mismatch', `the certificate of ${u.host} has SHA-256 fingerprint ${seen.fingerprint}, not ${want}: not linking`);
  if (!want && !seen.trusted) {
    throw new SiteError(400, 'untrusted_certificate', `the certificate of ${u.host} is not signed by a trusted CA (${seen.why}). Its SHA-256 fingerprint is ${seen.fingerprint}: compare it with the one the remote server printed, then link again with that fingerprint`);
  }
  const t = want ? { fingerprint: want } : {};
  trustServer(url, t);
  return t;
}

/** Registers a saved link's trust at start. */
export function restoreLinkTransport(url: string, t: LinkTransport): void {
  trustServer(url, t);
}
