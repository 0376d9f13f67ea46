// Real OS templates: Debian bookworm by `anybios template import` (mmdebstrap), booted by our runtime as
// an os system to systemd's multi-user.target, then halted. The tarball is kept under
// ANYBIOS_IMAGE_CACHE (/var/tmp) between runs on one machine; CI starts clean and imports it (~1–2 min).
import test, { type ExecutionContext } from 'ava';
import { promises as fsp, existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRuntime } from '../../agent/runtime/index.ts';
import { decideSupport, parseMountinfo } from '../../agent/runtime/cgroups.ts';
import { docErrors } from '../../ddocs/validate.ts';
import { debianCacheName, sha256Of } from '../../boot/os-template.ts';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import { buildImage } from '../../boot/image.ts';
import { addSystem, addTemplate, makeExt4 } from '../../boot/disk.ts';
import { QemuMachine } from '../../boot/qemu.ts';

const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';
const CACHE = process.env.ANYBIOS_IMAGE_CACHE ?? '/var/tmp/anybios-image-cache';
const DEBIAN_TAR = `${CACHE}/${debianCacheName('bookworm')}`;
const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/anybios.mjs', ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });

test('cgroups: the init hierarchy is name=systemd on v1/hybrid hosts, the unified one on v2', (t) => {
  const hybrid = parseMountinfo([
    '30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    '31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
    '34 25 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
  ].join('\n'));
  t.deepEqual(decideSupport(hybrid, []).init, { version: 1, root: '/sys/fs/cgroup/systemd' });
  t.deepEqual(decideSupport(parseMountinfo('30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw'), ['memory']).init, { version: 2, root: '/sys/fs/cgroup' });
  t.is(decideSupport(parseMountinfo('31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory'), null).init, undefined);
});

test('template import --from refuses a tarball without an init, and says so', async (t) => {
  const dir = await fsp.mkdtemp(`${TEST_BASE}/anybios-import-test-`);
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  await fsp.mkdir(`${dir}/root/etc`, { recursive: true });
  await fsp.writeFile(`${dir}/root/etc/hostname`, 'x\n');
  spawnSync('tar', ['-cf', `${dir}/noinit.tar`, '-C', `${dir}/root`, '.']);
  const r = cli('template', 'import', '--from', `${dir}/noinit.tar`, '--out', `${dir}/out.tar`);
  t.is(r.status, 1);
  t.regex(r.stderr, /anybios: TEMPLATE_INVALID: .*noinit\.tar holds no init \(none of \/sbin\/init/);
  t.false(existsSync(`${dir}/out.tar`));
  t.deepEqual((await fsp.readdir(dir)).sort(), ['noinit.tar', 'root'], 'no partial output left');
});

test.serial('debian:bookworm: imported by mmdebstrap; an os system from it boots systemd to multi-user.target and halts cleanly on stop', async (t) => {
  t.timeout(900_000);
  await fsp.mkdir(CACHE, { recursive: true });
  if (!existsSync(DEBIAN_TAR)) {
    const started = Date.now();
    const r = cli('template', 'import', 'debian:bookworm', '--out', DEBIAN_TAR, '--json');
    t.is(r.status, 0, r.stderr.split('\n').slice(-15).join('\n'));
    t.log(`template import debian:bookworm took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    const doc = JSON.parse(r.stdout) as TemplateDoc;
    t.is(doc.source, 'tar');
    t.is(doc.sha256, await sha256Of(DEBIAN_TAR));
    t.deepEqual(docErrors(doc as never), []);
  } else t.log(`using the cached ${DEBIAN_TAR} (${(statSync(DEBIAN_TAR).size / 1048576).toFixed(0)} MiB)`);

  const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-ostpl-test-`);
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: `${base}/data` });
  t.teardown(async () => {
    await rt.destroy('deb0', { graceMs: 1000 }).catch(() => {});
    await fsp.rm(base, { recursive: true, force: true });
  });
  const template: TemplateDoc = { _id: 'template:debian-bookworm', type: 'template', name: 'debian-bookworm', source: 'tar', sha256: await sha256Of(DEBIAN_TAR) };
  const spec: SystemDoc = { _id: 'system:deb0', type: 'system', name: 'deb0', kind: 'os', template: 'debian-bookworm', state: 'running', init: ['/sbin/init'], network: 'none' };
  const enter = async (...cmd: string[]) => {
    const argv = await rt.enterArgs('deb0', cmd);
    return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 }).stdout.trim();
  };
  const t0 = Date.now();
  const o = await rt.start(spec, template, { tarball: DEBIAN_TAR });
  t.is(o.phase, 'running');
  let state = '';
  while (Date.now() - t0 < 120_000) {
    state = await enter('systemctl', 'is-system-running');
    if (/^(running|degraded)$/.test(state)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  t.log(`start → is-system-running=${state}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.regex(state, /^(running|degraded)$/);
  if (state === 'degraded') t.log(await enter('systemctl', '--failed', '--no-pager'));
  t.is(await enter('systemctl', 'is-active', 'multi-user.target'), 'active');
  t.is(await enter('cat', '/proc/1/comm'), 'systemd');
  t.is(await enter('hostname'), 'deb0');
  const own = (await rt.list()).find((s) => s.name === 'deb0');
  t.is(own?.pid, o.pid);
  const cgroups = JSON.parse(await fsp.readFile(`${base}/data/systems/deb0/state.json`, 'utf8')).cgroups as string[];
  t.true(cgroups.some((c) => existsSync(`${c}/init.scope`)), 'systemd made its cgroups in the one delegated to it');

  const t1 = Date.now();
  const stopped = await rt.stop('deb0', { graceMs: 20_000 });
  const stopMs = Date.now() - t1;
  t.log(`stop (SIGRTMIN+3 → halt) took ${stopMs} ms, exit ${stopped?.exitCode}`);
  t.is(stopped?.phase, 'stopped');
  // systemd halts a container by reboot(HALT), which the kernel turns into SIGINT for the pid namespace's init.
  t.is(stopped?.exitCode, 130);
  t.true(stopMs < 10_000, 'halted within 10 s, not killed after the grace');
  t.false(existsSync(`/proc/${o.pid}`) && spawnSync('cat', [`/proc/${o.pid}/comm`], { encoding: 'utf8' }).stdout.trim() === 'systemd');
  for (const c of cgroups) t.false(existsSync(c), `${c} removed with what systemd made below it`);
});

test.serial('template import --from a rootfs tarball: a tar template with its sha256, a dir template unpacked', async (t) => {
  t.timeout(300_000);
  t.true(existsSync(DEBIAN_TAR), 'the debian:bookworm test above made it');
  const dir = await fsp.mkdtemp(`${TEST_BASE}/anybios-import-test-`);
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  const asTar = cli('template', 'import', '--from', DEBIAN_TAR, '--out', `${dir}/copy.tar`, '--name', 'bookworm-copy', '--json');
  t.is(asTar.status, 0, asTar.stderr);
  const doc = JSON.parse(asTar.stdout) as TemplateDoc;
  t.like(doc, { _id: 'template:bookworm-copy', type: 'template', name: 'bookworm-copy', source: 'tar', sha256: await sha256Of(DEBIAN_TAR) });
  t.deepEqual(docErrors(doc as never), []);
  const asDir = cli('template', 'import', '--from', DEBIAN_TAR, '--out', `${dir}/tree`, '--json');
  t.is(asDir.status, 0, asDir.stderr);
  t.like(JSON.parse(asDir.stdout), { name: debianCacheName('bookworm').replace(/\.tar$/, ''), source: 'dir', path: `${dir}/tree` });
  t.true(existsSync(`${dir}/tree/lib/systemd/systemd`));
  const again = cli('template', 'import', '--from', DEBIAN_TAR, '--out', `${dir}/tree`);
  t.is(again.status, 1);
  t.regex(again.stderr, /anybios: EXISTS: .*tree exists already/);
});

/** The PE and a data disk with system0 and system1 on the Debian template: made once, removed at the end. */
let debianPE: Promise<{ base: string; image: string; disk: string }> | null = null;
function peWithDebian() {
  debianPE ??= (async () => {
    const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-debpe-test-`);
    await buildImage({ out: `${base}/image`, cache: CACHE });
    addTemplate(`${base}/disk`, 'bookworm', DEBIAN_TAR);
    for (const name of ['system0', 'system1']) addSystem(`${base}/disk`, { name, template: 'bookworm' });
    makeExt4(`${base}/disk`, `${base}/disk.img`, { label: 'anybios' });
    await fsp.rm(`${base}/disk`, { recursive: true, force: true });
    return { base, image: `${base}/image`, disk: `${base}/disk.img` };
  })();
  return debianPE;
}
test.after.always(async () => {
  if (debianPE) await fsp.rm((await debianPE).base, { recursive: true, force: true });
});

async function bootDebian(t: ExecutionContext, append: string): Promise<QemuMachine> {
  t.true(existsSync(DEBIAN_TAR), 'the debian:bookworm test above made it');
  const pe = await peWithDebian();
  const m = new QemuMachine({ kernel: `${pe.image}/vmlinuz`, initrd: `${pe.image}/initrd.img`, append: `console=ttyS0 panic=-1 anybios.root=LABEL=anybios ${append}`, disks: [pe.disk], memMiB: 1024 });
  t.teardown(() => m.close());
  return m;
}

test.serial('the PE switches a qemu machine to a system of the Debian template: systemd as the machine\'s pid 1 reaches multi-user.target and a login prompt', async (t) => {
  t.timeout(600_000);
  const m = await bootDebian(t, 'anybios.boot=system0');
  await m.waitFor(/anybios: switch: system system0 \(template \/anybios\/templates\/bookworm\), exec \/sbin\/init/, 120_000);
  await m.waitFor(/Reached target .*multi-user\.target/, 240_000);
  await m.waitFor(/system0 login: /, 120_000);
  t.log(`qemu start → login prompt: ${((performance.now() - m.startedAt) / 1000).toFixed(1)} s`);
  t.notRegex(m.output, /Timed out waiting for device/);
});

test.serial('the resident PE runs two Debian systems, each systemd reaching running; anybios-enter reaches them; poweroff halts them', async (t) => {
  t.timeout(600_000);
  const m = await bootDebian(t, 'anybios.boot=system0,system1 anybios.mode=resident');
  await m.waitFor(/anybios: resident: running system0 system1/, 120_000);
  await m.waitFor(/Please press Enter to activate this console/, 120_000);
  m.send('\n');
  await new Promise((r) => setTimeout(r, 1000));
  // At the PE's shell: wait (up to 2 min) for each system's systemd, then say its state and hostname.
  m.send('for n in system0 system1; do i=0; while [ $i -lt 120 ]; do s=$(anybios-enter $n systemctl is-system-running 2>/dev/null); case $s in running|degraded) break;; esac; sleep 1; i=$((i+1)); done; echo "state-$n=$s,$(anybios-enter $n hostname),$(anybios-enter $n cat /proc/1/comm)"; done\n');
  // Whole lines only (\n): the console arrives in pieces.
  const [, s0] = await m.waitFor(/^(state-system0=.*)\n/m, 300_000);
  const [, s1] = await m.waitFor(/^(state-system1=.*)\n/m, 300_000);
  t.log(`qemu start → both systems running: ${((performance.now() - m.startedAt) / 1000).toFixed(1)} s`);
  t.regex(s0, /^state-system0=(running|degraded),system0,systemd$/);
  t.regex(s1, /^state-system1=(running|degraded),system1,systemd$/);
  t.notRegex(m.output, /login: /, 'no getty of a system on the PE\'s console');
  m.send('poweroff\n');
  await m.waitFor(/anybios: resident: systems stopped, data disk unmounted/, 120_000);
  const code = await Promise.race([m.exited, new Promise((r) => setTimeout(() => r('still running'), 60_000))]);
  t.is(code, 0, 'qemu exits when the PE powers off');
});
