// The data dir's secrets: the admin password (from ANYBIOS_ADMIN_PASSWORD, else generated once and
// kept in <data>/admin-password, mode 0600) and the key that signs session cookies.
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface Secrets { adminPassword: string; secret: string; generated: boolean; passwordFile: string }

function readOrCreate(path: string, make: () => string): { value: string; created: boolean } {
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    return { value: readFileSync(path, 'utf8').trim(), created: false };
  }
  const value = make();
  writeFileSync(path, value + '\n', { mode: 0o600, flag: 'wx' });
  return { value, created: true };
}

export function loadSecrets(dataDir: string, env: NodeJS.ProcessEnv = process.env): Secrets {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const passwordFile = join(dataDir, 'admin-password');
  const secret = readOrCreate(join(dataDir, 'session-secret'), () => randomBytes(32).toString('hex')).value;
  if (env.ANYBIOS_ADMIN_PASSWORD) return { adminPassword: env.ANYBIOS_ADMIN_PASSWORD, secret, generated: false, passwordFile };
  const pw = readOrCreate(passwordFile, () => randomBytes(18).toString('base64url'));
  return { adminPassword: pw.value, secret, generated: pw.created, passwordFile };
}

export const defaultDataDir = (env: NodeJS.ProcessEnv = process.env) => env.ANYBIOS_DATA || join(process.cwd(), '.anybios');
