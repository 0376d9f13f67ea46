// Site links over TLS (issue 17): two real servers bound off loopback, each with its own self-signed
// certificate. A link needs the remote's fingerprint (shown when it is missing, refused when wrong),
// replicates over the pinned connection, and carries a revocation to the other site, which then cuts
// the node off there too.
import test from 'ava';
import { addNode } from '../../server/nodes.ts';
import { revokeNode } from '../../server/node-credentials.ts';
import { eventually } from '../helpers/wait.ts';
import { basic, removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, destroySystems, type TestAgent } from '../helpers/agent.ts';
import { cli, externalAddress, serverCert, tlsAdmin, tlsFetch } from './helpers.ts';

const ip = externalAddress();
if (!ip) throw new Error('this machine has no non-loopback IPv4 address to bind a server to');

let A: TestServer;
let B: TestServer;
let agent: TestAgent | undefined;
const dir = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-tls-sites-'));
test.before(async () => {
  [A, B] = await Promise.all([startServer({ args: ['--host', ip!], embedded: true }), startServer({ args: ['--host', ip!], embedded: true })]);
});
test.after.always(async () => {
  await agent?.stop();
  await destroySystems(join(dir, 'data')).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  for (const s of [A, B]) {
    if (!s) continue;
    await s.stop();
    removeDataDir(s.dataDir);
  }
});

const link = (body: object) => tlsFetch(A, '/api/sites', { method: 'POST', auth: A.adminAuth, json: { url: B.url, user: 'admin', password: B.adminPassword, ...body } });

test.serial('linking needs the remote fingerprint: shown when missing, refused when wrong; then replication runs pinned', async (t) => {
  const fpB = serverCert(B).fingerprint;
  const missing = await link({});
  t.is(missing.status, 400);
  const m = await missing.json();
  t.is(m.error, 'untrusted_certificate');
  t.true(m.reason.includes(fpB), m.reason);
  const wrong = await link({ fingerprint: serverCert(A).fingerprint });
  t.is(wrong.status, 400);
  t.is((await wrong.json()).error, 'certificate_mismatch');
  // The CLI without a terminal reports the same, fingerprint included.
  const viaCli = await cli(['site', 'link', B.url, '--remote-user', 'admin', '--url', A.url, '--data', A.dataDir], { ANYBIOS_PASSWORD: A.adminPassword, ANYBIOS_REMOTE_PASSWORD: B.adminPassword });
  t.not(viaCli.code, 0);
  t.true(viaCli.stderr.includes(fpB), viaCli.stderr);
  const ok = await cli(['site', 'link', B.url, '--remote-user', 'admin', '--fingerprint', fpB.toLowerCase(), '--url', A.url, '--data', A.dataDir], { ANYBIOS_PASSWORD: A.adminPassword, ANYBIOS_REMOTE_PASSWORD: B.adminPassword });
  t.is(ok.code, 0, ok.stderr);
  // A node enrolled at A reaches B (database and user), over the pinned link.
  const cred = await addNode(tlsAdmin(A), 'roamer');
  await eventually('the node user at B', async () => (await tlsFetch(B, '/db/anybios-node-roamer', { auth: basic(cred.user, cred.password) })).status, (st) => st === 200, { ms: 30_000, context: A.output });
  t.pass();
});

test.serial('a revocation at one site cuts the node off at the linked site too', async (t) => {
  const { password } = await addNode(tlsAdmin(A), 'thief-target');
  const user = 'node-thief-target';
  await eventually('the node user at B', async () => (await tlsFetch(B, '/db/anybios-node-thief-target', { auth: basic(user, password) })).status, (st) => st === 200, { ms: 30_000 });
  await revokeNode(tlsAdmin(A), 'thief-target');
  t.is((await tlsFetch(A, '/db/anybios-node-thief-target', { auth: basic(user, password) })).status, 401);
  // A probe in flight when the revocation lands at B is cut there (live-callers.ts): that is "not yet".
  await eventually('refused at B', async () => (await tlsFetch(B, '/db/anybios-node-thief-target', { auth: basic(user, password) }).catch(() => ({ status: 0 }))).status, (st) => st === 401, { ms: 30_000, context: A.output });
  // Its database and history stay at both sites.
  t.is((await tlsFetch(B, '/db/anybios-node-thief-target', { auth: B.adminAuth })).status, 200);
});

test.serial('an agent with both sites, each pinned to its own certificate, fails over from A to B over TLS', async (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root to run an agent');
  const cred = await addNode(tlsAdmin(A), 'commuter');
  await eventually('the node user at B', async () => (await tlsFetch(B, '/db/anybios-node-commuter', { auth: basic(cred.user, cred.password) })).status, (st) => st === 200, { ms: 30_000 });
  const file = join(dir, 'enrol.json');
  writeFileSync(file, JSON.stringify({ server: [A.url, B.url], node: 'commuter', user: cred.user, password: cred.password, fingerprint: { [A.url]: serverCert(A).fingerprint, [B.url]: serverCert(B).fingerprint } }), { mode: 0o600 });
  agent = spawnAgent(file, join(dir, 'data'), ['--watchdog', '1', '--heartbeat', '1']);
  const beatAt = async (s: TestServer) => ((await tlsAdmin(s).use('anybios-node-commuter').get('node:commuter').catch(() => null)) as { heartbeat?: string } | null)?.heartbeat;
  await eventually('a heartbeat at A', () => beatAt(A), (h) => !!h, { context: () => agent!.output() });
  await A.stop();
  const before = await beatAt(B);
  await eventually('heartbeats at B after A went away', () => beatAt(B), (h) => !!h && h !== before, { ms: 30_000, context: () => agent!.output() });
  t.regex(agent.output(), /failing over to https:/);
  t.notRegex(agent.output(), /not the pinned one/);
});
