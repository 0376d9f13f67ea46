// Shared by the TLS tests: a non-loopback address of this machine (TLS is chosen by the bind address),
// an admin client that trusts a server's self-signed certificate, and the CLI as a process.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ServerScope } from 'nano';
import { couchClient } from '../../server/couch/client.ts';
import { fingerprintOf } from '../../server/tls/cert.ts';
import { dispatcherFor } from '../../bin/lib/tls.ts';
import { CLI, requestInit, type TestServer } from '../helpers/server.ts';

const run = promisify(execFile);

/** An IPv4 address of this machine that is not loopback (the tests bind servers to it). */
export function externalAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

export function serverCert(s: TestServer): { pem: string; fingerprint: string } {
  const pem = readFileSync(join(s.dataDir, 'tls', 'cert.pem'), 'utf8');
  return { pem, fingerprint: fingerprintOf(pem) };
}

/** nano as admin over https, trusting the server's own certificate (pinned). */
export function tlsAdmin(s: TestServer): ServerScope {
  const { pem, fingerprint } = serverCert(s);
  return couchClient(`${s.url}/db`, 'admin', s.adminPassword, dispatcherFor({ ca: pem, fingerprint }));
}

/** Runs the CLI; never throws (exit code and output are the result). */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** fetch to a TLS test server, trusting its certificate (pinned); `auth` is an Authorization value. */
export async function tlsFetch(s: TestServer, path: string, init: RequestInit & { auth?: string; json?: unknown } = {}): Promise<Response> {
  const { fingerprint } = serverCert(s);
  return fetch(s.url + path, { ...requestInit(init), dispatcher: dispatcherFor({ fingerprint }) } as RequestInit);
}
