// `anybios image` and `template import` as a user meets them: usage errors, and a data disk made by
// `image disk` read back with debugfs (no mount).
import test from 'ava';
import { promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { buildRootfs } from '../../fixtures/rootfs/build.ts';

const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';
const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/anybios.mjs', ...args], { encoding: 'utf8' });
const debugfsCat = (img: string, file: string) => spawnSync('debugfs', ['-R', `cat ${file}`, img], { encoding: 'utf8' }).stdout;

test('image: usage errors say what is missing', (t) => {
  const none = cli('image');
  t.is(none.status, 2);
  t.regex(none.stderr, /usage: anybios image build --out DIR/);
  const noOut = cli('image', 'build');
  t.is(noOut.status, 2);
  t.regex(noOut.stderr, /anybios: USAGE: --out is missing/);
  const badDisk = cli('image', 'disk', '--out', '/tmp/x.img', '--template', 'nosource');
  t.is(badDisk.status, 2);
  t.regex(badDisk.stderr, /--template nosource: expected NAME=DIR or NAME=FILE\.tar/);
  t.regex(cli('template', 'import', 'ubuntu:noble', '--out', '/tmp/x.tar').stderr, /anybios: USAGE: unknown source "ubuntu:noble": debian:SUITE/);
  t.regex(cli('template', 'import', '--out', '/tmp/x.tar').stderr, /give either debian:SUITE or --from ROOTFS\.tar/);
});

test('image disk: an ext4 image labelled anybios with the template, the systems\' confs and layers', async (t) => {
  const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-disk-test-`);
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }));
  await buildRootfs(`${base}/rootfs`);
  const r = cli('image', 'disk', '--out', `${base}/d.img`, '--template', `mini=${base}/rootfs`, '--system', 'web', '--system', 'db:mini:/bin/sh', '--label', 'mydisk');
  t.is(r.status, 0, r.stderr);
  t.regex(spawnSync('dumpe2fs', ['-h', `${base}/d.img`], { encoding: 'utf8' }).stdout, /Filesystem volume name:\s+mydisk/);
  t.is(debugfsCat(`${base}/d.img`, '/anybios/systems/web/system.conf'), 'template=/anybios/templates/mini\ninit=/sbin/init\n');
  t.is(debugfsCat(`${base}/d.img`, '/anybios/systems/db/system.conf'), 'template=/anybios/templates/mini\ninit=/bin/sh\n');
  t.is(debugfsCat(`${base}/d.img`, '/anybios/systems/db/upper/etc/hostname'), 'db\n');
  t.regex(debugfsCat(`${base}/d.img`, '/anybios/templates/mini/sbin/init'), /^#!\/bin\/sh/);
  t.deepEqual((await fsp.readdir(base)).sort(), ['d.img', 'rootfs'], 'the staging directory is gone');
  const unknown = cli('image', 'disk', '--out', `${base}/e.img`, '--template', `mini=${base}/rootfs`, '--system', 'x:nope');
  t.is(unknown.status, 1);
  t.regex(unknown.stderr, /anybios: TEMPLATE_NOT_FOUND: system x: no template nope on the disk/);
});

test('image disk --node: the node credential is the PE agent\'s credentials.json (0600, in a 0700 dir); a bad file is refused naming the field', async (t) => {
  const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-disk-node-test-`);
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }));
  await buildRootfs(`${base}/rootfs`);
  const cred = { server: 'http://10.0.2.2:8080', node: 'pe1', user: 'node-pe1', password: 'secret-1', insecureHttp: true };
  await fsp.writeFile(`${base}/pe1.json`, JSON.stringify(cred));
  const r = cli('image', 'disk', '--out', `${base}/d.img`, '--template', `mini=${base}/rootfs`, '--system', 'system0', '--node', `${base}/pe1.json`);
  t.is(r.status, 0, r.stderr);
  t.deepEqual(JSON.parse(debugfsCat(`${base}/d.img`, '/anybios/node/agent/credentials.json')), cred);
  const mode = (p: string) => /Mode:\s+(\d+)/.exec(spawnSync('debugfs', ['-R', `stat ${p}`, `${base}/d.img`], { encoding: 'utf8' }).stdout)?.[1];
  t.is(mode('/anybios/node/agent/credentials.json'), '0600');
  t.is(mode('/anybios/node/agent'), '0700');
  t.is(mode('/anybios/node'), '0700');
  await fsp.writeFile(`${base}/bad.json`, JSON.stringify({ server: 'http://x', node: 'pe1', user: 'node-pe1' }));
  const bad = cli('image', 'disk', '--out', `${base}/e.img`, '--template', `mini=${base}/rootfs`, '--system', 'system0', '--node', `${base}/bad.json`);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /anybios: CONFIG_INVALID: --node .*bad\.json: "password" is missing/);
  const none = cli('image', 'disk', '--out', `${base}/e.img`, '--template', `mini=${base}/rootfs`, '--system', 'system0', '--node', `${base}/none.json`);
  t.regex(none.stderr, /anybios: CONFIG_INVALID: --node .*none\.json: ENOENT/);
  t.false((await fsp.readdir(base)).includes('e.img'));
});
