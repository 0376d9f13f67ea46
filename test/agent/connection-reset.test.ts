// Connection resets must not crash clients (issue 10, finding 6). Through a proxy that resets every
// reused keep-alive connection (a server closing an idle socket just as the client reuses it), a
// remote PouchDB with the agent's HTTP (agent/sync/remote.ts) still reads and replicates; and stopping
// a replication while one of PouchDB's unguarded requests (`src.info()` after a batch) is in flight
// leaves no unhandled rejection behind (ava fails a test file on one).
import test from 'ava';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { NodeSync } from '../../agent/sync/node-sync.ts';
import { newAgent, remoteDb } from '../../agent/sync/remote.ts';
import { removeDataDir, startServer, type TestServer } from '../helpers/server.ts';
import { eventually } from '../helpers/wait.ts';

let s: TestServer;
const auth = () => ({ username: 'admin', password: s.adminPassword });
const work = mkdtempSync(join(tmpdir(), 'anybios-test-reset-'));
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

test.before(async () => {
  process.on('unhandledRejection', onUnhandled);
  s = await startServer({ embedded: true });
  // One database per test: they run concurrently.
  for (const db of ['resets', 'resets-repl', 'resets-sync']) {
    await s.admin.db.create(db);
    await s.admin.use(db).bulk({ docs: Array.from({ length: 30 }, (_, i) => ({ _id: `d${i}`, n: i })) });
  }
});

test.after.always(async () => {
  process.off('unhandledRejection', onUnhandled);
  if (s) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
});

const REQUEST_LINE = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS) (\S+) HTTP\/1\.[01]\r\n/;

/**
 * A TCP proxy to the server. `resetReuse`: each client connection carries one request; the next one
 * on it is answered with a TCP reset. `hold(path)`: requests whose path matches are never forwarded.
 */
async function proxy(port: number, o: { resetReuse?: boolean; hold?: (path: string) => boolean }) {
  const socks = new Set<net.Socket>();
  const stats = { resets: 0, held: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    socks.add(client).add(upstream);
    let requests = 0;
    let holding = false;
    client.on('data', (chunk) => {
      const m = REQUEST_LINE.exec(chunk.toString('latin1', 0, Math.min(chunk.length, 2048)));
      if (m) {
        requests++;
        holding = !!o.hold?.(m[2]);
        if (holding) stats.held++;
      }
      if (o.resetReuse && requests >= 2) {
        stats.resets++;
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      if (!holding) upstream.write(chunk);
    });
    upstream.pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    stats,
    close: () => new Promise<void>((r) => { socks.forEach((x) => x.destroy()); server.close(() => r()); }),
  };
}

test('reads on reused keep-alive sockets that the server resets are retried on a new connection', async (t) => {
  const p = await proxy(Number(new URL(s.url).port), { resetReuse: true });
  const agent = newAgent(p.url);
  const db = remoteDb(`${p.url}/db/resets`, auth(), agent);
  t.teardown(async () => {
    agent.destroy();
    await p.close();
  });
  for (let i = 0; i < 5; i++) {
    t.is(((await db.get(`d${i}`)) as unknown as { n: number }).n, i);
    t.is((await db.info()).doc_count, 30);
  }
  t.true(p.stats.resets >= 5, `the proxy reset ${p.stats.resets} reused connections`);
});

test('a replication through resetting connections completes', async (t) => {
  const p = await proxy(Number(new URL(s.url).port), { resetReuse: true });
  const agent = newAgent(p.url);
  const remote = remoteDb(`${p.url}/db/resets-repl`, auth(), agent);
  const local = new PouchDB(join(work, 'copy'));
  t.teardown(async () => {
    agent.destroy();
    await local.close().catch(() => {});
    await p.close();
  });
  const r = await local.replicate.from(remote, { batch_size: 5 });
  t.is(r.ok, true);
  t.is((await local.info()).doc_count, 30);
  t.true(p.stats.resets > 0);
  t.deepEqual(unhandled, []);
});

test('stopping a sync while PouchDB waits on an unguarded request leaves no unhandled rejection', async (t) => {
  let holdInfo = false;
  // The database info request PouchDB sends after each pulled batch (`.../resets-sync/`), held once armed.
  const p = await proxy(Number(new URL(s.url).port), { hold: (path) => holdInfo && path === '/db/resets-sync/' });
  const local = new PouchDB(join(work, 'sync'));
  const sync = new NodeSync({ local, remoteUrls: [`${p.url}/db/resets-sync`], auth: auth(), watchdogMs: 60_000 });
  t.teardown(async () => {
    await sync.stop();
    await local.close().catch(() => {});
    await p.close();
  });
  sync.start();
  await eventually('the first pull', () => local.info(), (i) => i.doc_count === 30, { ms: 20_000 });
  holdInfo = true;
  await s.admin.use('resets-sync').insert({ _id: 'late', n: 99 } as never);
  await eventually('the late document pulled', () => local.get('late').then(() => true, () => false), (x) => x, { ms: 20_000 });
  await eventually('the info request after the batch held', async () => p.stats.held, (n) => n > 0, { ms: 10_000 });
  await sync.stop();
  // Give a rejection from the destroyed connection time to surface.
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(unhandled.map((e) => String((e as Error)?.message ?? e)), []);
});
