// Body limits over real HTTP: an anonymous caller's body is refused before it is read, on /api and
// /db; an authenticated caller gets the route's own allowance; the in-flight body budget refuses
// (503 + Retry-After, or 413 when a body can never fit) instead of buffering; a user's byte rate is
// throttled by pausing the read.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { addNode } from '../../../server/nodes.ts';
import { basic, call, external, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';
import { RawConn, requestHead } from '../../helpers/raw-http.ts';
import { eventually } from '../../helpers/wait.ts';

const MiB = 1024 * 1024;

async function serverFor(t: ExecutionContext, limits: string[] = []): Promise<TestServer> {
  const s = await startServer({ embedded: true, args: limits.flatMap((l) => ['--limit', l]) });
  t.teardown(async () => {
    await s.stop();
    removeDataDir(s.dataDir);
  });
  return s;
}
const portOf = (s: TestServer) => Number(new URL(s.url).port);

/** Opens a request declaring `length` body bytes, sends `sent` of them, and waits for the answer. */
async function partial(s: TestServer, method: string, path: string, length: number, sent: number, headers: Record<string, string> = {}) {
  const c = new RawConn(portOf(s));
  await c.connected();
  c.write(requestHead(method, path, { 'Content-Type': 'application/json', 'Content-Length': length, ...headers }));
  c.write(Buffer.alloc(sent, 0x20));
  return c;
}

test('an anonymous 1 MiB body to /api is refused before it is read', async (t) => {
  const s = await serverFor(t);
  const c = await partial(s, 'POST', '/api/templates', MiB, 1024);
  t.teardown(() => c.destroy());
  // Only 1 KiB of the 1 MiB was sent: an answer now means the server did not wait for (read) the rest.
  const r = await c.response(10_000);
  t.truthy(r, 'no answer while the body was incomplete: the server is waiting to read it');
  t.is(r!.status, 413, r?.head);
  t.is(r!.json?.error, 'too_large');
  t.regex(r!.head, /\r\nconnection: close/i, 'the connection is closed so the rest is never read');
  t.true(await c.closedWithin(5000), 'the server closed the connection');
});

// Not the admin's name on Apache CouchDB: its lockout ([chttpd_auth_lockout]) counts wrong passwords per name and IP.
test('wrong credentials on /api: 401 before the body is read', async (t) => {
  const s = await serverFor(t);
  const c = await partial(s, 'PUT', '/api/templates/x', 512 * 1024, 100, { Authorization: basic(external ? uniq('not-the-admin') : 'admin', 'wrong-password') });
  t.teardown(() => c.destroy());
  const r = await c.response(10_000);
  t.is(r?.status, 401, r?.head ?? 'no answer while the body was incomplete');
});

test('an anonymous body on /db larger than a login is refused unread with 413 too_large; a login still works', async (t) => {
  const s = await serverFor(t);
  const c = await partial(s, 'POST', '/db/_session', MiB, 1024);
  t.teardown(() => c.destroy());
  const r = await c.response(10_000);
  t.is(r?.status, 413, r?.head ?? 'no answer while the body was incomplete');
  t.is(r!.json.error, 'too_large');
  t.is(typeof r!.json.reason, 'string');
  const login = await call(s.couchUrl, '/_session', { method: 'POST', json: { name: 'admin', password: s.adminPassword } });
  t.is(login.status, 200, login.text);
  // Anonymous writes elsewhere: refused without waiting for the body either.
  const w = await partial(s, 'PUT', '/db/anybios/template:x', 4 * MiB, 10);
  t.teardown(() => w.destroy());
  t.is((await w.response(10_000))?.status, 413);
  // A small anonymous write is simply not allowed.
  const small = await call(s.couchUrl, '/anybios/template:x', { method: 'PUT', json: { type: 'template', name: 'x', source: 'host' } });
  t.is(small.status, 401);
});

test('an authenticated caller gets the route allowance: 2 MiB document on /db, /api over its limit is 413', async (t) => {
  const s = await serverFor(t);
  await s.admin.db.create('big');
  const doc = { blob: randomBytes(MiB).toString('hex') }; // 2 MiB of JSON
  const w = await call(s.couchUrl, '/big/doc', { method: 'PUT', auth: s.adminAuth, json: doc });
  t.is(w.status, 201, w.text.slice(0, 300));
  const api = await call(s.url, '/api/templates', { method: 'POST', auth: s.adminAuth, json: { name: 'huge', source: 'host', pad: 'x'.repeat(2 * MiB) } });
  t.is(api.status, 413, api.text.slice(0, 300));
  t.is(api.body.error, 'too_large');
});

test('body budget: a body that can never fit is 413; one that does not fit now is 503 with Retry-After, then fits', async (t) => {
  const s = await serverFor(t, ['bodyBudget=2MiB', 'bodyBudgetPerUser=2MiB']);
  await s.admin.db.create('budget');
  const auth = { Authorization: s.adminAuth };
  const never = await partial(s, 'PUT', '/db/budget/never', 3 * MiB, 10, auth);
  t.teardown(() => never.destroy());
  const r1 = await never.response(10_000);
  t.is(r1?.status, 413, r1?.head ?? 'no answer: the server waited for a body it can never hold');
  t.is(r1!.json.error, 'too_large');

  // A holds 1.5 MiB of its (incomplete) body; B's 1 MiB does not fit beside it.
  const holder = await partial(s, 'PUT', '/db/budget/a', Math.round(1.6 * MiB), Math.round(1.5 * MiB), auth);
  t.teardown(() => holder.destroy());
  const busy = await eventually('a 503 while the budget is held', async () => {
    const c = await partial(s, 'PUT', '/db/budget/b', MiB, 0, auth);
    const r = await c.response(2000); // null: admitted (A's bytes not all in yet); try again
    c.destroy();
    return r;
  }, (r) => r?.status === 503, { ms: 15_000, interval: 200 });
  t.is(busy!.json.error, 'service_unavailable');
  t.regex(busy!.head, /\r\nretry-after: \d+/i);
  holder.destroy();
  const ok = await eventually('the write once the budget is free', () => call(s.couchUrl, '/budget/b', { method: 'PUT', auth: s.adminAuth, json: { pad: 'y'.repeat(MiB - 100) } }), (r) => r.status === 201, { ms: 15_000, interval: 200 });
  t.is(ok.status, 201);
});

test('a user past the byte-rate burst is slowed down, not refused; a server admin is not rated', async (t) => {
  const s = await serverFor(t, ['bodyRatePerUser=256KiB', 'bodyBurstPerUser=256KiB']);
  const cred = await addNode(s.admin, 'rated');
  const body = { pad: 'r'.repeat(MiB) };
  const t0 = Date.now();
  const w = await call(s.couchUrl, '/anybios-node-rated/_local/big', { method: 'PUT', auth: basic(cred.user, cred.password), json: body });
  const took = Date.now() - t0;
  t.is(w.status, 201, w.text);
  // 1 MiB at 256 KiB/s after a 256 KiB burst cannot be read in less than 3 s (a lower bound only).
  t.true(took >= 2500, `read in ${took} ms, faster than the rate allows`);
  const a = await call(s.couchUrl, '/anybios-node-rated/_local/big2', { method: 'PUT', auth: s.adminAuth, json: body });
  t.is(a.status, 201, a.text);
});
