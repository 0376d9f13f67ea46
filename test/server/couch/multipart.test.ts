// Multipart both ways on the embedded CouchDB, as Apache CouchDB 3.5's replicator uses it (issue 11):
// `GET ?open_revs=…` with `Accept: multipart/mixed` (a revision with attachments as a nested
// multipart/related part, `atts_since` honoured, missing revisions as error parts), `GET ?attachments=true`
// with `Accept: multipart/related`, and `PUT` of a `multipart/related` document (new_edits=false and
// plain), with the body limits and quotas still applying. Real server over HTTP; the multipart answers
// are taken apart by the small reader below, written apart from the server's parser.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { basic, call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';
import { RawConn, requestHead } from '../../helpers/raw-http.ts';

let server: TestServer;
const servers: TestServer[] = [];

test.before(async () => {
  server = await startServer({ embedded: true, args: ['--limit', 'maxBody=1MiB', '--limit', 'bodyIdleTimeoutMs=1500'] });
  servers.push(server);
  const users = server.admin.use('_users');
  for (const name of ['mp-member', 'mp-stranger']) await users.insert({ _id: `org.couchdb.user:${name}`, type: 'user', name, roles: [], password: `${name}-pw` } as never);
});

test.after.always(async () => {
  for (const s of servers) {
    await s.stop();
    removeDataDir(s.dataDir);
  }
});

const member = () => basic('mp-member', 'mp-member-pw');
const stranger = () => basic('mp-stranger', 'mp-stranger-pw');
const md5 = (b: Buffer) => `md5-${createHash('md5').update(b).digest('base64')}`;
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

async function freshDb(base: string): Promise<string> {
  const db = uniq(base);
  await server.admin.db.create(db);
  await call(server.couchUrl, `/${db}/_security`, { method: 'PUT', auth: server.adminAuth, json: { admins: { names: [], roles: [] }, members: { names: ['mp-member'], roles: [] } } });
  return db;
}

async function raw(path: string, init: RequestInit & { auth?: string } = {}): Promise<{ status: number; type: string; headers: Headers; body: Buffer }> {
  const headers = new Headers(init.headers);
  headers.set('Authorization', init.auth ?? server.adminAuth);
  const r = await fetch(server.couchUrl + path, { ...init, headers });
  return { status: r.status, type: r.headers.get('content-type') ?? '', headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

interface Part { headers: Record<string, string>; body: Buffer }

/** The boundary of a multipart Content-Type (quoted or not). */
function boundaryIn(type: string): string {
  const m = /boundary="?([^";]+)"?/.exec(type);
  if (!m) throw new Error(`no boundary in ${type}`);
  return m[1];
}

/** Takes apart a body laid out as CouchDB writes it: `--B`, then per part `\r\nheaders\r\n\r\nbody\r\n--B`, then `--`. */
function parts(body: Buffer, boundary: string): Part[] {
  const open = Buffer.from(`--${boundary}`);
  if (!body.subarray(0, open.length).equals(open)) throw new Error(`body does not start with --${boundary}: ${body.subarray(0, 60).toString()}`);
  const delim = Buffer.from(`\r\n--${boundary}`);
  const out: Part[] = [];
  let at = open.length;
  while (body.toString('latin1', at, at + 2) !== '--') {
    const headEnd = body.indexOf('\r\n\r\n', at);
    const headers: Record<string, string> = {};
    for (const line of body.toString('latin1', at, headEnd).split('\r\n').filter(Boolean)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    const end = body.indexOf(delim, headEnd + 4);
    if (end < 0) throw new Error('unterminated part');
    out.push({ headers, body: body.subarray(headEnd + 4, end) });
    at = end + delim.length;
  }
  return out;
}

/** A `multipart/related` document body as CouchDB's replicator writes one (couch_doc doc_to_multi_part_stream). */
function related(boundary: string, doc: unknown, atts: { name: string; type: string; data: Buffer; encoding?: string }[]): Buffer {
  const chunks: Buffer[] = [Buffer.from(`--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(doc)}\r\n--${boundary}`)];
  for (const a of atts) {
    chunks.push(Buffer.from(`\r\nContent-Disposition: attachment; filename="${a.name}"\r\nContent-Type: ${a.type}\r\nContent-Length: ${a.data.length}\r\n${a.encoding ? `Content-Encoding: ${a.encoding}\r\n` : ''}\r\n`), a.data, Buffer.from(`\r\n--${boundary}`));
  }
  chunks.push(Buffer.from('--'));
  return Buffer.concat(chunks);
}

const putRelated = (path: string, body: Buffer, boundary: string, auth = server.adminAuth, type = `multipart/related; boundary="${boundary}"`) =>
  call(server.couchUrl, path, { method: 'PUT', auth, headers: { 'Content-Type': type }, body });

/** A document with two attachments over two revisions, and a design document without any. */
async function fixture(t: { is: (a: unknown, b: unknown, m?: string) => void }, db: string) {
  const text = Buffer.from('hello, attachment one\n');
  const bin = randomBytes(70_000);
  const r1 = await call(server.couchUrl, `/${db}/doc`, { method: 'PUT', auth: server.adminAuth, json: { v: 1, _attachments: { 'one.txt': { content_type: 'text/plain', data: b64(text) } } } });
  t.is(r1.status, 201, r1.text);
  const r2 = await call(server.couchUrl, `/${db}/doc/two.bin?rev=${r1.body.rev}`, { method: 'PUT', auth: server.adminAuth, headers: { 'Content-Type': 'application/octet-stream' }, body: bin });
  t.is(r2.status, 201, r2.text);
  const dd = await call(server.couchUrl, `/${db}/_design/app`, { method: 'PUT', auth: server.adminAuth, json: { views: { all: { map: 'function (doc) { emit(doc._id, null); }' } } } });
  t.is(dd.status, 201, dd.text);
  return { text, bin, rev1: r1.body.rev as string, rev2: r2.body.rev as string, ddocRev: dd.body.rev as string };
}

// ---------------------------------------------------------------------------------------------------
// GET: open_revs as multipart/mixed, attachments=true as multipart/related

test('open_revs with Accept: multipart/mixed: CouchDB\'s layout, attachment bodies nested, missing revisions as error parts', async (t) => {
  const db = await freshDb('mp-openrevs');
  const f = await fixture(t, db);
  const missing = `3-${'e'.repeat(32)}`;
  const r = await raw(`/${db}/doc?revs=true&latest=true&open_revs=${encodeURIComponent(JSON.stringify([f.rev2, missing]))}`, { headers: { Accept: 'multipart/mixed' } });
  t.is(r.status, 200);
  t.regex(r.type, /^multipart\/mixed; boundary="[0-9a-f]{32}"$/);
  t.is(r.headers.get('transfer-encoding'), 'chunked');
  const outer = boundaryIn(r.type);
  t.true(r.body.toString('latin1').endsWith(`\r\n--${outer}--`), 'closed by --boundary-- without a trailing line end, as CouchDB');
  const [docPart, missingPart, ...rest] = parts(r.body, outer);
  t.is(rest.length, 0);
  t.regex(docPart.headers['content-type'], /^multipart\/related; boundary="[0-9a-f]{32}"$/);
  const inner = parts(docPart.body, boundaryIn(docPart.headers['content-type']));
  t.is(inner.length, 3);
  t.is(inner[0].headers['content-type'], 'application/json');
  const doc = JSON.parse(inner[0].body.toString());
  t.deepEqual(Object.keys(doc), ['_id', '_rev', 'v', '_revisions', '_attachments'], 'CouchDB member order');
  t.is(doc._rev, f.rev2);
  t.deepEqual(doc._revisions, { start: 2, ids: [f.rev2.slice(2), f.rev1.slice(2)] });
  t.deepEqual(doc._attachments['one.txt'], { content_type: 'text/plain', revpos: 1, digest: md5(f.text), length: f.text.length, follows: true });
  t.deepEqual(doc._attachments['two.bin'], { content_type: 'application/octet-stream', revpos: 2, digest: md5(f.bin), length: f.bin.length, follows: true });
  t.deepEqual(inner[1].headers, { 'content-disposition': 'attachment; filename="one.txt"', 'content-type': 'text/plain', 'content-length': String(f.text.length) });
  t.true(inner[1].body.equals(f.text));
  t.is(inner[2].headers['content-disposition'], 'attachment; filename="two.bin"');
  t.true(inner[2].body.equals(f.bin), 'binary attachment byte for byte');
  t.is(missingPart.headers['content-type'], 'application/json; error="true"');
  t.deepEqual(JSON.parse(missingPart.body.toString()), { missing });
});

test('open_revs=all multipart: a design document (no attachments) is an application/json part', async (t) => {
  const db = await freshDb('mp-ddoc');
  const f = await fixture(t, db);
  const r = await raw(`/${db}/_design/app?revs=true&open_revs=all&latest=true`, { headers: { Accept: 'multipart/mixed' } });
  t.is(r.status, 200);
  const [p, ...rest] = parts(r.body, boundaryIn(r.type));
  t.is(rest.length, 0);
  t.is(p.headers['content-type'], 'application/json');
  const doc = JSON.parse(p.body.toString());
  t.is(doc._id, '_design/app');
  t.is(doc._rev, f.ddocRev);
  t.truthy(doc.views.all.map);
});

test('atts_since: only attachments newer than the caller\'s revision are sent, the others are stubs', async (t) => {
  const db = await freshDb('mp-since');
  const f = await fixture(t, db);
  const since = encodeURIComponent(JSON.stringify([f.rev1]));
  const r = await raw(`/${db}/doc?revs=true&open_revs=${encodeURIComponent(JSON.stringify([f.rev2]))}&atts_since=${since}`, { headers: { Accept: 'multipart/mixed' } });
  const [p] = parts(r.body, boundaryIn(r.type));
  const inner = parts(p.body, boundaryIn(p.headers['content-type']));
  t.is(inner.length, 2, 'the JSON and two.bin only');
  const doc = JSON.parse(inner[0].body.toString());
  t.deepEqual(doc._attachments['one.txt'], { content_type: 'text/plain', revpos: 1, digest: md5(f.text), length: f.text.length, stub: true });
  t.is(doc._attachments['two.bin'].follows, true);
  t.true(inner[1].body.equals(f.bin));
  // Already has rev2: nothing follows, and the part is plain JSON.
  const none = await raw(`/${db}/doc?open_revs=${encodeURIComponent(JSON.stringify([f.rev2]))}&atts_since=${encodeURIComponent(JSON.stringify([f.rev2]))}`, { headers: { Accept: 'multipart/mixed' } });
  const [q] = parts(none.body, boundaryIn(none.type));
  t.is(q.headers['content-type'], 'application/json');
  t.is(JSON.parse(q.body.toString())._attachments['two.bin'].stub, true);
  // JSON with atts_since: inline data for the newer attachment only (atts_since implies attachments, as in CouchDB).
  const json = await call(server.couchUrl, `/${db}/doc?atts_since=${since}`, { auth: server.adminAuth, headers: { Accept: 'application/json' } });
  t.is(json.body._attachments['one.txt'].stub, true);
  t.is(Buffer.from(json.body._attachments['two.bin'].data, 'base64').toString('hex'), f.bin.toString('hex'));
});

test('without an Accept naming multipart (none, */*, application/json) open_revs answers JSON as before', async (t) => {
  const db = await freshDb('mp-json');
  const f = await fixture(t, db);
  for (const accept of [undefined, '*/*', 'application/json', 'multipart/mixed;q=0, application/json']) {
    const r = await raw(`/${db}/doc?open_revs=all`, { headers: accept ? { Accept: accept } : {} });
    t.is(r.status, 200);
    t.regex(r.type, /^application\/json/, String(accept));
    const list = JSON.parse(r.body.toString());
    t.is(list[0].ok._rev, f.rev2);
    t.is(list[0].ok._attachments['two.bin'].stub, true);
  }
});

test('attachments=true with Accept: multipart/related: the document and its bodies, with Content-Length and ETag', async (t) => {
  const db = await freshDb('mp-related');
  const f = await fixture(t, db);
  const r = await raw(`/${db}/doc?attachments=true`, { headers: { Accept: 'multipart/related' } });
  t.is(r.status, 200);
  t.regex(r.type, /^multipart\/related; boundary="[0-9a-f]{32}"$/);
  t.is(Number(r.headers.get('content-length')), r.body.length);
  t.is(r.headers.get('etag'), `"${f.rev2}"`);
  const ps = parts(r.body, boundaryIn(r.type));
  t.is(ps.length, 3);
  t.true(ps[2].body.equals(f.bin));
  // Without attachments=true, or with JSON accepted: JSON.
  const plain = await raw(`/${db}/doc`, { headers: { Accept: 'multipart/related' } });
  t.regex(plain.type, /^application\/json/);
  const inline = await raw(`/${db}/doc?attachments=true`, { headers: { Accept: 'application/json' } });
  t.is(JSON.parse(inline.body.toString())._attachments['one.txt'].data, b64(f.text));
});

test('multipart reads follow _security: a stranger is refused, a member reads', async (t) => {
  const db = await freshDb('mp-sec');
  const f = await fixture(t, db);
  const path = `/${db}/doc?open_revs=all`;
  const no = await raw(path, { auth: stranger(), headers: { Accept: 'multipart/mixed' } });
  t.is(no.status, 403);
  t.is(JSON.parse(no.body.toString()).error, 'forbidden');
  const yes = await raw(path, { auth: member(), headers: { Accept: 'multipart/mixed' } });
  t.is(yes.status, 200);
  t.is(parts(yes.body, boundaryIn(yes.type)).length, 1);
  t.truthy(f);
});

// ---------------------------------------------------------------------------------------------------
// PUT multipart/related

test('GET multipart then PUT it with new_edits=false into another database: same revisions, same bytes (CouchDB replicator\'s round trip)', async (t) => {
  const src = await freshDb('mp-rt-src');
  const dst = await freshDb('mp-rt-dst');
  const f = await fixture(t, src);
  for (const id of ['doc', '_design/app']) {
    const r = await raw(`/${src}/${id}?revs=true&latest=true&open_revs=all`, { headers: { Accept: 'multipart/mixed' } });
    const [p] = parts(r.body, boundaryIn(r.type));
    // The part is replayed as the PUT body, as CouchDB's replicator streams it.
    const type = p.headers['content-type'];
    const put = type.startsWith('multipart/related')
      ? await call(server.couchUrl, `/${dst}/${id}?new_edits=false`, { method: 'PUT', auth: server.adminAuth, headers: { 'Content-Type': type }, body: p.body })
      : await call(server.couchUrl, `/${dst}/${id}?new_edits=false`, { method: 'PUT', auth: server.adminAuth, headers: { 'Content-Type': 'application/json' }, body: p.body });
    t.is(put.status, 201, put.text);
  }
  const got = await call(server.couchUrl, `/${dst}/doc?revs=true&attachments=true`, { auth: server.adminAuth, headers: { Accept: 'application/json' } });
  t.is(got.body._rev, f.rev2);
  t.deepEqual(got.body._revisions.ids, [f.rev2.slice(2), f.rev1.slice(2)]);
  t.is(got.body._attachments['one.txt'].data, b64(f.text));
  t.is(got.body._attachments['two.bin'].data, b64(f.bin));
  t.is(got.body._attachments['two.bin'].digest, md5(f.bin));
  t.is(got.body._attachments['two.bin'].revpos, 2, 'revpos kept, so atts_since works on the copy');
  const dd = await call(server.couchUrl, `/${dst}/_design/app`, { auth: server.adminAuth });
  t.is(dd.body._rev, f.ddocRev);
});

test('PUT multipart with a gzip-encoded attachment (as CouchDB sends compressible types): stored inflated', async (t) => {
  const db = await freshDb('mp-gzip');
  const text = Buffer.from('text that CouchDB stores compressed\n'.repeat(50));
  const gz = gzipSync(text);
  const doc = { _id: 'g', _rev: `1-${'a'.repeat(32)}`, _revisions: { start: 1, ids: ['a'.repeat(32)] }, _attachments: { 'log.txt': { content_type: 'text/plain', revpos: 1, digest: md5(gz), length: text.length, follows: true, encoding: 'gzip', encoded_length: gz.length } } };
  const r = await putRelated(`/${db}/g?new_edits=false`, related('b0undary', doc, [{ name: 'log.txt', type: 'text/plain', data: gz, encoding: 'gzip' }]), 'b0undary');
  t.is(r.status, 201, r.text);
  const att = await raw(`/${db}/g/log.txt`);
  t.true(att.body.equals(text));
});

test('plain PUT (new_edits=true) of a multipart document creates it with its attachment; an update keeps stubs', async (t) => {
  const db = await freshDb('mp-plain');
  const data = randomBytes(5000);
  const r = await putRelated(`/${db}/p`, related('xyz', { v: 1, _attachments: { 'a.bin': { content_type: 'application/octet-stream', length: data.length, follows: true } } }, [{ name: 'a.bin', type: 'application/octet-stream', data }]), 'xyz', member());
  t.is(r.status, 201, r.text);
  t.regex(r.body.rev, /^1-/);
  const more = randomBytes(10);
  // The stub as CouchDB's replicator writes one (with its digest).
  const stub = { content_type: 'application/octet-stream', revpos: 1, digest: md5(data), length: data.length, stub: true };
  const u = await putRelated(`/${db}/p?rev=${r.body.rev}`, related('xyz', { v: 2, _attachments: { 'a.bin': stub, 'b.bin': { content_type: 'application/octet-stream', length: 10, follows: true } } }, [{ name: 'b.bin', type: 'application/octet-stream', data: more }]), 'xyz', member());
  t.is(u.status, 201, u.text);
  t.true((await raw(`/${db}/p/a.bin`)).body.equals(data));
  t.true((await raw(`/${db}/p/b.bin`)).body.equals(more));
  // A stranger may not write, multipart or not.
  const no = await putRelated(`/${db}/q`, related('xyz', { v: 1 }, []), 'xyz', stranger());
  t.is(no.status, 403, no.text);
});

// ---------------------------------------------------------------------------------------------------
// Hostile multipart bodies: a precise 400 (or 413/415), never a crash or a hang

const doc1 = (length: number) => ({ _id: 'h', _rev: `1-${'b'.repeat(32)}`, _attachments: { 'a.bin': { content_type: 'application/octet-stream', length, follows: true } } });

test('hostile multipart bodies are refused with a precise reason', async (t) => {
  const db = await freshDb('mp-hostile');
  const data = Buffer.from('0123456789');
  const good = related('bnd', doc1(10), [{ name: 'a.bin', type: 'application/octet-stream', data }]);
  const cases: [string, Buffer, string | undefined, number, RegExp][] = [
    ['no boundary parameter', good, 'multipart/related', 400, /no boundary parameter/],
    ['a boundary over 70 characters', good, `multipart/related; boundary="${'x'.repeat(71)}"`, 400, /1-70 characters/],
    ['an empty boundary', good, 'multipart/related; boundary=""', 400, /1-70 characters/],
    ['a boundary that is not in the body', good, 'multipart/related; boundary="other"', 400, /never occurs/],
    ['no closing boundary', good.subarray(0, good.length - 2), undefined, 400, /closing boundary|not closed/],
    ['cut off in the middle of the attachment', good.subarray(0, good.length - 12), undefined, 400, /not closed by a boundary/],
    ['cut off in the middle of the headers', good.subarray(0, 20), undefined, 400, /no blank line after its headers/],
    ['a length that lies (JSON)', related('bnd', doc1(11), [{ name: 'a.bin', type: 'x/y', data }]), undefined, 400, /holds 10 bytes, the document says 11/],
    ['a Content-Length that lies (part header)', Buffer.from(good.toString('latin1').replace('Content-Length: 10', 'Content-Length: 9'), 'latin1'), undefined, 400, /Content-Length: 9 but holds 10 bytes/],
    ['a missing attachment part', related('bnd', doc1(10), []), undefined, 400, /0 attachment part\(s\) for 1 attachment/],
    ['an extra part', related('bnd', doc1(10), [{ name: 'a.bin', type: 'x/y', data }, { name: 'b', type: 'x/y', data }]), undefined, 400, /2 attachment part\(s\) for 1 attachment/],
    ['the boundary inside the attachment data', Buffer.from(`--bnd\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(doc1(10))}\r\n--bnd\r\n\r\n01\r\n--bnd9\r\n\r\n0123456\r\n--bnd--`), undefined, 400, /followed by "9", not a line end/],
    ['a digest that does not match', related('bnd', { ...doc1(10), _attachments: { 'a.bin': { ...doc1(10)._attachments['a.bin'], digest: md5(Buffer.from('other')) } } }, [{ name: 'a.bin', type: 'x/y', data }]), undefined, 400, /does not match its digest/],
    ['the document part is not JSON', Buffer.from('--bnd\r\nContent-Type: application/json\r\n\r\n{not json\r\n--bnd--'), undefined, 400, /not valid JSON/],
    ['the document part nests too deep', Buffer.from(`--bnd\r\nContent-Type: application/json\r\n\r\n{"a":${'['.repeat(100)}${']'.repeat(100)}}\r\n--bnd--`), undefined, 400, /nests deeper/],
    ['the document part is an array', Buffer.from('--bnd\r\nContent-Type: application/json\r\n\r\n[1]\r\n--bnd--'), undefined, 400, /must be a JSON object/],
    ['a header line without a colon', Buffer.from('--bnd\r\nContent-Type application/json\r\n\r\n{}\r\n--bnd--'), undefined, 400, /not "Name: value"/],
    ['no parts at all', Buffer.from('--bnd--'), undefined, 400, /no parts/],
    ['an unknown encoding', related('bnd', { ...doc1(10), _attachments: { 'a.bin': { ...doc1(10)._attachments['a.bin'], encoding: 'br' } } }, [{ name: 'a.bin', type: 'x/y', data }]), undefined, 415, /encoding "br" is not supported/],
    ['gzip that does not inflate', related('bnd', { ...doc1(10), _attachments: { 'a.bin': { ...doc1(10)._attachments['a.bin'], encoding: 'gzip' } } }, [{ name: 'a.bin', type: 'x/y', data }]), undefined, 400, /gzip data does not inflate/],
  ];
  for (const [what, body, type, status, reason] of cases) {
    const r = await putRelated(`/${db}/h?new_edits=false`, body, 'bnd', server.adminAuth, type ?? 'multipart/related; boundary="bnd"');
    t.is(r.status, status, `${what}: ${r.text}`);
    t.regex(String(r.body.reason), reason, what);
  }
  // The first part must be the document: CouchDB's 415.
  const notJson = await putRelated(`/${db}/h`, Buffer.from('--bnd\r\nContent-Type: text/plain\r\n\r\nhi\r\n--bnd--'), 'bnd');
  t.is(notJson.status, 415, notJson.text);
  t.deepEqual(notJson.body, { error: 'bad_content_type', reason: 'Content-Type must be application/json' });
  t.is((await call(server.couchUrl, `/${db}/h`, { auth: server.adminAuth })).status, 404, 'nothing was written');
  const ok = await putRelated(`/${db}/h?new_edits=false`, good, 'bnd');
  t.is(ok.status, 201, ok.text);
  t.true(server.alive());
});

test('a gzip bomb is refused without inflating it', async (t) => {
  const db = await freshDb('mp-bomb');
  const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024)); // 200 MiB of zeros in ~200 KiB
  const doc = { ...doc1(10), _attachments: { 'a.bin': { content_type: 'application/octet-stream', length: 10, encoded_length: bomb.length, encoding: 'gzip', follows: true } } };
  const started = Date.now();
  const r = await putRelated(`/${db}/h?new_edits=false`, related('bnd', doc, [{ name: 'a.bin', type: 'x/y', data: bomb }]), 'bnd');
  t.is(r.status, 400, r.text);
  t.regex(r.body.reason, /gzip data does not inflate/);
  t.true(Date.now() - started < 5000, `answered in ${Date.now() - started} ms`);
});

test('near-miss boundaries everywhere: answered in linear time', async (t) => {
  const db = await freshDb('mp-nearmiss');
  // 900 KiB of "\r\n--bn" (a prefix of the delimiter) inside the attachment: every byte a partial match.
  const data = Buffer.from('\r\n--bn'.repeat(150_000));
  const body = related('bnd', doc1(data.length), [{ name: 'a.bin', type: 'x/y', data }]);
  const started = Date.now();
  const r = await putRelated(`/${db}/h?new_edits=false`, body, 'bnd', member());
  t.is(r.status, 201, r.text);
  t.true(Date.now() - started < 5000, `answered in ${Date.now() - started} ms`);
  t.true((await raw(`/${db}/h/a.bin`)).body.equals(data));
  // Many tiny parts: refused past the part limit, quickly.
  const many = Buffer.from(`--bnd\r\nContent-Type: application/json\r\n\r\n{}${'\r\n--bnd\r\n\r\nx'.repeat(20_000)}\r\n--bnd--`);
  const m = await putRelated(`/${db}/many`, many, 'bnd', member());
  t.is(m.status, 400, m.text);
  t.regex(m.body.reason, /more than 10000 parts/);
});

test('body limits apply to multipart bodies: a member over maxBody gets 413 too_large; an admin gets the attachment upload limit', async (t) => {
  const db = await freshDb('mp-limit');
  const big = randomBytes(1536 * 1024); // 1.5 MiB, over this server's 1 MiB maxBody
  const body = related('bnd', { v: 1, _attachments: { 'big.bin': { content_type: 'application/octet-stream', length: big.length, follows: true } } }, [{ name: 'big.bin', type: 'application/octet-stream', data: big }]);
  const r = await putRelated(`/${db}/big`, body, 'bnd', member());
  t.is(r.status, 413, r.text.slice(0, 200));
  t.is(r.body.error, 'too_large');
  const a = await putRelated(`/${db}/big`, body, 'bnd');
  t.is(a.status, 201, a.text.slice(0, 200));
  t.true((await raw(`/${db}/big/big.bin`)).body.equals(big));
});

test('node databases: the quota\'s attachment limit and body limit hold for multipart', async (t) => {
  const s = await startServer({ embedded: true, args: ['--limit', 'nodeMaxAttachment=64KiB', '--limit', 'nodeMaxBody=256KiB'] });
  servers.push(s);
  const { addNode } = await import('../../../server/nodes.ts');
  const cred = await addNode(s.admin, uniq('mpn'));
  const auth = basic(cred.user, cred.password);
  const status = { type: 'status', name: 'x', phase: 'running', updated: new Date().toISOString() };
  const att = randomBytes(100 * 1024);
  const doc = { ...status, _attachments: { 'a.bin': { content_type: 'application/octet-stream', length: att.length, follows: true } } };
  const r = await call(s.couchUrl, `/${cred.db}/status:x`, { method: 'PUT', auth, headers: { 'Content-Type': 'multipart/related; boundary="bnd"' }, body: related('bnd', doc, [{ name: 'a.bin', type: 'application/octet-stream', data: att }]) });
  t.is(r.status, 413, r.text.slice(0, 200));
  t.is(r.body.error, 'attachment_too_large');
  const huge = randomBytes(300 * 1024);
  const h = await call(s.couchUrl, `/${cred.db}/status:x`, { method: 'PUT', auth, headers: { 'Content-Type': 'multipart/related; boundary="bnd"' }, body: related('bnd', { ...doc, _attachments: { 'a.bin': { ...doc._attachments['a.bin'], length: huge.length } } }, [{ name: 'a.bin', type: 'application/octet-stream', data: huge }]) });
  t.is(h.status, 413, h.text.slice(0, 200));
  t.is(h.body.error, 'too_large');
  t.true(s.alive());
});

test('a multipart body that stalls gets 408, one cut off by a disconnect leaves nothing behind; other requests are served meanwhile', async (t) => {
  const db = await freshDb('mp-stall');
  const body = related('bnd', { v: 1, _attachments: { 'a.bin': { content_type: 'application/octet-stream', length: 100_000, follows: true } } }, [{ name: 'a.bin', type: 'application/octet-stream', data: randomBytes(100_000) }]);
  const port = Number(new URL(server.url).port);
  const head = (id: string) => requestHead('PUT', `/db/${db}/${id}`, { Authorization: server.adminAuth, 'Content-Type': 'multipart/related; boundary="bnd"', 'Content-Length': body.length });
  const stall = new RawConn(port);
  const cut = new RawConn(port);
  t.teardown(() => { stall.destroy(); cut.destroy(); });
  await Promise.all([stall.connected(), cut.connected()]);
  stall.write(head('stalled'));
  stall.write(body.subarray(0, 30_000));
  cut.write(head('cut'));
  cut.write(body.subarray(0, 50_000));
  cut.destroy();
  // Meanwhile the server answers others at once.
  const started = Date.now();
  t.is((await call(server.couchUrl, `/${db}`, { auth: server.adminAuth })).status, 200);
  t.true(Date.now() - started < 1000);
  const r = await stall.response(10_000);
  t.is(r?.status, 408, r?.head ?? 'no answer');
  t.is(r!.json.error, 'request_timeout');
  for (const id of ['stalled', 'cut']) t.is((await call(server.couchUrl, `/${db}/${id}`, { auth: server.adminAuth })).status, 404, id);
});
