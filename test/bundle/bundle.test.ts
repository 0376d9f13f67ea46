// Bundles between a real server process (over HTTP) and a node's local PouchDB copies opened directly:
// revisions with their history, conflicts, deletions, templates by sha256, checkpoints, idempotence,
// and every way a bundle is refused (altered, cut, for another node, hostile content) with nothing written.
import test from 'ava';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { addNode, removeNode } from '../../server/nodes.ts';
import { CouchHttp } from '../../server/sites/couch-http.ts';
import { exportNodeBundle, importNodeBundle } from '../../bundle/server.ts';
import { exportFromDevice, importOnDevice, learnKeyParams, type DeviceBundleContext } from '../../bundle/device.ts';
import { BundleWriter } from '../../bundle/format.ts';
import { keyFromPassword } from '../../bundle/key.ts';
import { call, ownUserDocReadable, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';

let s: TestServer;
let http: CouchHttp;
const work = mkdtempSync(join(tmpdir(), 'anybios-bundle-test-'));
const A = uniq('bna');
const B = uniq('bnb');
const PASSWORD = 'node-a-password';
const PASSWORD_B = 'node-b-password';
const tarBytes = Buffer.concat([Buffer.from('pretend this is a tar\n'), Buffer.alloc(300_000, 7)]);
const tarSha = createHash('sha256').update(tarBytes).digest('hex');
const devices: DeviceBundleContext[] = [];

test.before(async () => {
  s = await startServer();
  http = new CouchHttp(s.couchUrl, { username: 'admin', password: s.adminPassword }, 60_000);
  await addNode(s.admin, A, { password: PASSWORD });
  await addNode(s.admin, B, { password: PASSWORD_B });
  const cat = s.admin.use('anybios');
  for (const name of ['tpl-a', 'tpl-same']) {
    await cat.insert({ _id: `template:${name}`, type: 'template', name, source: 'tar', sha256: tarSha, _attachments: { 'rootfs.tar': { content_type: 'application/x-tar', data: tarBytes.toString('base64') } } } as never).catch(() => {});
  }
  await cat.insert({ _id: 'template:host', type: 'template', name: 'host', source: 'host' } as never).catch(() => {});
});

test.after.always(async () => {
  for (const d of devices) {
    await d.db.close().catch(() => {});
    await d.catalog.close().catch(() => {});
  }
  if (s) {
    await removeNode(s.admin, A).catch(() => {});
    await removeNode(s.admin, B).catch(() => {});
    for (const t of ['tpl-a', 'tpl-same']) await s.admin.use('anybios').get(`template:${t}`).then((d) => s.admin.use('anybios').destroy(d._id, d._rev)).catch(() => {});
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
});

const nodeDb = (n: string) => `/anybios-node-${n}`;
const sys = (name: string, template: string, extra: object = {}) => ({ _id: `system:${name}`, type: 'system', name, kind: 'app', template, state: 'running', command: ['/bin/true'], network: 'none', ...extra });

async function put(node: string, doc: Record<string, unknown>): Promise<string> {
  const cur = await call(s.couchUrl, `${nodeDb(node)}/${doc._id}`, { auth: s.adminAuth });
  const r = await call(s.couchUrl, `${nodeDb(node)}/${doc._id}`, { method: 'PUT', auth: s.adminAuth, json: { ...doc, ...(cur.status === 200 ? { _rev: cur.body._rev } : {}) } });
  if (r.status !== 201) throw new Error(r.text);
  return r.body.rev;
}

let seq = 0;
function device(node: string, password: string): DeviceBundleContext {
  const dir = join(work, `dev-${seq++}`);
  const Local = (PouchDB as unknown as { defaults(x: object): PouchDB.Static }).defaults({ prefix: dir + '-' });
  const d = { node, password, db: new Local(`anybios-node-${node}`), catalog: new Local('anybios'), statePath: `${dir}-bundle.json` };
  devices.push(d);
  return d;
}

async function exportTo(node: string, since: string | null = null) {
  const file = join(work, `b-${seq++}.bundle`);
  const out = createWriteStream(file);
  const r = await exportNodeBundle(http, node, out, since);
  await new Promise<void>((res) => out.end(() => res()));
  return { file, ...r };
}

async function deviceExport(d: DeviceBundleContext, since: string | null = null) {
  const file = join(work, `d-${seq++}.bundle`);
  const out = createWriteStream(file);
  const r = await exportFromDevice(d, out, since);
  await new Promise<void>((res) => out.end(() => res()));
  return { file, ...r };
}

const allDocs = async (db: PouchDB.Database) => (await db.allDocs({ include_docs: true, conflicts: true })).rows.map((r) => ({ id: r.id, rev: r.value.rev, conflicts: (r.doc as { _conflicts?: string[] })._conflicts ?? [] }));

test.serial('server → node: every revision with its history, conflicts and deletions, templates once by sha256; twice changes nothing', async (t) => {
  const rev1 = await put(A, sys('web', 'tpl-a'));
  await put(A, sys('twin', 'tpl-same'));
  await put(A, sys('gone', 'host'));
  const gone = await call(s.couchUrl, `${nodeDb(A)}/system:gone`, { auth: s.adminAuth });
  await call(s.couchUrl, `${nodeDb(A)}/system:gone?rev=${gone.body._rev}`, { method: 'DELETE', auth: s.adminAuth });
  const rev2 = await put(A, sys('web', 'tpl-a', { labels: { v: '2' } }));
  // A conflict, as two sites make one: a second branch from rev1.
  const branch = { ...sys('web', 'tpl-a', { labels: { v: 'other' } }), _rev: `2-${'b'.repeat(32)}`, _revisions: { start: 2, ids: ['b'.repeat(32), rev1.split('-')[1]] } };
  t.is((await call(s.couchUrl, `${nodeDb(A)}/_bulk_docs`, { method: 'POST', auth: s.adminAuth, json: { docs: [branch], new_edits: false } })).status, 201);

  const b = await exportTo(A);
  t.is(b.blobs, 1, 'two templates with the same tarball: one blob');
  t.deepEqual(b.templates, ['tpl-a', 'tpl-same'], 'the templates of current systems (not of the deleted one)');
  t.true(b.bytes > tarBytes.length && b.bytes < tarBytes.length * 1.1, `bundle of ${b.bytes} bytes carries the 300 kB tar once`);

  const d = device(A, PASSWORD);
  const r1 = await importOnDevice(d, b.file);
  t.true(r1.written > 0);
  const web = (await d.db.get('system:web', { conflicts: true, revs: true })) as unknown as { _rev: string; _conflicts: string[]; _revisions: { ids: string[] } };
  const serverWeb = (await call(s.couchUrl, `${nodeDb(A)}/system:web?conflicts=true`, { auth: s.adminAuth })).body;
  t.is(web._rev, serverWeb._rev, 'the same winner as CouchDB picks');
  t.deepEqual(web._conflicts, serverWeb._conflicts);
  t.true([rev2, branch._rev].includes(web._rev));
  t.is(web._revisions.ids.length, 2, 'the history travelled');
  t.is(await d.db.get('system:gone').then(() => 'there', (e: { reason?: string }) => e.reason), 'deleted', 'the deletion travelled as a tombstone');
  const att = (await d.catalog.getAttachment('template:tpl-same', 'rootfs.tar')) as Buffer;
  t.is(createHash('sha256').update(att).digest('hex'), tarSha);
  t.is(((await d.catalog.getAttachment('template:tpl-a', 'rootfs.tar')) as Buffer).length, tarBytes.length);

  const before = await allDocs(d.db);
  const r2 = await importOnDevice(d, b.file);
  t.is(r2.written, 0);
  t.is(r2.present, r1.docs);
  t.deepEqual(await allDocs(d.db), before, 'importing the same bundle twice changes nothing');
});

test.serial('checkpoints: the next export carries only what changed, and no template again; an older bundle after a newer loses nothing', async (t) => {
  const full = await exportTo(A);
  const d = device(A, PASSWORD);
  await importOnDevice(d, full.file);
  const idle = await exportTo(A, full.checkpoint);
  t.is(idle.docs, 0, 'nothing changed: nothing carried');
  t.is(idle.blobs, 0);
  const rev = await put(A, sys('web', 'tpl-a', { labels: { v: '3' } }));
  const delta = await exportTo(A, idle.checkpoint);
  t.is(delta.docs, 2, 'both leaves of the changed document (it is in conflict), as _changes?style=all_docs lists them');
  t.is(delta.blobs, 0, 'the template was sent before and did not change');
  t.is((await importOnDevice(d, delta.file)).written, 1);
  t.is(((await d.db.get('system:web')) as { _rev: string })._rev, rev);
  // The older full bundle after the newer delta: merged, the winner stays.
  t.is((await importOnDevice(d, full.file)).written, 0);
  t.is(((await d.db.get('system:web')) as { _rev: string })._rev, rev);
  // A template edited (same tarball): its document travels again, its blob does not.
  const cat = s.admin.use('anybios');
  const tpl = await cat.get('template:tpl-a');
  await cat.insert({ ...tpl, description: 'edited' } as never);
  const delta2 = await exportTo(A, delta.checkpoint);
  t.is(delta2.docs, 1);
  t.is(delta2.blobs, 0);
  t.is((await importOnDevice(d, delta2.file)).written, 1, 'the device has the blob: the stub resolves');
  t.is(((await d.catalog.getAttachment('template:tpl-a', 'rootfs.tar')) as Buffer).length, tarBytes.length);
  // A device that never got the blob cannot take that delta: refused before anything is written.
  await expectRefused(t, device(A, PASSWORD), delta2.file, 'BUNDLE_MISSING_ATTACHMENT', /neither in this bundle nor on this device/);
  // The checkpoint is node-bound.
  await t.throwsAsync(exportTo(B, full.checkpoint), { message: /belongs to node/ });
  await t.throwsAsync(exportTo(A, 'cp1.garbage'), { message: /damaged/ });
});

async function expectRefused(t: import('ava').ExecutionContext, d: DeviceBundleContext, file: string, code: string, message: RegExp): Promise<void> {
  const before = [await allDocs(d.db), await allDocs(d.catalog)];
  const err = await t.throwsAsync(importOnDevice(d, file));
  t.is((err as { code?: string }).code, code, err?.message);
  t.regex(err!.message, message);
  t.deepEqual([await allDocs(d.db), await allDocs(d.catalog)], before, 'nothing written');
}

test.serial('refused with a precise error and nothing written: altered, cut short, for another node, not a bundle', async (t) => {
  const b = await exportTo(A);
  const bytes = readFileSync(b.file);
  const d = device(A, PASSWORD);
  // a changed character in a document
  const text = bytes.toString('latin1');
  const i = text.indexOf('"tpl-a"');
  const altered = Buffer.from(bytes);
  altered.write('"tpl-b"', i, 'latin1');
  writeFileSync(join(work, 'altered.bundle'), altered);
  await expectRefused(t, d, join(work, 'altered.bundle'), 'BUNDLE_MAC_MISMATCH', /MAC does not match/);
  // a changed byte inside the blob
  const inBlob = Buffer.from(bytes);
  const blobAt = bytes.indexOf('{"t":"blob"') + 200;
  inBlob[blobAt] ^= 1;
  writeFileSync(join(work, 'blob.bundle'), inBlob);
  await expectRefused(t, d, join(work, 'blob.bundle'), 'BUNDLE_MAC_MISMATCH', /sha256/);
  // cut short: inside the blob, before the MAC, and just the MAC line missing
  for (const [cut, re] of [[blobAt, /inside blob/], [bytes.length - 80, /inside the record after \d+ documents and 1 blobs/], [bytes.lastIndexOf('MAC '), /before its MAC line/]] as const) {
    writeFileSync(join(work, 'cut.bundle'), bytes.subarray(0, cut));
    await expectRefused(t, d, join(work, 'cut.bundle'), 'BUNDLE_TRUNCATED', re);
  }
  // for another node
  const other = device(B, PASSWORD_B);
  await expectRefused(t, other, b.file, 'BUNDLE_WRONG_NODE', new RegExp(`for node ${A}; this device is node ${B}`));
  // the right node id with the wrong password (a bundle made with another credential)
  const wrongKey = device(A, 'not-the-password');
  await expectRefused(t, wrongKey, b.file, 'BUNDLE_MAC_MISMATCH', /another credential/);
  writeFileSync(join(work, 'junk.bundle'), 'hello\n');
  await expectRefused(t, d, join(work, 'junk.bundle'), 'BUNDLE_NOT_A_BUNDLE', /not an anybios bundle/);
  // and the device still takes the real one
  t.true((await importOnDevice(d, b.file)).written > 0);
});

/** A bundle with a correct MAC (an attacker holding the node's credential) and hostile records. */
async function forged(node: string, password: string, origin: 'server' | 'node', records: { db: 'node' | 'catalog'; doc: Record<string, unknown> }[], raw?: string): Promise<string> {
  const params = { scheme: 'pbkdf2' as const, prf: 'sha256', iterations: 1000, salt: 'abcdef' };
  const file = join(work, `forged-${seq++}.bundle`);
  const out = createWriteStream(file);
  const w = new BundleWriter(out, await keyFromPassword(password, params, node), { node, origin, created: new Date().toISOString(), key: params, since: null });
  for (const r of records) await w.doc(r.db, r.doc);
  await (w as unknown as { started: Promise<void> }).started; // the header is out
  if (raw) out.write(raw);
  await w.end('cp1.x');
  await new Promise<void>((res) => out.end(() => res()));
  return file;
}
const revd = (doc: Record<string, unknown>, hash = 'a'.repeat(32)) => ({ ...doc, _rev: `1-${hash}`, _revisions: { start: 1, ids: [hash] } });

test.serial('hostile content with a valid MAC is refused by the rules, all or nothing', async (t) => {
  const d = device(A, PASSWORD);
  const good = revd(sys('fine', 'host'));
  const cases: [string, Record<string, unknown>, 'node' | 'catalog', RegExp][] = [
    ['privileged', revd(sys('root', 'host', { privileged: true })), 'node', /privileged/],
    ['another node\'s heartbeat', revd({ _id: 'node:someone-else', type: 'node', name: 'someone-else' }), 'node', /holds node:/],
    ['a design document', revd({ _id: '_design/evil', validate_doc_update: 'function(){}' }), 'node', /node database holds/],
    ['a template in the node database', revd({ _id: 'template:x', type: 'template', name: 'x', source: 'host' }), 'node', /node database holds/],
    ['a system in the catalog', revd(sys('x', 'host')), 'catalog', /catalog copy holds/],
    ['a schema error', revd(sys('bad', 'host', { kind: 'vm' })), 'node', /\/kind must be one of/],
  ];
  for (const [what, doc, db, re] of cases) {
    const file = await forged(A, PASSWORD, 'server', [{ db: 'node', doc: good }, { db, doc }]);
    const before = await allDocs(d.db);
    const err = await t.throwsAsync(importOnDevice(d, file), undefined, what);
    t.is((err as { code?: string }).code, 'BUNDLE_REFUSED', what);
    t.regex(err!.message, re, what);
    t.deepEqual(await allDocs(d.db), before, `${what}: nothing written, not even the good document`);
  }
  // structure: attachment names, deep JSON, missing history
  const structural: [string, Record<string, unknown>, RegExp][] = [
    ['attachment path', { ...good, _attachments: { '../../etc/passwd': { stub: true, sha256: 'a'.repeat(64), length: 1, content_type: 'x' } } }, /attachment name/],
    ['inline attachment data', { ...good, _attachments: { 'rootfs.tar': { data: 'AAAA', content_type: 'x' } } }, /stub:true/],
    ['no _revisions', { ...sys('x', 'host'), _rev: '1-abc' }, /_revisions is required/],
    ['history not ending in _rev', { ...sys('x', 'host'), _rev: '2-abc', _revisions: { start: 2, ids: ['def', 'abc'] } }, /ids\[0\]/],
    ['deep JSON', { ...good, labels: JSON.parse('['.repeat(100) + ']'.repeat(100)) }, /nests deeper/],
  ];
  for (const [what, doc, re] of structural) {
    const file = await forged(A, PASSWORD, 'server', [{ db: 'node', doc }]);
    const err = await t.throwsAsync(importOnDevice(d, file), undefined, what);
    t.is((err as { code?: string }).code, 'BUNDLE_MALFORMED', `${what}: ${err?.message}`);
    t.regex(err!.message, re, what);
  }
  // sizes: a blob claiming a terabyte, a record longer than 8 MiB — refused at that record, nothing read beyond
  for (const [what, raw, re] of [
    ['huge blob', `{"t":"blob","sha256":"${'a'.repeat(64)}","length":1099511627776}\n`, /blob\.length must be an integer from 0 to/],
    ['huge record', `{"t":"doc","db":"node","doc":{"_id":"system:x","pad":"${'x'.repeat(9 * 1024 * 1024)}"}}\n`, /longer than 8388608 bytes/],
  ] as const) {
    const file = await forged(A, PASSWORD, 'server', [], raw);
    const err = await t.throwsAsync(importOnDevice(d, file), undefined, what);
    t.is((err as { code?: string }).code, 'BUNDLE_TOO_LARGE', `${what}: ${err?.message}`);
    t.regex(err!.message, re, what);
  }
  const local = await forged(A, PASSWORD, 'server', [{ db: 'node', doc: revd({ _id: '_local/x' }) }]);
  t.regex((await t.throwsAsync(importOnDevice(d, local)))!.message, /local documents never travel/);
  // a node's own bundle is not for the device, and a server's not for the server
  const mine = await forged(A, PASSWORD, 'node', [{ db: 'node', doc: good }]);
  t.is((await t.throwsAsync(importOnDevice(d, mine)))!.message.includes('import it on the server'), true);
  t.deepEqual(await allDocs(d.db), []);
});

test.serial('node → server: status and heartbeat come back; the server applies the node\'s own rules (validate_doc_update as node-<id>)', async (t) => {
  const d = device(A, PASSWORD);
  await t.throwsAsync(deviceExport(d), { message: /import a bundle from the server first/ });
  // Online once, the node learns its key parameters from its own _users document (only if they fit its password).
  t.false(await learnKeyParams({ ...d, password: 'wrong' }, s.url, `node-${A}`));
  if (!(await ownUserDocReadable(s, 'node'))) {
    // Apache CouchDB's stock admin-only _users (users_db_security_editable = false): the node cannot read
    // its user document, so it never learns its key and cannot export (docs/production.md).
    t.false(await learnKeyParams(d, s.url, `node-${A}`));
    await t.throwsAsync(deviceExport(d), { message: /import a bundle from the server first/ });
    return;
  }
  t.true(await learnKeyParams(d, s.url, `node-${A}`));
  t.false(await learnKeyParams(d, s.url, `node-${A}`), 'nothing new the second time');
  t.is((await deviceExport(d)).docs, 0, 'it can export now (nothing to say yet)');
  const full = await exportTo(A);
  await importOnDevice(d, full.file);
  await d.db.put({ _id: 'status:web', type: 'status', name: 'web', phase: 'running', updated: new Date().toISOString(), history: [{ at: new Date().toISOString(), phase: 'running', exitCode: null, code: null, message: '' }] });
  await d.db.put({ _id: `node:${A}`, type: 'node', name: A, heartbeat: new Date().toISOString() });
  const back = await deviceExport(d);
  // Cut short or altered on the way: refused, nothing written on the server.
  const bytes = readFileSync(back.file);
  writeFileSync(join(work, 'back-cut.bundle'), bytes.subarray(0, bytes.length - 30));
  t.is((await t.throwsAsync(importNodeBundle(http, join(work, 'back-cut.bundle'))) as { code?: string }).code, 'BUNDLE_TRUNCATED');
  const altered = Buffer.from(bytes);
  altered.write('"failed" ', bytes.indexOf('"running"'), 'latin1');
  writeFileSync(join(work, 'back-altered.bundle'), altered);
  t.is((await t.throwsAsync(importNodeBundle(http, join(work, 'back-altered.bundle'))) as { code?: string }).code, 'BUNDLE_MAC_MISMATCH');
  t.is((await call(s.couchUrl, `${nodeDb(A)}/status:web`, { auth: s.adminAuth })).status, 404, 'nothing written');
  const r = await importNodeBundle(http, back.file);
  t.is(r.node, A);
  t.is(r.imported, full.checkpoint, 'the server learns which of its bundles the node has');
  t.true(r.written >= 2);
  const st = (await call(s.couchUrl, `${nodeDb(A)}/status:web`, { auth: s.adminAuth })).body;
  t.is(st.phase, 'running');
  t.is(st.history.length, 1);
  t.is((await importNodeBundle(http, back.file)).written, 0, 'twice changes nothing');
  // incremental the other way too
  const next = await deviceExport(d, back.checkpoint);
  t.is(next.docs, 0);
  // The node's own rules: a privileged system from the node, another node's heartbeat: refused, nothing written.
  for (const [doc, re] of [[revd(sys('root', 'host', { privileged: true }), 'c'.repeat(32)), /privileged/], [revd({ _id: 'node:other', type: 'node', name: 'other' }, 'd'.repeat(32)), /holds only node:/]] as const) {
    const params = (await http.get<{ salt: string; iterations: number; pbkdf2_prf: string }>(`/_users/org.couchdb.user:node-${A}`));
    const key = { scheme: 'pbkdf2' as const, prf: params.pbkdf2_prf, iterations: params.iterations, salt: params.salt };
    const file = join(work, `hostile-${seq++}.bundle`);
    const out = createWriteStream(file);
    const w = new BundleWriter(out, await keyFromPassword(PASSWORD, key, A), { node: A, origin: 'node', created: new Date().toISOString(), key, since: null });
    await w.doc('node', revd({ _id: 'status:ok', type: 'status', name: 'ok', phase: 'running', updated: new Date().toISOString() }, 'e'.repeat(32)));
    await w.doc('node', doc);
    await w.end('cp1.x');
    await new Promise<void>((res) => out.end(() => res()));
    const err = await t.throwsAsync(importNodeBundle(http, file));
    t.is((err as { code?: string }).code, 'BUNDLE_REFUSED');
    t.regex(err!.message, re);
    t.is((await call(s.couchUrl, `${nodeDb(A)}/status:ok`, { auth: s.adminAuth })).status, 404, 'nothing written');
  }
  // A server bundle is not imported on the server; B's credential cannot speak for A.
  await t.throwsAsync(importNodeBundle(http, full.file), { message: /import it on that node/ });
  const fake = await forged(A, PASSWORD_B, 'node', []);
  await t.throwsAsync(importNodeBundle(http, fake), { message: /another password|MAC/ });
  t.true(statSync(back.file).size > 0);
});

test.serial('the CLI with no agent running: import and export on the node database directly, then on the server', async (t) => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { mkdirSync } = await import('node:fs');
  const { CLI } = await import('../helpers/server.ts');
  const run = promisify(execFile);
  const dataDir = join(work, 'cli-node');
  mkdirSync(join(dataDir, 'agent'), { recursive: true });
  writeFileSync(join(dataDir, 'agent', 'credentials.json'), JSON.stringify({ server: 'http://127.0.0.1:1', node: A, user: `node-${A}`, password: PASSWORD }), { mode: 0o600 });
  const conn = ['--url', s.url, '--user', 'admin', '--password', s.adminPassword];
  const file = join(work, 'cli.bundle');
  const ex = await run(process.execPath, [CLI, 'export', '--node', A, '-o', file, ...conn]);
  t.regex(ex.stdout, /^wrote .*cli\.bundle: node .*, \d+ documents, 1 blobs, \d+ bytes\ncheckpoint: cp1\./);
  const im = JSON.parse((await run(process.execPath, [CLI, 'import', file, '--data', dataDir, '--json'])).stdout);
  t.like(im, { via: 'database', node: A });
  t.true(im.written > 0);
  const back = join(work, 'cli-back.bundle');
  const ex2 = await run(process.execPath, [CLI, 'export', '--data', dataDir, '-o', back]);
  t.regex(ex2.stdout, /checkpoint: cp1\./);
  const im2 = await run(process.execPath, [CLI, 'import', back, ...conn]);
  t.regex(im2.stdout, new RegExp(`imported .* into node ${A}: \\d+ new revisions written`));
  // A failed export leaves no file behind (the .part is removed), and says why.
  const bad = await run(process.execPath, [CLI, 'export', '--node', 'no-such-node', '-o', join(work, 'none.bundle'), ...conn]).catch((e) => e);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /anybios: BUNDLE_KEY_UNKNOWN: there is no node no-such-node/);
  t.throws(() => statSync(join(work, 'none.bundle.part')));
  t.throws(() => statSync(join(work, 'none.bundle')));
});
