// The pure parts of the runtime: path rules, option and script building, cgroup decisions, /proc parsing.
import test from 'ava';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import { fstabEscape, isInside, lookupMerged, ensureDirMerged, normalizeAbs, prefixes, shq, writeFileMerged } from '../../../agent/runtime/paths.ts';
import { hostHides, overlayOptions, rootfsLine, systemLines, type MountPlan } from '../../../agent/runtime/mounts.ts';
import { checkTargets } from '../../../agent/runtime/materialize.ts';
import { decideSupport, limitFiles, parseMountinfo } from '../../../agent/runtime/cgroups.ts';
import { parseStat } from '../../../agent/runtime/proc.ts';
import { childScript, unshareArgs, wrapperScript, type LaunchSpec } from '../../../agent/runtime/launcher.ts';
import { systemPaths } from '../../../agent/runtime/state.ts';
import { RUNTIME_ERRORS, RuntimeError } from '../../../agent/runtime/errors.ts';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as RuntimeError).code;
  }
  return 'no error';
};

test('normalizeAbs refuses relative paths, "." and "..", NUL; collapses slashes', (t) => {
  t.is(normalizeAbs('/a//b/'), '/a/b');
  t.is(normalizeAbs('/'), '/');
  for (const bad of ['a/b', '', '/a/../b', '/..', '/a/./b', '/a\0b', 42]) t.is(code(() => normalizeAbs(bad)), 'PATH_INVALID', String(bad));
});

test('isInside and prefixes', (t) => {
  t.true(isInside('/a/b', '/a'));
  t.true(isInside('/a', '/a'));
  t.false(isInside('/ab', '/a'));
  t.true(isInside('/x', '/'));
  t.deepEqual(prefixes('/a/b/c'), ['/a', '/a/b', '/a/b/c']);
});

test('shell and fstab quoting', (t) => {
  t.is(shq("it's"), `'it'\\''s'`);
  t.is(fstabEscape('/a b\\c\td'), '/a\\040b\\134c\\011d');
});

test('hostHides keeps only what the host lower shows, outermost first', (t) => {
  const mounts = ['/', '/proc', '/home', '/tmp'];
  t.deepEqual(hostHides(['/var/lib/anybios', '/var/lib/anybios/volumes', '/home/x/tpl', '/tmp/data', '/srv/t'], mounts), ['/srv/t', '/var/lib/anybios']);
  t.deepEqual(hostHides(['/'], mounts), []);
});

test('checkTargets: reserved, nested, hidden, "..": each refused with its code', (t) => {
  t.deepEqual(checkTargets([{ volume: 'a', target: '/srv//data/' }], [], false), ['/srv/data']);
  t.is(code(() => checkTargets([{ volume: 'a', target: '/' }], [], false)), 'PATH_RESERVED');
  t.is(code(() => checkTargets([{ volume: 'a', target: '/dev/x' }], [], false)), 'PATH_RESERVED');
  t.is(code(() => checkTargets([{ volume: 'a', target: '/var/lib/ab/x' }], ['/var/lib/ab'], true)), 'PATH_RESERVED');
  t.is(code(() => checkTargets([{ volume: 'a', target: '/var' }], ['/var/lib/ab'], true)), 'PATH_RESERVED');
  t.is(code(() => checkTargets([{ volume: 'a', target: '/s' }, { volume: 'b', target: '/s/t' }], [], false)), 'PATH_NESTED');
  t.is(code(() => checkTargets([{ volume: 'a', target: '/s/../etc' }], [], false)), 'PATH_INVALID');
});

test('merged-view lookups: upper over lower, whiteouts, symlinks refused, dirs created in upper only', async (t) => {
  const base = await fsp.mkdtemp(`${os.tmpdir()}/anybios-unit-`);
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }));
  const upper = `${base}/upper`;
  const lower = `${base}/lower`;
  await fsp.mkdir(`${lower}/etc/sub`, { recursive: true });
  await fsp.mkdir(`${upper}/etc`, { recursive: true });
  await fsp.writeFile(`${lower}/etc/f`, 'x');
  await fsp.symlink('/etc', `${lower}/link`);
  await fsp.symlink('../..', `${upper}/etc/up`);
  const view = { upper, lowers: [lower] };
  t.is((await lookupMerged(view, '/etc/sub')).kind, 'dir');
  t.is((await lookupMerged(view, '/etc/f')).kind, 'file');
  t.is((await lookupMerged(view, '/link')).kind, 'symlink');
  t.is((await lookupMerged(view, '/link/passwd')).kind, 'symlink');
  t.is((await lookupMerged(view, '/nope/x')).kind, 'missing');
  await t.throwsAsync(ensureDirMerged(view, '/link/x'), { code: 'PATH_SYMLINK' } as never);
  await t.throwsAsync(ensureDirMerged(view, '/etc/up/x'), { code: 'PATH_SYMLINK' } as never);
  await t.throwsAsync(ensureDirMerged(view, '/etc/f/x'), { code: 'PATH_NOT_DIR' } as never);
  await ensureDirMerged(view, '/etc/sub/new/deep');
  t.true((await fsp.stat(`${upper}/etc/sub/new/deep`)).isDirectory());
  t.false(await fsp.access(`${lower}/etc/sub/new`).then(() => true, () => false), 'the lower is never written');
  // a symlink at the file itself is replaced in upper, never followed
  await fsp.symlink(`${base}/victim`, `${upper}/etc/hostname`);
  await writeFileMerged(view, '/etc/hostname', 'h\n');
  t.is(readFileSync(`${upper}/etc/hostname`, 'utf8'), 'h\n');
  t.false(await fsp.access(`${base}/victim`).then(() => true, () => false));
  // the host lower `/`: below a host mount point the lower shows nothing
  const hv = { upper, lowers: ['/'], hostMounts: ['/', '/proc'] };
  t.is((await lookupMerged(hv, '/proc/self')).kind, 'missing');
  t.is((await lookupMerged(hv, '/etc')).kind, 'dir');
});

const plan: MountPlan = {
  rootfs: '/d/systems/s/rootfs',
  strategy: 'overlay',
  upper: '/d/systems/s/upper',
  work: '/d/systems/s/work',
  lowers: ['/t/mini'],
  dev: '/d/systems/s/dev',
  network: 'none',
  userns: false,
  volumes: [{ source: '/d/volumes/v', target: '/srv/my data', readOnly: true }],
};

test('fstab lines: overlay first, fresh mounts, device binds, volumes last and escaped', (t) => {
  t.is(rootfsLine(plan), 'overlay /d/systems/s/rootfs overlay lowerdir=/t/mini,upperdir=/d/systems/s/upper,workdir=/d/systems/s/work 0 0');
  t.is(rootfsLine({ ...plan, strategy: 'copy' }), '/d/systems/s/upper /d/systems/s/rootfs none bind 0 0');
  const lines = systemLines(plan);
  t.is(lines[0], 'proc /d/systems/s/rootfs/proc proc nosuid,nodev,noexec 0 0');
  t.true(lines.includes('/dev/null /d/systems/s/rootfs/dev/null none bind 0 0'));
  t.is(lines.at(-1), '/d/volumes/v /d/systems/s/rootfs/srv/my\\040data none bind,ro 0 0');
  t.true(systemLines({ ...plan, userns: true, network: 'host' }).includes('/sys /d/systems/s/rootfs/sys none rbind 0 0'));
  t.throws(() => overlayOptions(['/a:b'], '/u', '/w'));
});

test('unshare flags and the supervisor/child scripts', (t) => {
  const l: LaunchSpec = {
    tools: { sh: '/bin/sh', unshare: '/usr/bin/unshare', nsenter: '/usr/bin/nsenter', chroot: '/usr/sbin/chroot', mount: '/usr/bin/mount', ip: '/usr/sbin/ip', hostname: '/usr/bin/hostname', tar: '/usr/bin/tar' },
    paths: systemPaths('/d', 's'),
    hostname: 'h',
    network: 'none',
    userns: false,
    argv: ['/bin/true'],
    cgroupDirs: ['/sys/fs/cgroup/pids/anybios/0123abcd-s'],
    marker: 'anybios-supervisor:/d/systems/s:abc',
    env: {},
  };
  t.deepEqual(unshareArgs(l), ['--pid', '--mount', '--uts', '--ipc', '--propagation', 'private', '--net']);
  t.deepEqual(unshareArgs({ ...l, network: 'host', userns: true }), ['--pid', '--mount', '--uts', '--ipc', '--propagation', 'private', '--user', '--map-root-user']);
  const c = childScript(l);
  t.regex(c, /'\/usr\/bin\/mount' -a -T '\/d\/systems\/s\/fstab'/);
  t.regex(c, /echo 'h' > \/proc\/sys\/kernel\/hostname/);
  t.regex(c, /'\/usr\/sbin\/ip' link set lo up/);
  t.regex(c, /exec '\/usr\/sbin\/chroot' '\/d\/systems\/s\/rootfs' "\$@"$/);
  t.notRegex(childScript({ ...l, network: 'host' }), /link set lo up/);
  t.regex(childScript({ ...l, workdir: '/srv' }), /--root='\/d\/systems\/s\/rootfs' --wd='\/srv'/);
  const hosted = childScript({ ...l, hostPhase: { overlayOptions: 'lowerdir=/,upperdir=/u,workdir=/w', hides: ['/var/lib/ab'] } });
  t.regex(hosted, /-t overlay -o 'lowerdir=\/,upperdir=\/u,workdir=\/w' overlay/);
  t.regex(hosted, /\[ ! -L '\/d\/systems\/s\/rootfs\/var' \] && \[ -d '\/d\/systems\/s\/rootfs\/var' \] && .*rootfs\/var\/lib\/ab' \]; then printf/);
  const w = wrapperScript(l);
  t.regex(w, /echo \$\$ > '\/sys\/fs\/cgroup\/pids\/anybios\/0123abcd-s\/cgroup.procs'/);
  t.regex(w, /wait \$!\necho "\$\? \$0" > '\/d\/systems\/s\/exit'$/);
  t.regex(w, /printf '%s\\n%s\\n' "\$s" "\$0" > '\/d\/systems\/s\/wrapper.stat'/);
  t.regex(w, /\(\n.*'\/usr\/bin\/mount' -a -T/s, 'the child is a subshell (a fork, no exec of sh)');
  t.regex(c, /'\/usr\/sbin\/ip' link set lo up & anybios_lo=\$!\n.*mount.*\n.*wait \$anybios_lo/s, 'lo comes up beside the mounts');
  t.regex(c, /printf 'ok %s\\n' "\$anybios_self" >&3/);
});

test('cgroups: per controller v2 where offered, else v1; limit files', (t) => {
  const mi = [
    '30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    '31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
    '32 25 0:28 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids',
    '33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
  ].join('\n');
  const rows = parseMountinfo(mi);
  const hybrid = decideSupport(rows, ['hugetlb']);
  t.is(hybrid.layout, 'hybrid');
  t.deepEqual(hybrid.controllers.memory, { version: 1, root: '/sys/fs/cgroup/memory' });
  t.deepEqual(hybrid.controllers.cpu, { version: 1, root: '/sys/fs/cgroup/cpu,cpuacct' });
  const v2 = decideSupport(rows, ['memory', 'pids', 'cpu']);
  t.deepEqual(v2.controllers.pids, { version: 2, root: '/sys/fs/cgroup/unified' });
  t.is(decideSupport([], null).layout, 'none');
  t.deepEqual(limitFiles({ memory: 1 << 24 }, 1, 'memory'), { 'memory.limit_in_bytes': String(1 << 24) });
  t.deepEqual(limitFiles({ memory: 1 << 24 }, 2, 'memory'), { 'memory.max': String(1 << 24) });
  t.deepEqual(limitFiles({ cpuWeight: 100 }, 1, 'cpu'), { 'cpu.shares': '1024' });
  t.deepEqual(limitFiles({ cpuWeight: 100 }, 2, 'cpu'), { 'cpu.weight': '100' });
});

test('parseStat handles a comm with spaces and parentheses', (t) => {
  const f = Array.from({ length: 50 }, (_, i) => String(i));
  const line = `123 (a b) c) S 7 ${f.slice(5, 22).join(' ')} 99999 ${f.slice(23).join(' ')}`;
  const st = parseStat(line);
  t.is(st?.pid, 123);
  t.is(st?.ppid, 7);
  t.is(st?.startTime, 99999);
  t.is(parseStat('garbage'), null);
});

test('every runtime error code is documented in docs/runtime.md', (t) => {
  const doc = readFileSync(new URL('../../../docs/runtime.md', import.meta.url), 'utf8');
  for (const c of Object.keys(RUNTIME_ERRORS)) t.true(doc.includes(`\`${c}\``), `${c} is not documented`);
});

test('the runtime imports only down: node builtins, its own modules and the schemas (data and types)', async (t) => {
  const root = new URL('../../../agent/runtime/', import.meta.url).pathname;
  const schemas = new URL('../../../ddocs/schemas/', import.meta.url).pathname;
  const files = (await fsp.readdir(root, { recursive: true })).filter((f) => f.endsWith('.ts'));
  t.true(files.includes('runtime.ts'));
  for (const f of files) {
    const text = readFileSync(`${root}${f}`, 'utf8');
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      if (spec!.startsWith('.')) {
        const to = new URL(spec!, `file://${root}${f}`).pathname;
        t.true(to.startsWith(root) || to.startsWith(schemas), `${f} imports ${spec}`);
      } else t.true(spec!.startsWith('node:'), `${f} imports ${spec}`);
    }
  }
});
