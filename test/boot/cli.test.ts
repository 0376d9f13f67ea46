// `anybios image` and `template import` as a user meets them: usage errors, and a data disk made by
// `image disk` read back with debugfs (no mount).
import test from 'ava';
import { promises as fsp } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { buildRootfs } from '../../fixtures/rootfs/build.ts';

const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';
const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/anybios.mjs', ...args], { encoding: 'utf8' });
const debugfsCat = (img: string, file: string) => spawnSync('debugfs', ['-R', `cat ${file}`, img], { encoding: 'utf8' }).stdout;

test('image: usage errors say what is missing; --agent is refused as not built', (t) => {
  const none = cli('image');
  t.is(none.status, 2);
  t.regex(none.stderr, /usage: anybios image build --out DIR/);
  const noOut = cli('image', 'build');
  t.is(noOut.status, 2);
  t.regex(noOut.stderr, /anybios: USAGE: --out is missing/);
  const agent = cli('image', 'build', '--out', '/nonexistent/x', '--agent');
  t.is(agent.status, 1);
  t.regex(agent.stderr, /anybios: NOT_BUILT: --agent: a PE with node, the agent and crun is not built yet/);
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
