// `anybios template ls|get|rm|add` against a real server process: a tar template from a directory or a
// tarball (document + rootfs.tar attachment with the right sha256), precise refusals, idempotent re-add.
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, call, external, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';

const run = promisify(execFile);
let s: TestServer;
const work = mkdtempSync(join(tmpdir(), 'anybios-cli-template-'));
const name = uniq('tpl');

test.before(async () => {
  s = await startServer();
});
test.after.always(async () => {
  if (s) {
    const cur = await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth });
    if (cur.status === 200) await call(s.couchUrl, `/anybios/template:${name}?rev=${cur.body._rev}`, { method: 'DELETE', auth: s.adminAuth });
    await s.stop();
    removeDataDir(s.dataDir);
  }
  rmSync(work, { recursive: true, force: true });
});

const cli = async (...args: string[]) => {
  try {
    const r = await run(process.execPath, [CLI, 'template', ...args, '--url', s.url, '--password', s.adminPassword]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

test.serial('add from a directory: the document carries the sha256 of the uploaded rootfs.tar', async (t) => {
  const dir = join(work, 'root');
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'hostname'), 'x\n');
  const r = await cli('add', name, '--from', dir, '--description', 'a test tree');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`template ${name}: created, rootfs.tar [\\d.]+ MB, sha256 [0-9a-f]{64}`));
  const doc = (await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth })).body;
  t.like(doc, { type: 'template', name, source: 'tar', description: 'a test tree' });
  const att = await fetch(`${s.couchUrl}/anybios/template:${name}/rootfs.tar`, { headers: { Authorization: s.adminAuth } });
  const bytes = Buffer.from(await att.arrayBuffer());
  t.is(createHash('sha256').update(bytes).digest('hex'), doc.sha256);
  // the same tree again: nothing to do
  t.regex((await cli('add', name, '--from', dir)).stdout, /unchanged/);
});

test.serial('add from a tarball replaces the rootfs and its sha256 in new revisions; ls, get, rm', async (t) => {
  const file = join(work, 'other.tar');
  await run('tar', ['-C', work, '-cf', file, 'root']);
  const r = await cli('add', name, '--from', file);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /updated/);
  const doc = (await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth })).body;
  t.is(doc.sha256, createHash('sha256').update(readFileSync(file)).digest('hex'));
  t.is(doc.description, 'a test tree', 'the description is kept');
  t.regex((await cli('ls')).stdout, new RegExp(name));
  t.regex((await cli('get', name)).stdout, new RegExp(doc.sha256));
  t.is((await cli('rm', name)).code, 0);
  t.is((await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth })).status, 404);
});

test.serial('refusals are precise and write nothing', async (t) => {
  const bad = await cli('add', 'Bad_Name', '--from', work);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /INVALID_NAME: template name "Bad_Name" must match/);
  t.regex((await cli('add', 'host', '--from', work)).stderr, /INVALID_NAME: host is built into every node/);
  t.regex((await cli('add', name, '--from', join(work, 'nope'))).stderr, /FILE_NOT_FOUND: --from .*nope: no such file or directory/);
  const usage = await cli('add', name);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /add needs --from DIR\|TAR/);
  // Not the admin's name on Apache CouchDB: its lockout ([chttpd_auth_lockout]) counts wrong passwords per name and IP.
  const denied = await run(process.execPath, [CLI, 'template', 'add', name, '--from', work, '--url', s.url, '--user', external ? uniq('not-the-admin') : 'admin', '--password', 'wrong']).catch((e) => e);
  t.regex(denied.stderr, /UNAUTHORIZED/);
  t.is((await call(s.couchUrl, `/anybios/template:${name}`, { auth: s.adminAuth })).status, 404);
});
