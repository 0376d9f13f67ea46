// Caps on unauthenticated load over real HTTP: slow connections beyond the anonymous connection cap
// are closed (oldest first) and requests without credentials beyond their cap get 503 + Retry-After,
// while an authenticated request still succeeds.
import test, { type ExecutionContext } from 'ava';
import { call, removeDataDir, startServer, type TestServer } from '../../helpers/server.ts';
import { RawConn, requestHead } from '../../helpers/raw-http.ts';
import { eventually } from '../../helpers/wait.ts';

async function serverFor(t: ExecutionContext, limits: string[]): Promise<TestServer> {
  const s = await startServer({ embedded: true, args: limits.flatMap((l) => ['--limit', l]) });
  t.teardown(async () => {
    await s.stop();
    removeDataDir(s.dataDir);
  });
  return s;
}

test('slow connections beyond the anonymous cap are closed, oldest first; an authenticated request succeeds', async (t) => {
  // Long header/body timeouts: only the cap can close these connections within the test.
  const s = await serverFor(t, ['maxAnonymousConnections=20', 'headersTimeoutMs=120s', 'requestTimeoutMs=120s']);
  const port = Number(new URL(s.url).port);
  const conns: RawConn[] = [];
  t.teardown(() => conns.forEach((c) => c.destroy()));
  for (let i = 0; i < 40; i++) {
    const c = new RawConn(port);
    await c.connected();
    c.write(`GET /db/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow-${i}: `);
    conns.push(c);
  }
  const closed = await eventually('20 slow connections closed', async () => conns.filter((c) => c.closed).length, (n) => n >= 20, { ms: 10_000 });
  t.true(closed >= 20);
  t.true(conns.slice(0, 20).every((c) => c.closed), 'the oldest ones went first');
  const r = await call(s.couchUrl, '/', { auth: s.adminAuth });
  t.is(r.status, 200, r.text);
  const api = await call(s.url, '/api/nodes', { auth: s.adminAuth });
  t.is(api.status, 200, api.text);
});

test('requests without credentials beyond their cap get 503 + Retry-After; authenticated ones still work', async (t) => {
  const s = await serverFor(t, ['maxAnonymousRequests=5', 'bodyIdleTimeoutMs=120s', 'requestTimeoutMs=120s']);
  const port = Number(new URL(s.url).port);
  const conns: RawConn[] = [];
  t.teardown(() => conns.forEach((c) => c.destroy()));
  // Five logins that never finish their body hold the five anonymous slots.
  for (let i = 0; i < 5; i++) {
    const c = new RawConn(port);
    await c.connected();
    c.write(requestHead('POST', '/db/_session', { 'Content-Type': 'application/json', 'Content-Length': 100 }) + '{"name":');
    conns.push(c);
  }
  const refused = await eventually('a 503 for the sixth anonymous request', () => call(s.couchUrl, '/_up'), (r) => r.status === 503, { ms: 10_000 });
  t.is(refused.body.error, 'service_unavailable');
  t.is(typeof refused.body.reason, 'string');
  t.regex(refused.headers.get('retry-after') ?? '', /^\d+$/);
  const r = await call(s.couchUrl, '/_session', { auth: s.adminAuth });
  t.is(r.status, 200, r.text);
  t.is(r.body.userCtx.name, 'admin');
  // The slots come back when the slow ones go.
  conns.forEach((c) => c.destroy());
  const up = await eventually('anonymous requests served again', () => call(s.couchUrl, '/_up'), (x) => x.status === 200, { ms: 10_000 });
  t.is(up.status, 200);
});
