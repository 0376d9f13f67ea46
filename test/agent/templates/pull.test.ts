// The puller against a real server process over HTTP: a kept part is resumed with Range (only for the
// same attachment bytes), the whole file is checked by sha256, a mismatch is discarded and not fetched
// again until the template changes.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TemplatePuller, type AttachmentMeta } from '../../../agent/templates/pull.ts';
import { call, removeDataDir, startServer, uniq, type TestServer } from '../../helpers/server.ts';
import { eventually } from '../../helpers/wait.ts';

let s: TestServer;
const name = uniq('pull');
const bytes = randomBytes(3 * 1024 * 1024 + 17);
const sha256 = createHash('sha256').update(bytes).digest('hex');
let meta: AttachmentMeta;

test.before(async () => {
  s = await startServer();
  const put = await call(s.couchUrl, `/anybios/template:${name}`, { method: 'PUT', auth: s.adminAuth, json: { type: 'template', name, source: 'tar', sha256 } });
  const up = await fetch(`${s.couchUrl}/anybios/template:${name}/rootfs.tar?rev=${put.body.rev}`, { method: 'PUT', headers: { Authorization: s.adminAuth, 'Content-Type': 'application/x-tar' }, body: bytes });
  if (up.status !== 201) throw new Error(await up.text());
  const doc = (await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth })).body;
  meta = { name, sha256, length: doc._attachments['rootfs.tar'].length, digest: doc._attachments['rootfs.tar'].digest };
});
test.after.always(async () => {
  if (!s) return;
  await s.stop();
  removeDataDir(s.dataDir);
});

function puller(t: { teardown(fn: () => Promise<void> | void): void }): { p: TemplatePuller; logs: string[]; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'anybios-pull-test-'));
  const logs: string[] = [];
  const p = new TemplatePuller({ dataDir: dir, catalogUrl: () => `${s.couchUrl}/anybios`, auth: { username: 'admin', password: s.adminPassword }, reserveBytes: 0, onChange: () => {}, log: (m) => logs.push(m) });
  t.teardown(async () => {
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { p, logs, dir };
}
const tpl = (sha = sha256) => ({ _id: `template:${name}`, type: 'template' as const, name, source: 'tar' as const, sha256: sha });

test('a kept part of the same bytes is resumed with Range and the whole file verified', async (t) => {
  const { p, logs, dir } = puller(t);
  const paths = p.paths;
  mkdirSync(paths.dir, { recursive: true });
  const half = Math.floor(bytes.length / 2);
  writeFileSync(paths.part(sha256), bytes.subarray(0, half));
  writeFileSync(paths.partMeta(sha256), JSON.stringify({ digest: meta.digest }));
  t.truthy(p.blocked(tpl()), 'not ready before the pull');
  p.want([meta]);
  await eventually('pulled', async () => p.tarballOf(tpl()), (x) => !!x, { context: () => logs.join('\n') });
  t.is(p.resumed, 1);
  t.true(logs.some((l) => l.includes('resuming the pull at')));
  t.deepEqual(readFileSync(paths.tar(sha256)), bytes);
  t.false(existsSync(paths.part(sha256)));
  t.is(p.blocked(tpl()), undefined);
  t.false(existsSync(join(dir, 'templates')), 'the puller never unpacks: the runtime does');
});

test('a part of other bytes (another digest) is not resumed: the pull starts from zero', async (t) => {
  const { p, logs } = puller(t);
  mkdirSync(p.paths.dir, { recursive: true });
  writeFileSync(p.paths.part(sha256), randomBytes(1000));
  writeFileSync(p.paths.partMeta(sha256), JSON.stringify({ digest: 'md5-other' }));
  p.want([meta]);
  await eventually('pulled', async () => p.tarballOf(tpl()), (x) => !!x, { context: () => logs.join('\n') });
  t.is(p.resumed, 0);
  t.deepEqual(readFileSync(p.paths.tar(sha256)), bytes);
});

test('bytes that do not match the sha256 are discarded and not fetched again until the template changes', async (t) => {
  const { p, logs } = puller(t);
  const wrong = 'f'.repeat(64);
  p.want([{ ...meta, sha256: wrong }]);
  const b = await eventually('refused', async () => p.blocked(tpl(wrong)), (x) => x?.code === 'TEMPLATE_PULL_FAILED', { context: () => logs.join('\n') });
  t.regex(b!.message, /has sha256 [0-9a-f]{64}, the template says f{64} \(discarded\); not pulled again until the template changes/);
  t.false(existsSync(p.paths.part(wrong)));
  t.false(existsSync(p.paths.tar(wrong)));
  p.kick(); // the server coming back does not retry a verdict on these bytes
  await new Promise((r) => setTimeout(r, 300));
  t.is(logs.filter((l) => l.includes('TEMPLATE_PULL_FAILED')).length, 1);
  t.is(p.report().errors[name]?.code, 'TEMPLATE_PULL_FAILED');
});

test('an unreachable catalog is a pull failure with back-off, and the state says so', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'anybios-pull-test-'));
  const logs: string[] = [];
  // a port nobody listens on: bind one, then close it
  const net = await import('node:net');
  const port = await new Promise<number>((r) => { const srv = net.createServer().listen(0, '127.0.0.1', () => { const q = (srv.address() as { port: number }).port; srv.close(() => r(q)); }); });
  const p = new TemplatePuller({ dataDir: dir, catalogUrl: () => `http://127.0.0.1:${port}/db/anybios`, auth: { username: 'x', password: 'y' }, reserveBytes: 0, onChange: () => {}, log: (m) => logs.push(m) });
  t.teardown(async () => { await p.stop(); rmSync(dir, { recursive: true, force: true }); });
  p.want([meta]);
  const b = await eventually('failed', async () => p.blocked(tpl()), (x) => x?.code === 'TEMPLATE_PULL_FAILED');
  t.regex(b!.message, /cannot reach the catalog: ECONNREFUSED; next try in \d+ s/);
  t.true(logs.length >= 1);
});
