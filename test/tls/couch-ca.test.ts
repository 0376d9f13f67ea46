// COUCH_URL=https://… with a private CA (--couch-ca): the upstream here is a real anybios server bound
// off loopback (so it serves TLS with its own self-signed certificate, which is then the CA), and a
// second server forwards /db to it. Without the CA it refuses to start; with it, setup, the proxy and
// the admin client all speak verified TLS.
import test from 'ava';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AnybiosServer } from '../../server/app.ts';
import { basic, call, removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { externalAddress } from './helpers.ts';

const ip = externalAddress();
if (!ip) throw new Error('this machine has no non-loopback IPv4 address to bind a server to');

let upstream: TestServer;
let front: AnybiosServer | undefined;
const dataDir = mkdtempSync(join(tmpdir(), 'anybios-test-'));

test.before(async () => {
  upstream = await startServer({ args: ['--host', ip!], embedded: true });
});
test.after.always(async () => {
  await front?.close();
  removeDataDir(dataDir);
  await upstream?.stop();
  if (upstream) removeDataDir(upstream.dataDir);
});

test.serial('COUCH_URL over https: refused without the CA, works with --couch-ca', async (t) => {
  const u = new URL(`${upstream.url}/db`);
  u.username = 'admin';
  u.password = upstream.adminPassword;
  const couchUrl = u.toString();
  const err = await t.throwsAsync(createServer({ dataDir, port: 0, couchUrl }));
  t.regex(String(err?.message), /self[- ]signed|certificate/i);
  const ca = readFileSync(join(upstream.dataDir, 'tls', 'cert.pem'), 'utf8');
  front = await createServer({ dataDir, port: 0, couchUrl, couchCa: ca });
  t.true(front.url.startsWith('http://127.0.0.1:'));
  // Through the front's proxy to the upstream, over verified TLS.
  const r = await call(front.url, '/db/_all_dbs', { auth: basic('admin', upstream.adminPassword) });
  t.is(r.status, 200, r.text);
  t.true(r.body.includes('anybios'));
  t.true(((await front.admin.db.list()) as string[]).includes('_users'));
});
