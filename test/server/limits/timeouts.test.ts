// Timeouts over real HTTP, with short limits set by flags: a body that goes silent, a body trickled
// slower than the request timeout allows, and headers that never finish are each cut with a 408 in
// `{error, reason}` form and the connection closed; a long response (continuous _changes) is not a
// slow request and keeps streaming past the request timeout.
import test from 'ava';
import http from 'node:http';
import { removeDataDir, startServer, type TestServer } from '../../helpers/server.ts';
import { RawConn, requestHead } from '../../helpers/raw-http.ts';

let s: TestServer;
let port: number;

test.before(async () => {
  s = await startServer({ embedded: true, args: ['--limit', 'headersTimeoutMs=1s', '--limit', 'requestTimeoutMs=3s', '--limit', 'bodyIdleTimeoutMs=1s'] });
  port = Number(new URL(s.url).port);
  await s.admin.db.create('slow');
});

test.after.always(async () => {
  if (!s) return;
  await s.stop();
  removeDataDir(s.dataDir);
});

async function open(head: string): Promise<RawConn> {
  const c = new RawConn(port);
  await c.connected();
  c.write(head);
  return c;
}

test('a body that goes silent is cut with 408 request_timeout (/db)', async (t) => {
  const c = await open(requestHead('PUT', '/db/slow/silent', { Authorization: s.adminAuth, 'Content-Type': 'application/json', 'Content-Length': 100 }));
  t.teardown(() => c.destroy());
  c.write('{"a":');
  const r = await c.response(15_000);
  t.is(r?.status, 408, r?.head ?? 'no answer: the silent body was never timed out');
  t.is(r!.json.error, 'request_timeout');
  t.true(await c.closedWithin(5000));
});

for (const [where, path] of [['/db', '/db/slow/trickle'], ['/api', '/api/templates/trickle']] as const) {
  test(`a trickled body (a byte every 200 ms) is cut when the request timeout passes (${where})`, async (t) => {
    const c = await open(requestHead('PUT', path, { Authorization: s.adminAuth, 'Content-Type': 'application/json', 'Content-Length': 10_000 }));
    const drip = setInterval(() => c.write(' '), 200);
    t.teardown(() => {
      clearInterval(drip);
      c.destroy();
    });
    const r = await c.response(20_000);
    t.is(r?.status, 408, r?.head ?? 'no answer: the trickle was never cut');
    t.is(r!.json.error, 'request_timeout');
    t.true(await c.closedWithin(5000));
    t.true(c.written < 10_000);
  });
}

test('headers that never finish are cut with 408', async (t) => {
  const c = await open('GET /db/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  const drip = setInterval(() => c.write('a'), 200);
  t.teardown(() => {
    clearInterval(drip);
    c.destroy();
  });
  const r = await c.response(15_000);
  t.is(r?.status, 408, r?.head ?? 'no answer: slow headers were never cut');
  t.is(r!.json?.error, 'request_timeout');
});

test('a continuous _changes feed streams past the request timeout', async (t) => {
  // heartbeat keeps a CouchDB continuous feed open indefinitely; we read for 4.5 s and hang up.
  const got = await new Promise<{ status: number; lines: number; error?: string }>((resolve) => {
    let status = 0;
    let lines = 0;
    const req = http.get(`${s.couchUrl}/slow/_changes?feed=continuous&heartbeat=500`, { headers: { Authorization: s.adminAuth } }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
      res.on('error', () => {});
      res.on('close', () => resolve({ status, lines, error: ended ? undefined : 'the server ended the feed' }));
    });
    let ended = false;
    setTimeout(() => {
      ended = true;
      req.destroy();
    }, 4500);
    req.on('error', (e) => { if (!ended) resolve({ status, lines, error: e.message }); });
  });
  t.is(got.status, 200);
  t.is(got.error, undefined);
  t.true(got.lines >= 5, `only ${got.lines} lines in 4.5 s (heartbeats every 500 ms)`);
});
