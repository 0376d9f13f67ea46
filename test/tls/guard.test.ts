// The transport rules' edges: the plain-HTTP credential backstop on a real socket bound off loopback,
// and precise errors for bad TLS input (flags, files, fingerprints).
import test from 'ava';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transportGuard } from '../../server/tls/transport.ts';
import { normalizeFingerprint } from '../../agent/sync/tls.ts';
import { readCredentials } from '../../bin/commands/agent.ts';
import { basic } from '../helpers/server.ts';
import { cli, externalAddress } from './helpers.ts';

const ip = externalAddress();
if (!ip) throw new Error('this machine has no non-loopback IPv4 address to bind a server to');
const dir = mkdtempSync(join(tmpdir(), 'anybios-tls-guard-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

async function plainServer(allowed: boolean): Promise<{ url: string; close: () => Promise<void> }> {
  const s = http.createServer((req, res) => {
    if (transportGuard(req, res, allowed)) res.end('ok');
  });
  await new Promise<void>((r) => s.listen(0, ip!, r));
  return { url: `http://${ip}:${(s.address() as { port: number }).port}`, close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

test('plain HTTP: credentials to a non-loopback address are refused (403) unless --insecure-http', async (t) => {
  const strict = await plainServer(false);
  const lax = await plainServer(true);
  try {
    const refused = await fetch(`${strict.url}/db/`, { headers: { Authorization: basic('admin', 'x') } });
    t.is(refused.status, 403);
    t.is((await refused.json()).error, 'insecure_transport');
    t.is((await fetch(`${strict.url}/db/`, { headers: { Cookie: 'AuthSession=abc' } })).status, 403);
    t.is((await fetch(`${strict.url}/healthz`)).status, 200); // no credentials: nothing to protect
    t.is((await fetch(`${lax.url}/db/`, { headers: { Authorization: basic('admin', 'x') } })).status, 200);
  } finally {
    await strict.close();
    await lax.close();
  }
});

test('bad TLS input is refused with a precise error', async (t) => {
  const mk = (name: string) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=t', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`)], { stdio: 'ignore' });
  };
  mk('a');
  mk('b');
  const data = join(dir, 'data');
  const alone = await cli(['server', '--port', '0', '--data', data, '--tls-cert', join(dir, 'a.pem')]);
  t.not(alone.code, 0);
  t.regex(alone.stderr, /--tls-cert and --tls-key go together/);
  const mismatch = await cli(['server', '--port', '0', '--data', data, '--tls-cert', join(dir, 'a.pem'), '--tls-key', join(dir, 'b.key')]);
  t.not(mismatch.code, 0);
  t.regex(mismatch.stderr, /b\.key is not the private key of .*a\.pem/);
  const missing = await cli(['server', '--port', '0', '--data', data, '--tls-cert', join(dir, 'nope.pem'), '--tls-key', join(dir, 'a.key')]);
  t.regex(missing.stderr, /cannot read the TLS certificate .*nope\.pem/);
  t.throws(() => normalizeFingerprint('AB:CD'), { message: /not a SHA-256 fingerprint/ });
  t.is(normalizeFingerprint('sha256:' + 'ab'.repeat(32)), Array(32).fill('AB').join(':'));
  const cfg = join(dir, 'agent.json');
  writeFileSync(cfg, JSON.stringify({ server: 'https://x:1', node: 'n', user: 'node-n', password: 'pppppppp', fingerprint: 'nope' }));
  t.throws(() => readCredentials(cfg), { message: /"fingerprint": "nope" is not a SHA-256 fingerprint/ });
  writeFileSync(cfg, JSON.stringify({ server: ['https://a:1', 'https://b:1'], node: 'n', user: 'node-n', password: 'pppppppp', fingerprint: { 'https://a:1/': 'aa'.repeat(32), 'https://b:1': 'bb'.repeat(32) } }));
  t.deepEqual(readCredentials(cfg).fingerprint, { 'https://a:1': Array(32).fill('AA').join(':'), 'https://b:1': Array(32).fill('BB').join(':') });
  writeFileSync(cfg, JSON.stringify({ server: 'https://x:1', node: 'n', user: 'node-n', password: 'pppppppp', fingerprint: { 'https://x:1': 42 } }));
  t.throws(() => readCredentials(cfg), { message: /"fingerprint"\."https:\/\/x:1": must be a string/ });
  writeFileSync(cfg, JSON.stringify({ server: 'https://x:1', node: 'n', user: 'node-n', password: 'pppppppp', ca: 'not pem' }));
  t.throws(() => readCredentials(cfg), { message: /"ca" must be a PEM certificate/ });
});
