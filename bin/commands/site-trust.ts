// `site link` and the remote's certificate (server/sites/trust.ts): the server refuses a remote whose
// certificate no trusted CA signs and says its fingerprint; here the operator sees it and confirms
// (on a terminal), or gives it up front with --fingerprint.
import { createInterface } from 'node:readline/promises';
import { ApiFailure } from '../lib/api.ts';

export const SITE_TRUST_USAGE = `    --fingerprint FP    the other site's certificate SHA-256 (when no trusted CA signs it; else the
                        fingerprint is shown and, on a terminal, you are asked to confirm it)
    --remote-insecure-http  allow a plain http:// URL off loopback (the remote admin's password in clear)`;

export const siteTrustOptions = {
  fingerprint: { type: 'string' },
  'remote-insecure-http': { type: 'boolean' },
} as const;

/** Runs `post(extra)`; on an untrusted certificate, asks to confirm its fingerprint and runs it again. */
export async function linkConfirmingCertificate<T>(post: (extra: { fingerprint?: string }) => Promise<T>, fingerprint: string | undefined): Promise<T> {
  try {
    return await post({ fingerprint });
  } catch (err) {
    const seen = err instanceof ApiFailure && err.code === 'UNTRUSTED_CERTIFICATE' ? /fingerprint is ([0-9A-F:]{95})/.exec(err.message)?.[1] : undefined;
    if (!seen || !process.stdin.isTTY) throw err;
    console.log(`${(err as Error).message}\n`);
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question(`Trust the certificate with SHA-256 fingerprint\n  ${seen}\nfor this link? [y/N] `).finally(() => rl.close());
    if (!/^y(es)?$/i.test(answer.trim())) throw err;
    return post({ fingerprint: seen });
  }
}
