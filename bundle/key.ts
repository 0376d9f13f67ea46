// The bundle MAC key, from the node's credential. CouchDB keeps no password, only the pbkdf2 derived
// key of it (`_users` fields `derived_key`, `salt`, `iterations`, `pbkdf2_prf`); the node keeps its
// password. So both sides can make the same key without the server ever holding a secret of its own:
//
//   dk  = PBKDF2(prf, password, salt, iterations, length of prf's output)   (= hex-decoded derived_key)
//   key = HMAC-SHA256(dk, "anybios-bundle/1 node:" + node id)
//   MAC = HMAC-SHA256(key, every byte of the bundle before the MAC line)
//
// The header carries {prf, iterations, salt} (not secret: they are what `_users` stores beside the
// hash), so the device derives dk from its password; a header that lies about them gives another key,
// and the MAC fails. A new password (new salt) gives new keys: bundles made before do not verify.
import { createHmac, pbkdf2 } from 'node:crypto';
import { promisify } from 'node:util';
import { BundleError } from './errors.ts';
import type { KeyParams } from './format.ts';

const pbkdf2Async = promisify(pbkdf2);
const KEY_LENGTH: Record<string, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

export const KEY_INFO = 'anybios-bundle/1 node:';

export function bundleKey(derivedKeyHex: string, node: string): Buffer {
  return createHmac('sha256', Buffer.from(derivedKeyHex, 'hex')).update(KEY_INFO + node).digest();
}

/** The node's side: dk from its password and the header's parameters (async: it may take a second). */
export async function keyFromPassword(password: string, params: KeyParams, node: string): Promise<Buffer> {
  const len = KEY_LENGTH[params.prf];
  if (!len) throw new BundleError('BUNDLE_KEY_UNKNOWN', `key parameter prf ${params.prf} is not supported`);
  const dk = await pbkdf2Async(password, params.salt, params.iterations, len, params.prf);
  return bundleKey(dk.toString('hex'), node);
}

/** The server's side: the key parameters and derived key of `node-<id>` from its `_users` document. */
export function keyOfUserDoc(user: Record<string, unknown>, node: string): { params: KeyParams; key: Buffer } {
  const scheme = user.password_scheme;
  const dk = user.derived_key;
  const salt = user.salt;
  if (scheme !== 'pbkdf2' || typeof dk !== 'string' || !/^[0-9a-f]+$/i.test(dk) || typeof salt !== 'string') {
    throw new BundleError('BUNDLE_KEY_UNKNOWN', `the user node-${node} has no pbkdf2 derived key (password_scheme ${JSON.stringify(scheme ?? null)}); set its password again (\`anybios node add\` makes one)`);
  }
  // CouchDB writes no pbkdf2_prf for its older sha1 hashes.
  const raw = typeof user.pbkdf2_prf === 'string' ? user.pbkdf2_prf : 'sha1';
  const prf = raw === 'sha' ? 'sha1' : raw;
  const iterations = typeof user.iterations === 'number' ? user.iterations : 10;
  if (!KEY_LENGTH[prf]) throw new BundleError('BUNDLE_KEY_UNKNOWN', `the user node-${node} uses pbkdf2_prf ${prf}, which bundles do not support`);
  return { params: { scheme: 'pbkdf2', prf, iterations, salt }, key: bundleKey(dk, node) };
}
