// The fleet index and live events: direct writes to /db (as Fauxton makes them) reach the API, new
// nodes appear, a restart resumes from the snapshot, SSE delivers, resumes with Last-Event-ID,
// respects read rights, and drops a client that does not read instead of buffering without bound.
import test from 'ava';
import http from 'node:http';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addNode, removeNode } from '../../../server/nodes.ts';
import { basic, call, external, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';
import { eventually } from '../../helpers/wait.ts';

let s: TestServer;
const a = uniq('ixa');
const b = uniq('ixb');
const auth: Record<string, string> = {};
const spec = (name: string, extra: object = {}) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'host', state: 'running', command: ['/bin/true'], ...extra });

test.before(async () => {
  s = await startServer();
  const ca = await addNode(s.admin, a);
  const cb = await addNode(s.admin, b);
  auth.a = basic(ca.user, ca.password);
  auth.b = basic(cb.user, cb.password);
});

test.after.always(async () => {
  if (!s) return;
  for (const n of [a, b]) await removeNode(s.admin, n).catch(() => {});
  await s.stop();
  removeDataDir(s.dataDir);
});

/** The index is eventually consistent: poll until `pred` holds. */
const until = <T>(fn: () => Promise<T>, pred: (v: T) => boolean, ms = 5000) => eventually('the fleet index to catch up', fn, pred, { ms, interval: 50 });
const names = (r: { body: { name: string }[] }) => r.body.map((x) => x.name);

interface SseEvent { id?: string; event?: string; data?: any }

/** Opens /api/events and collects parsed events; `close()` ends it. */
function openEvents(base: string, authHeader: string, lastEventId?: string) {
  const events: SseEvent[] = [];
  let req: http.ClientRequest;
  const opened = new Promise<void>((resolve, reject) => {
    req = http.get(`${base}/api/events`, { headers: { Authorization: authHeader, ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}) } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: SseEvent = {};
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6));
          }
          if (e.event || e.data) events.push(e);
        }
      });
      res.on('error', () => {});
      resolve();
    });
    req.on('error', () => {});
  });
  return {
    events,
    opened,
    close: () => req.destroy(),
    async waitFor(pred: (e: SseEvent) => boolean, ms = 5000): Promise<SseEvent> {
      const end = Date.now() + ms;
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        if (Date.now() > end) throw new Error(`no matching event in ${ms} ms; got ${JSON.stringify(events.map((x) => [x.event, x.data?.name]))}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

test.serial('direct writes to /db (as Fauxton makes them) and new nodes reach the API', async (t) => {
  const put = await call(s.couchUrl, `/anybios-node-${a}/system:fauxton`, { method: 'PUT', auth: s.adminAuth, json: spec('fauxton') });
  t.is(put.status, 201);
  const rows = await until(() => call(s.url, `/api/systems?node=${a}`, { auth: s.adminAuth }), (r) => names(r).includes('fauxton'));
  t.deepEqual(names(rows), ['fauxton']);
  // status written by the node shows as phase and `current`
  const st = await call(s.couchUrl, `/anybios-node-${a}/status:fauxton`, { method: 'PUT', auth: auth.a, json: { _id: 'status:fauxton', type: 'status', name: 'fauxton', phase: 'running', observedRev: put.body.rev, pid: 7, updated: new Date().toISOString() } });
  t.is(st.status, 201);
  const withStatus = await until(() => call(s.url, `/api/systems?node=${a}`, { auth: s.adminAuth }), (r) => r.body[0]?.phase === 'running');
  t.like(withStatus.body[0], { phase: 'running', current: true, pid: 7 });
  // a new node appears without a restart
  const c = uniq('ixc');
  t.teardown(() => removeNode(s.admin, c).catch(() => {}));
  await addNode(s.admin, c);
  const nodes = await until(() => call(s.url, '/api/nodes', { auth: s.adminAuth }), (r) => r.body.some((n: { id: string }) => n.id === c));
  t.true(nodes.body.some((n: { id: string }) => n.id === c));
  // a deleted spec leaves the index
  await call(s.couchUrl, `/anybios-node-${a}/system:fauxton?rev=${put.body.rev}`, { method: 'DELETE', auth: s.adminAuth });
  const gone = await until(() => call(s.url, `/api/systems?node=${a}`, { auth: s.adminAuth }), (r) => !names(r).includes('fauxton'));
  t.false(names(gone).includes('fauxton'));
});

test.serial('SSE: delivery, read rights, resume with Last-Event-ID, reset for an unknown id', async (t) => {
  const admin = openEvents(s.url, s.adminAuth);
  const nodeB = openEvents(s.url, auth.b);
  t.teardown(() => { admin.close(); nodeB.close(); });
  await Promise.all([admin.opened, nodeB.opened]);
  await call(s.couchUrl, `/anybios-node-${a}/system:live1`, { method: 'PUT', auth: s.adminAuth, json: spec('live1') });
  await call(s.couchUrl, `/anybios-node-${b}/system:live2`, { method: 'PUT', auth: s.adminAuth, json: spec('live2') });
  const e1 = await admin.waitFor((e) => e.data?.name === 'live1');
  t.is(e1.event, 'system');
  t.is(e1.data.node, a);
  await admin.waitFor((e) => e.data?.name === 'live2');
  await nodeB.waitFor((e) => e.data?.name === 'live2');
  t.false(nodeB.events.some((e) => e.data?.node === a), 'node B never sees node A');
  admin.close();

  // resume: two writes while disconnected arrive after reconnecting with the last id
  const last = e1.id!;
  await call(s.couchUrl, `/anybios-node-${a}/system:miss1`, { method: 'PUT', auth: s.adminAuth, json: spec('miss1') });
  await call(s.couchUrl, `/anybios-node-${a}/system:miss2`, { method: 'PUT', auth: s.adminAuth, json: spec('miss2') });
  await until(() => call(s.url, `/api/systems?node=${a}`, { auth: s.adminAuth }), (r) => names(r).includes('miss1') && names(r).includes('miss2'));
  const resumed = openEvents(s.url, s.adminAuth, last);
  t.teardown(() => resumed.close());
  await resumed.opened;
  await resumed.waitFor((e) => e.data?.name === 'miss2');
  await resumed.waitFor((e) => e.data?.name === 'miss1');
  const got = resumed.events.map((e) => e.data?.name);
  // Events follow each database's _changes. Apache CouchDB orders _changes only within a shard (a
  // database has q = 2 shards by default), so two writes may come in either order; the embedded
  // server's single sequence keeps write order.
  if (!external) t.true(got.indexOf('miss1') < got.indexOf('miss2'), 'in order');
  t.true(resumed.events.every((e) => Number(e.id) > Number(last)), 'nothing before the resume point');

  const reset = openEvents(s.url, s.adminAuth, '999999999');
  t.teardown(() => reset.close());
  await reset.opened;
  const r = await reset.waitFor((e) => e.event === 'reset');
  t.regex(r.data.reason, /reload/);
});

test.serial('SSE: a client that never reads is dropped; the server keeps serving', async (t) => {
  const slow = await startServer({ env: { ANYBIOS_SSE_MAX_QUEUE: '20' } });
  t.teardown(async () => { await slow.stop(); removeDataDir(slow.dataDir); });
  const node = uniq('slow');
  await addNode(slow.admin, node);
  t.teardown(() => removeNode(slow.admin, node).catch(() => {}));
  const port = Number(new URL(slow.url).port);
  const sock = net.connect(port, '127.0.0.1');
  let closed = false;
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  await new Promise((r) => sock.once('connect', r));
  sock.write(`GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: ${slow.adminAuth}\r\n\r\n`);
  sock.pause(); // never read: the kernel buffers fill, then our queue
  const filler = 'x'.repeat(1000);
  const dropped = async () => /anybios_event_clients_dropped_total (\d+)/.exec((await call(slow.url, '/metrics')).text)?.[1] === '1';
  // Write until the server reports the drop (bounded), so the test does not depend on buffer sizes.
  for (let round = 0; round < 300 && !(await dropped()); round++) {
    const docs = Array.from({ length: 100 }, (_, i) => spec(`s${round}-${i}`, { description: filler }));
    const r = await call(slow.couchUrl, `/anybios-node-${node}/_bulk_docs`, { method: 'POST', auth: slow.adminAuth, json: { docs } });
    t.is(r.status, 201);
    await new Promise((res) => setTimeout(res, 50));
  }
  t.true(await dropped(), 'the server counted the slow client as dropped');
  // A paused socket does not notice the server hanging up; read what is buffered, then expect the end.
  sock.on('data', () => {});
  sock.resume();
  await until(async () => closed, (c) => c, 10_000);
  t.true(closed, 'the slow client was disconnected');
  t.is((await call(slow.url, '/healthz')).status, 200);
  t.is((await call(slow.url, '/api/systems', { auth: slow.adminAuth })).status, 200);
  sock.destroy();
});

test.serial('the index survives a restart: snapshot on disk, listings right after start', async (t) => {
  await call(s.couchUrl, `/anybios-node-${b}/system:persist`, { method: 'PUT', auth: s.adminAuth, json: spec('persist') });
  await until(() => call(s.url, `/api/systems?node=${b}`, { auth: s.adminAuth }), (r) => names(r).includes('persist'));
  s = await s.restart();
  t.true(existsSync(join(s.dataDir, 'fleet-index.json')));
  const rows = await until(() => call(s.url, `/api/systems?node=${b}`, { auth: s.adminAuth }), (r) => names(r).includes('persist'));
  t.true(names(rows).includes('persist'));
  // and keeps following after the restart
  await call(s.couchUrl, `/anybios-node-${b}/system:after`, { method: 'PUT', auth: s.adminAuth, json: spec('after') });
  const later = await until(() => call(s.url, `/api/systems?node=${b}`, { auth: s.adminAuth }), (r) => names(r).includes('after'));
  t.true(names(later).includes('after'));
  const metrics = await call(s.url, '/metrics');
  t.regex(metrics.text, /anybios_index_lag_seconds \d/);
  t.regex(metrics.text, /anybios_systems\{phase="unknown"\} \d+/);
});
