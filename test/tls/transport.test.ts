// Transport security end to end (issue 17): real server processes bound to a non-loopback address of
// this machine (so they choose TLS themselves, with a self-signed certificate), the real CLI, and real
// agent processes syncing over HTTPS with the fingerprint `node add` printed.
import test from 'ava';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addNode } from '../../server/nodes.ts';
import { spawnAgent, destroySystems, type TestAgent } from '../helpers/agent.ts';
import { eventually } from '../helpers/wait.ts';
import { basic, call, removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { cli, externalAddress, serverCert, tlsAdmin } from './helpers.ts';

if (process.getuid?.() !== 0) throw new Error('the TLS tests start agents, which need root; run them as root');
const ip = externalAddress();
if (!ip) throw new Error('this machine has no non-loopback IPv4 address to bind a server to');

const servers: TestServer[] = [];
const agents: TestAgent[] = [];
const dirs: string[] = [];

async function server(args: string[]): Promise<TestServer> {
  const s = await startServer({ args: ['--host', ip!, ...args], embedded: true });
  servers.push(s);
  return s;
}

function agent(config: object): { a: TestAgent; dir: string } {
  const dir = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-tls-agent-'));
  dirs.push(dir);
  const file = join(dir, 'enrol.json');
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  const a = spawnAgent(file, join(dir, 'data'), ['--watchdog', '1', '--heartbeat', '1']);
  agents.push(a);
  return { a, dir };
}

test.after.always(async () => {
  for (const a of agents) await a.stop().catch(() => {});
  for (const d of dirs) {
    await destroySystems(join(d, 'data')).catch(() => {});
    rmSync(d, { recursive: true, force: true });
  }
  for (const s of servers) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
});

let A: TestServer;
test.serial.before(async () => {
  A = await server([]);
});

test.serial('a server bound off loopback serves TLS with a self-signed certificate (0600), HSTS and Secure cookies', async (t) => {
  t.true(A.url.startsWith(`https://${ip}:`), A.url);
  const { fingerprint } = serverCert(A);
  t.regex(A.output(), new RegExp(`SHA-256 fingerprint ${fingerprint}`));
  t.is(statSync(join(A.dataDir, 'tls', 'key.pem')).mode & 0o777, 0o600);
  t.is(statSync(join(A.dataDir, 'tls', 'cert.pem')).mode & 0o777, 0o600);
  // Plain HTTP with credentials to that address gets no HTTP answer at all.
  const plain = A.url.replace('https:', 'http:');
  await t.throwsAsync(fetch(`${plain}/db/`, { headers: { Authorization: A.adminAuth } }));
  // An unpinned client refuses the self-signed certificate.
  await t.throwsAsync(fetch(`${A.url}/db/_up`));
  // Through the CLI's pinned dispatcher: HSTS, and the session cookie is Secure.
  const admin = tlsAdmin(A);
  t.is(((await admin.info()) as unknown as { couchdb: string }).couchdb, 'Welcome');
  const { dispatcherFor } = await import('../../bin/lib/tls.ts');
  const d = dispatcherFor({ fingerprint });
  const res = await fetch(`${A.url}/db/_session`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: A.adminPassword }), dispatcher: d } as RequestInit);
  t.is(res.status, 200);
  t.regex(res.headers.get('set-cookie') ?? '', /AuthSession=[^;]+;.*; Secure/);
  t.is(res.headers.get('strict-transport-security'), 'max-age=31536000');
});

test.serial('node add prints the pinned fingerprint; the agent syncs over HTTPS with it', async (t) => {
  const { fingerprint } = serverCert(A);
  const r = await cli(['node', 'add', 'phone', '--json', '--url', A.url, '--data', A.dataDir], { ANYBIOS_PASSWORD: A.adminPassword });
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(r.stdout);
  t.is(config.fingerprint, fingerprint);
  t.is(config.server, A.url);
  t.true(config.ca.includes('BEGIN CERTIFICATE'));
  const { a } = agent(config);
  const admin = tlsAdmin(A);
  const db = admin.use('anybios-node-phone');
  await eventually('the heartbeat pushed over HTTPS', () => db.get('node:phone').catch(() => null), (d) => !!d, { context: a.output });
  t.notRegex(a.output(), /pinned|refusing/);
});

test.serial('a changed certificate is refused: the agent sends nothing and says why', async (t) => {
  // B is another server (its own self-signed certificate) where the same credentials would work.
  const B = await server([]);
  const cred = await addNode(tlsAdmin(B), 'stolen', { password: 'the-same-password-on-both' });
  const { fingerprint } = serverCert(A);
  const { a, dir } = agent({ server: B.url, node: 'stolen', user: cred.user, password: cred.password, fingerprint });
  await eventually('the pin mismatch in the agent log', async () => a.output(), (o) => o.includes('is not the pinned one'), { context: a.output });
  t.regex(a.output(), new RegExp(`expected ${fingerprint}, got ${serverCert(B).fingerprint}`));
  // Its status says so too (the loopback API of `anybios local status`).
  const st = await eventually('the status', async () => (await cli(['local', 'status', '--data', join(dir, 'data'), '--json'])).stdout, (o) => /pinned/.test(o), { context: a.output });
  t.regex(st, /not the pinned one/);
  await new Promise((r) => setTimeout(r, 1500));
  await t.throwsAsync(tlsAdmin(B).use('anybios-node-stolen').get('node:stolen'), { message: /missing|deleted/ });
});

test.serial('plain HTTP with credentials off loopback is refused by clients unless --insecure-http, and the server says so at every start', async (t) => {
  const P = await server(['--insecure-http']);
  t.true(P.url.startsWith(`http://${ip}:`), P.url);
  t.regex(P.output(), /WARNING: --insecure-http: serving plain HTTP/);
  t.false(existsSync(join(P.dataDir, 'tls')));
  const refused = await cli(['node', 'ls', '--url', P.url], { ANYBIOS_PASSWORD: P.adminPassword });
  t.not(refused.code, 0);
  t.regex(refused.stderr, /refusing to send credentials over plain HTTP/);
  const allowed = await cli(['node', 'add', 'lan', '--json', '--url', P.url, '--insecure-http'], { ANYBIOS_PASSWORD: P.adminPassword });
  t.is(allowed.code, 0, allowed.stderr);
  const config = JSON.parse(allowed.stdout);
  t.true(config.insecureHttp);
  // An agent whose config does not allow it never sends its credentials.
  const { a } = agent({ ...config, insecureHttp: undefined });
  await eventually('the refusal in the agent status', async () => a.output(), (o) => /refusing to send credentials over plain HTTP/.test(o), { context: a.output });
  await new Promise((r) => setTimeout(r, 1500));
  t.is((await call(P.url, '/db/anybios-node-lan/node:lan', { auth: P.adminAuth })).status, 404);
  // The server at restart says it again.
  const again = await P.restart();
  servers.push(again);
  t.regex(again.output(), /WARNING: --insecure-http/);
  t.is((await call(again.url, '/db/', { auth: basic('admin', again.adminPassword) })).status, 200);
});
