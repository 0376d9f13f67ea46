// The transport part of an agent config (what `anybios node add` prints and `anybios agent` reads):
// how the agent verifies its servers. Checked when the config is read, so a typo in a fingerprint is
// a precise error at start and not a sync that never connects.
import { X509Certificate } from 'node:crypto';
import { CliError } from '../command.ts';
import { normalizeFingerprint } from '../../agent/sync/tls.ts';
import type { CliTrust } from '../lib/tls.ts';

export function checkTrustConfig(file: string, raw: { fingerprint?: unknown; ca?: unknown; insecureHttp?: unknown }): void {
  if (raw.fingerprint !== undefined) {
    const fp = raw.fingerprint;
    const norm = (v: unknown, where: string) => {
      try {
        if (typeof v !== 'string') throw new Error('must be a string');
        return normalizeFingerprint(v);
      } catch (err) {
        throw new CliError('CONFIG_INVALID', `${file}: ${where}: ${(err as Error).message}`);
      }
    };
    // One fingerprint for every server, or one per server URL (linked sites with their own certificates).
    if (fp !== null && typeof fp === 'object' && !Array.isArray(fp)) raw.fingerprint = Object.fromEntries(Object.entries(fp).map(([url, v]) => [url.replace(/\/+$/, ''), norm(v, `"fingerprint"."${url}"`)]));
    else raw.fingerprint = norm(fp, '"fingerprint"');
  }
  if (raw.ca !== undefined) {
    try {
      if (typeof raw.ca !== 'string') throw new Error('must be a string');
      new X509Certificate(raw.ca);
    } catch (err) {
      throw new CliError('CONFIG_INVALID', `${file}: "ca" must be a PEM certificate: ${(err as Error).message}`);
    }
  }
  if (raw.insecureHttp !== undefined && typeof raw.insecureHttp !== 'boolean') throw new CliError('CONFIG_INVALID', `${file}: "insecureHttp" must be true or false`);
}

/**
 * The trust an agent enrolled through this CLI connection should keep: the pin the CLI verified the
 * server with (a self-signed certificate: pinned, its PEM as `ca` too), nothing for a CA-signed one
 * (renewals must not break agents) or for plain HTTP on loopback.
 */
export function agentTrust(url: string, trust: CliTrust | undefined): { fingerprint?: string; ca?: string; insecureHttp?: boolean } {
  if (url.startsWith('http:')) return trust?.insecureHttp ? { insecureHttp: true } : {};
  return { ...(trust?.fingerprint ? { fingerprint: trust.fingerprint } : {}), ...(trust?.ca ? { ca: trust.ca } : {}) };
}
