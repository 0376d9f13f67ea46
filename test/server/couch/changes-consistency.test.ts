// _changes must not lose a change to a write that commits while it reads (issue 10: PouchDB's
// "5782 sync rev-1 conflicts" failed 3 of 20 runs against us: a push read `_changes?since=4`, got no
// results and last_seq 4, while the pull's `_bulk_docs` with new_edits:false moved the deleted document
// to a newer sequence). Here many such writes race many reads; every read must list every document.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';

let server: TestServer;
const db = uniq('changes-race');
const N = 300;
const ROUNDS = 12;

test.before(async () => {
  server = await startServer({ embedded: true });
  await server.admin.db.create(db);
  const docs = Array.from({ length: N }, (_, i) => ({ _id: `d${String(i).padStart(4, '0')}`, v: 0 }));
  const r = await call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { docs } });
  if (r.status !== 201) throw new Error(r.text);
});

test.after.always(async () => {
  if (!server) return;
  await server.stop();
  removeDataDir(server.dataDir);
});

test('a _changes read concurrent with _bulk_docs new_edits:false lists every document', async (t) => {
  const lost: string[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Each round adds one more conflicting leaf to every document, as a replicator pushing conflicts does.
    const rev = `1-${round.toString(16).padStart(32, 'c')}`;
    const docs = Array.from({ length: N }, (_, i) => ({ _id: `d${String(i).padStart(4, '0')}`, _rev: rev, v: round }));
    const [changes, write] = await Promise.all([
      call(server.couchUrl, `/${db}/_changes?since=0`, { auth: server.adminAuth }),
      call(server.couchUrl, `/${db}/_bulk_docs`, { method: 'POST', auth: server.adminAuth, json: { docs, new_edits: false } }),
    ]);
    t.is(write.status, 201, write.text.slice(0, 300));
    t.is(changes.status, 200, changes.text.slice(0, 300));
    const ids = new Set((changes.body.results as { id: string }[]).map((r) => r.id));
    if (ids.size !== N) lost.push(`round ${round}: ${N - ids.size} of ${N} documents missing, last_seq ${JSON.stringify(changes.body.last_seq)}`);
    // last_seq never claims more than was listed: reading on from it finds the rest.
    const maxSeq = Math.max(0, ...(changes.body.results as { seq: number }[]).map((r) => Number(r.seq)));
    t.true(Number(changes.body.last_seq) >= maxSeq);
  }
  t.deepEqual(lost, []);
  t.true(server.alive());
});

// PouchDB's own test "5782 sync rev-1 conflicts", with our server as the source of the final push
// (where it failed 3 of 20 runs): the push's _changes ran while the pull's new_edits:false write moved
// the deleted document on. Both sides must end with identical documents, every time.
test('PouchDB "5782 sync rev-1 conflicts" with the server as the pushing side, 20 times', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'anybios-5782-'));
  const Local = (PouchDB as unknown as { defaults(o: object): PouchDB.Static }).defaults({ prefix: dir + '/' });
  try {
    for (let round = 0; round < 20; round++) {
      const name = uniq(`sync5782-${round}`);
      await server.admin.db.create(name);
      const ours = new PouchDB(`${server.couchUrl}/${name}`, { auth: { username: 'admin', password: server.adminPassword } });
      const other = new Local(`other-${round}`);
      const update = async (db: PouchDB.Database, id: string) => {
        const doc = (await db.get(id)) as Record<string, unknown> & { _id: string; _rev: string };
        return db.put({ ...doc, updated: Date.now() });
      };
      const remove = async (db: PouchDB.Database, id: string) => db.remove((await db.get(id)) as PouchDB.Core.RemoveDocument);
      const conflict = async (doc: Record<string, unknown> & { _id: string }) => {
        await ours.put({ ...doc });
        await other.put({ ...doc, baz: 'fubar' });
      };
      const doc1 = { _id: `random-${round}`, foo: 'bar' };
      const doc2 = { _id: `random2-${round}`, foo: 'bar' };
      try {
        await conflict(doc2);
        await ours.replicate.to(other);
        await update(ours, doc2._id);
        await remove(ours, doc2._id);
        await ours.replicate.to(other);
        await conflict(doc1);
        await update(other, doc2._id);
        await ours.replicate.to(other);
        await remove(ours, doc1._id);
        await ours.sync(other);
        const [a, b] = await Promise.all([ours.allDocs({ include_docs: true }), other.allDocs({ include_docs: true })]);
        t.deepEqual(a.rows, b.rows, `round ${round}`);
      } finally {
        await ours.close();
        await other.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
