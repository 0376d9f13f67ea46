// The credential lifecycle end to end (issue 17): a real TLS server bound off loopback, the real CLI,
// a real agent process running a real system. Rotate: the agent switches by itself, the old password
// stops working, sync goes on. Revoke: the node is cut off at once — its open continuous `_changes`,
// its cookie session, its basic auth — while its system keeps running on the device. Restore: back
// with a new credential, database and history intact.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgent, destroySystems, type TestAgent } from '../helpers/agent.ts';
import { eventually } from '../helpers/wait.ts';
import { basic, removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { revokeNode } from '../../server/node-credentials.ts';
import { cli, externalAddress, tlsAdmin, tlsFetch } from './helpers.ts';

if (process.getuid?.() !== 0) throw new Error('the credential tests run an agent with a system, which needs root');
const ip = externalAddress();
if (!ip) throw new Error('this machine has no non-loopback IPv4 address to bind a server to');

let s: TestServer;
let agent: TestAgent | null = null;
const dir = mkdtempSync(join(process.env.ANYBIOS_TEST_TMP ?? '/var/tmp', 'anybios-cred-agent-'));
const data = join(dir, 'data');
const node = 'handset';
const user = `node-${node}`;
const db = `/db/anybios-node-${node}`;
let firstPassword = '';

test.before(async () => {
  s = await startServer({ args: ['--host', ip!], embedded: true });
  await tlsAdmin(s).use('anybios').insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never);
  const r = await cli(['node', 'add', node, '--json', '--url', s.url, '--data', s.dataDir], { ANYBIOS_PASSWORD: s.adminPassword });
  if (r.code !== 0) throw new Error(r.stderr);
  const config = JSON.parse(r.stdout);
  firstPassword = config.password;
  writeFileSync(join(dir, 'enrol.json'), JSON.stringify(config), { mode: 0o600 });
  agent = spawnAgent(join(dir, 'enrol.json'), data, ['--watchdog', '1', '--heartbeat', '1', '--full-pass', '1']);
});

test.after.always(async () => {
  await agent?.stop();
  await destroySystems(data).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  if (s) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
});

const out = () => agent?.output() ?? '';
const stored = () => JSON.parse(readFileSync(join(data, 'agent', 'credentials.json'), 'utf8'));
const status = async (pw: string, path = db) => (await tlsFetch(s, path, { auth: basic(user, pw) })).status;
const heartbeat = async () => ((await tlsAdmin(s).use(`anybios-node-${node}`).get(`node:${node}`).catch(() => null)) as { heartbeat?: string } | null)?.heartbeat;

test.serial('rotate: the agent switches to the new password by itself; the old one stops working; sync goes on', async (t) => {
  await eventually('the first heartbeat', heartbeat, (h) => !!h, { context: out });
  t.is(await status(firstPassword), 200);
  const r = await cli(['node', 'rotate', node, '--wait', '30', '--url', s.url, '--data', s.dataDir], { ANYBIOS_PASSWORD: s.adminPassword });
  t.is(r.code, 0, r.stdout + r.stderr + out());
  t.regex(r.stdout, /switched to its new password/);
  const cred = stored();
  t.not(cred.password, firstPassword);
  t.is(cred.nextPassword, undefined);
  t.is(statSync(join(data, 'agent', 'credentials.json')).mode & 0o777, 0o600);
  t.is(await status(firstPassword), 401);
  t.is(await status(cred.password), 200);
  // The offer is gone from the user document; the agent keeps syncing with the new password.
  const doc = await tlsAdmin(s).use('_users').get(`org.couchdb.user:${user}`) as unknown as Record<string, unknown>;
  t.is(doc.rotation, undefined);
  const before = await heartbeat();
  await eventually('a heartbeat after the rotation', heartbeat, (h) => !!h && h !== before, { context: out });
  t.notRegex(out(), /sync denied/);
});

test.serial('revoke: cut off within a second (open continuous _changes, cookie, basic auth); its system keeps running', async (t) => {
  const pw = stored().password;
  const admin = tlsAdmin(s);
  const nodeDb = admin.use(`anybios-node-${node}`);
  await nodeDb.insert({ _id: 'system:tick', type: 'system', name: 'tick', kind: 'app', template: 'host', state: 'running', network: 'none', command: ['/bin/sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1; done"] } as never);
  const running = await eventually('tick running', () => nodeDb.get('status:tick').catch(() => null) as Promise<any>, (st) => st?.phase === 'running', { ms: 60_000, context: out });
  const pid = running.pid as number;
  t.true(pid > 0);
  // A session cookie and an open continuous _changes feed of the node, as its replication holds.
  const login = await tlsFetch(s, '/db/_session', { method: 'POST', json: { name: user, password: pw } });
  t.is(login.status, 200);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
  t.is((await tlsFetch(s, db, { headers: { Cookie: cookie } })).status, 200);
  const feed = await tlsFetch(s, `${db}/_changes?feed=continuous&heartbeat=500&since=now`, { auth: basic(user, pw) });
  t.is(feed.status, 200);
  const reader = feed.body!.getReader();
  const ended = (async () => {
    try {
      for (;;) if ((await reader.read()).done) return 'ended';
    } catch {
      return 'cut';
    }
  })();
  await new Promise((r) => setTimeout(r, 700)); // the feed is live (a heartbeat went by)
  // Within one second of the revocation being sent: the feed is ended, basic auth and the cookie fail.
  const t0 = Date.now();
  const deadline = new Promise((r) => setTimeout(() => r('still open'), 1000));
  await revokeNode(admin, node);
  t.not(await Promise.race([ended, deadline]), 'still open');
  t.is(await status(pw), 401);
  t.is((await tlsFetch(s, db, { headers: { Cookie: cookie } })).status, 401);
  t.true(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
  // The agent sees it is denied; its system runs on (nothing on the device depends on the server).
  await eventually('the agent denied', async () => out(), (o) => /sync denied/.test(o), { context: out });
  process.kill(pid, 0);
  const local = JSON.parse((await cli(['local', 'ls', '--json', '--data', data])).stdout);
  t.is(local.find((x: any) => x.spec.name === 'tick')?.status?.phase, 'running');
  // Its database and history stay.
  t.truthy(await nodeDb.get(`node:${node}`));
});

test.serial('restore: back with a new credential; the revoked one stays dead', async (t) => {
  const old = stored().password;
  const r = await cli(['node', 'restore', node, '--json', '--url', s.url, '--data', s.dataDir], { ANYBIOS_PASSWORD: s.adminPassword });
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(r.stdout);
  t.not(config.password, old);
  t.is(await status(old), 401);
  t.is(await status(config.password), 200);
  const doc = await tlsAdmin(s).use('_users').get(`org.couchdb.user:${user}`) as unknown as Record<string, unknown>;
  t.deepEqual(doc.roles, ['node']);
  t.is(doc.revoked, undefined);
  // The agent, given the new config, syncs again.
  await agent?.stop();
  writeFileSync(join(dir, 'restored.json'), JSON.stringify(config), { mode: 0o600 });
  agent = spawnAgent(join(dir, 'restored.json'), data, ['--watchdog', '1', '--heartbeat', '1']);
  const before = await heartbeat();
  await eventually('a heartbeat after the restore', heartbeat, (h) => !!h && h !== before, { context: out });
  // Rotating a revoked node is refused with a reason.
  await revokeNode(tlsAdmin(s), node);
  const refused = await cli(['node', 'rotate', node, '--url', s.url, '--data', s.dataDir], { ANYBIOS_PASSWORD: s.adminPassword });
  t.not(refused.code, 0);
  t.regex(refused.stderr, /is revoked/);
  const ls = await cli(['node', 'ls', '--url', s.url, '--data', s.dataDir], { ANYBIOS_PASSWORD: s.adminPassword });
  t.regex(ls.stdout, new RegExp(`^${node}  revoked \\d{4}-`, 'm'), ls.stdout + ls.stderr);
});
