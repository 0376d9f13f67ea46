// The PE under qemu (software emulation): built from Debian's packages by `anybios image build`, booted
// with a data disk holding a template and two os systems. Each qemu is killed in teardown; nothing is
// mounted on this machine (the disk is made with mkfs.ext4 -d and read back with debugfs).
import test, { type ExecutionContext } from 'ava';
import { promises as fsp } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { buildImage } from '../../boot/image.ts';
import { QemuMachine } from '../../boot/qemu.ts';
import { fixtureDisk } from '../../fixtures/boot/disk.ts';

const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';
/** Downloads and unpacked packages survive between runs on one machine (CI starts clean: ~1 min more). */
const CACHE = process.env.ANYBIOS_IMAGE_CACHE ?? '/var/tmp/anybios-image-cache';
const BOOT_MS = 90_000; // a PE boot takes ~6 s under TCG here; the margin is for a busy machine

let base = '';
let image = '';

test.before(async (t) => {
  t.timeout(600_000); // a first build downloads and unpacks the kernel package (~1 min here)
  for (const tool of ['qemu-system-x86_64', 'mkfs.ext4', 'debugfs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is needed (apt-get install qemu-system-x86 e2fsprogs)`);
  }
  base = await fsp.mkdtemp(`${TEST_BASE}/anybios-boot-test-`);
  image = `${base}/image`;
  const m = await buildImage({ out: image, cache: CACHE, log: (s) => t.log(s) });
  t.log(`initrd ${m.initrdBytes} bytes, kernel ${m.kernel.version}`);
});

test.after.always(async () => {
  if (base) await fsp.rm(base, { recursive: true, force: true });
});

async function boot(t: ExecutionContext, append: string, disk = true): Promise<{ m: QemuMachine; disk: string }> {
  const dir = await fsp.mkdtemp(`${base}/run-`);
  const diskImg = disk ? await fixtureDisk(dir) : '';
  const m = new QemuMachine({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append: `console=ttyS0 panic=-1 ${append}`, disks: disk ? [diskImg] : [] });
  t.teardown(async () => {
    await m.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return { m, disk: diskImg };
}

/** A file of the ext4 image, read with debugfs (no mount); null when absent. */
function diskFile(disk: string, file: string): string | null {
  const r = spawnSync('debugfs', ['-R', `cat ${file}`, disk], { encoding: 'utf8' });
  return r.stdout && !/File not found/.test(r.stderr) ? r.stdout : null;
}

test.serial('image build: vmlinuz and an initrd with /init, busybox and the disk and file system modules', async (t) => {
  const manifest = JSON.parse(await fsp.readFile(`${image}/image.json`, 'utf8'));
  for (const mod of ['virtio_blk', 'virtio_pci', 'ext4', 'overlay', 'jbd2']) t.true(manifest.modules.includes(mod), mod);
  t.true((await fsp.stat(`${image}/vmlinuz`)).size > 1 << 20);
  const list = execFileSync('sh', ['-c', `zcat '${image}/initrd.img' | cpio -t --quiet`], { encoding: 'utf8' }).split('\n');
  for (const f of ['init', 'bin/busybox', 'bin/switch_root', 'dev/console', 'lib/modules/anybios/ext4.ko', 'lib/modules/anybios/load', 'lib/anybios/stop.sh']) t.true(list.includes(f), f);
  const load = execFileSync('sh', ['-c', `zcat '${image}/initrd.img' | cpio -i --to-stdout --quiet lib/modules/anybios/load`], { encoding: 'utf8' }).split('\n');
  t.true(load.indexOf('jbd2') < load.indexOf('ext4') && load.indexOf('virtio') < load.indexOf('virtio_blk'), 'dependencies load first');
});

test.serial('switch: the machine becomes system0 — its init is pid 1 on the overlay of template and layer', async (t) => {
  const { m } = await boot(t, 'anybios.root=LABEL=anybios anybios.mode=switch anybios.boot=system0');
  await m.waitFor(/anybios: switch: system system0 \(template \/anybios\/templates\/fixture\)/, BOOT_MS);
  // Whole lines only (\n): the console arrives in pieces, and a prefix must not pass for the line.
  const [, line] = await m.waitFor(/(test-init: system=[^\n]*)\n/, BOOT_MS);
  t.is(line, 'test-init: system=system0 pid=1 template=fixture hostname=system0');
  t.notRegex(m.output, /test-init: system=system1/);
});

test.serial('resident: the PE stays and starts system0 and system1, each pid 1 of its own namespaces; poweroff stops them and the markers are in their layers', async (t) => {
  const { m, disk } = await boot(t, 'anybios.root=LABEL=anybios anybios.mode=resident anybios.boot=system0,system1');
  await m.waitFor(/anybios: resident: running system0 system1/, BOOT_MS);
  for (const name of ['system0', 'system1']) {
    const [, line] = await m.waitFor(new RegExp(`(test-init: system=${name} [^\\n]*)\\n`), BOOT_MS);
    t.is(line, `test-init: system=${name} pid=1 template=fixture hostname=${name}`);
  }
  // The PE's own console shell (askfirst), then a clean poweroff through busybox init and stop.sh.
  await m.waitFor(/Please press Enter to activate this console/, BOOT_MS);
  m.send('\n');
  await new Promise((r) => setTimeout(r, 1000));
  m.send('hostname; poweroff\n');
  await m.waitFor(/test-init: system0 stopping[\s\S]*anybios: resident: systems stopped, data disk unmounted|test-init: system1 stopping[\s\S]*anybios: resident: systems stopped, data disk unmounted/, BOOT_MS);
  t.regex(m.output, /test-init: system0 stopping/);
  t.regex(m.output, /test-init: system1 stopping/);
  const code = await Promise.race([m.exited, new Promise((r) => setTimeout(() => r('still running'), BOOT_MS))]);
  t.is(code, 0, 'qemu exits when the PE powers off');
  // What each system wrote went to its own layer on the disk, not to the template.
  t.is(diskFile(disk, '/anybios/systems/system0/upper/var/lib/marker'), 'booted system0\n');
  t.is(diskFile(disk, '/anybios/systems/system1/upper/var/lib/marker'), 'booted system1\n');
  t.is(diskFile(disk, '/anybios/templates/fixture/var/lib/marker'), null);
});

test.serial('anybios.root by UUID and by device path, anybios.systems given: the same disk is found', async (t) => {
  const dir = await fsp.mkdtemp(`${base}/uuid-`);
  const disk = await fixtureDisk(dir, ['system0']);
  const uuid = /Filesystem UUID:\s+(\S+)/.exec(execFileSync('dumpe2fs', ['-h', disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[1];
  t.truthy(uuid);
  for (const root of [`UUID=${uuid}`, '/dev/vda']) {
    const m = new QemuMachine({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append: `console=ttyS0 panic=-1 anybios.root=${root} anybios.systems=/anybios/systems anybios.boot=system0`, disks: [disk] });
    t.teardown(() => m.close());
    await m.waitFor(new RegExp(`anybios: data disk ${root.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is /dev/vda`), BOOT_MS);
    await m.waitFor(/test-init: system=system0 pid=1 [^\n]*\n/, BOOT_MS);
    await m.close();
  }
  t.pass();
});

const rescues: [string, string, RegExp][] = [
  ['a bad mode', 'anybios.root=LABEL=anybios anybios.mode=bogus anybios.boot=system0', /anybios: rescue: anybios\.mode=bogus: expected switch or resident/],
  ['a missing anybios.boot', 'anybios.root=LABEL=anybios', /anybios: rescue: anybios\.boot is missing/],
  ['a misspelt parameter', 'anybios.root=LABEL=anybios anybios.sytems=/x anybios.boot=system0', /anybios: rescue: unknown parameter\(s\): anybios\.sytems/],
  ['a disk that is not there', 'anybios.root=LABEL=nope anybios.rootwait=1 anybios.boot=system0', /anybios: rescue: anybios\.root=LABEL=nope: no such disk after 1s \(block devices: vda/],
  ['a system that is not on the disk', 'anybios.root=LABEL=anybios anybios.boot=system9', /anybios: rescue: anybios\.boot: no system "system9" in \/anybios\/systems on LABEL=anybios \(there: system0 system1 \)/],
  ['switch with two systems', 'anybios.root=LABEL=anybios anybios.mode=switch anybios.boot=system0,system1', /anybios: rescue: anybios\.mode=switch hands the machine to one system; anybios\.boot names 2/],
];

for (const [what, append, message] of rescues) {
  test.serial(`rescue shell on the console for ${what}, saying which parameter`, async (t) => {
    const { m } = await boot(t, append);
    await m.waitFor(message, BOOT_MS);
    await m.waitFor(/rescue: starting a shell on the console/, BOOT_MS);
    t.notRegex(m.output, /test-init:/, 'no system was started');
    // It is a working shell on the console.
    await new Promise((r) => setTimeout(r, 500));
    m.send('echo rescue-$((40 + 2))\n');
    await m.waitFor(/^rescue-42$/m, BOOT_MS);
    t.pass();
  });
}
