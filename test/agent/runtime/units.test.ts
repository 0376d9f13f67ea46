// The pure parts of the runtime: path rules, option and script building, cgroup decisions, /proc parsing.
import test from 'ava';
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import { isInside, lookupMerged, ensureDirMerged, normalizeAbs, prefixes, shq, writeFileMerged } from '../../../agent/runtime/paths.ts';
import { hostHides, overlayOptions } from '../../../agent/runtime/mounts.ts';
import { APP_CAPS, ociConfig } from '../../../agent/runtime/oci-config.ts';
import { seccompProfile } from '../../../agent/runtime/seccomp.ts';
import { checkTargets } from '../../../agent/runtime/materialize.ts';
import { decideSupport, limitFiles, parseMountinfo } from '../../../agent/runtime/cgroups.ts';
import { parseStat } from '../../../agent/runtime/proc.ts';
import { launchArgv, supervisorScript, type LaunchSpec } from '../../../agent/runtime/launcher.ts';
import { prootArgs, runScript } from '../../../agent/runtime/launcher-proot.ts';
import { chooseLauncher } from '../../../agent/runtime/capabilities.ts';
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

test('shell quoting', (t) => {
  t.is(shq("it's"), `'it'\\''s'`);
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

test('OCI config: private id range, capabilities by kind, seccomp, masked /proc, volumes; privileged gives them up', (t) => {
  const base = { rootfs: '/d/systems/a/rootfs', argv: ['/bin/app', '--x'], env: { PATH: '/bin', TOKEN: 's e c' }, cwd: '/', hostname: 'a', network: 'none' as const, volumes: [{ source: '/v/data', target: '/srv', readOnly: true }] };
  const app = ociConfig({ ...base, kind: 'app', privileged: false, ids: { hostId: 2 ** 31, size: 65536 }, idmapVolumes: true });
  t.deepEqual(app.linux.uidMappings, [{ containerID: 0, hostID: 2 ** 31, size: 65536 }]);
  t.deepEqual(app.linux.namespaces.map((n) => n.type).sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'user', 'uts']);
  t.deepEqual(app.process.capabilities.bounding, APP_CAPS);
  t.false(app.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
  t.true(app.process.noNewPrivileges);
  t.deepEqual(app.process.env, ['PATH=/bin', 'TOKEN=s e c']);
  t.deepEqual(app.process.args, ['/bin/app', '--x']);
  t.true(app.linux.maskedPaths!.includes('/proc/kcore') && app.linux.maskedPaths!.includes('/proc/sysrq-trigger'));
  t.true(app.linux.readonlyPaths!.includes('/proc/sys'));
  const denied = app.linux.seccomp!.syscalls[0]!.names;
  for (const c of ['init_module', 'finit_module', 'kexec_load', 'keyctl', 'bpf', 'open_by_handle_at', 'reboot', 'mount_setattr']) t.true(denied.includes(c), c);
  t.deepEqual(app.mounts.find((m) => m.destination === '/srv')?.options, ['bind', 'nosuid', 'nodev', 'ro', 'idmap']);
  t.is(app.mounts.find((m) => m.destination === '/sys')?.type, 'sysfs');
  const os = ociConfig({ ...base, kind: 'os', privileged: false, ids: { hostId: 2 ** 31, size: 65536 }, network: 'host' });
  t.true(os.process.capabilities.bounding.includes('CAP_SYS_ADMIN'), 'an init mounts inside its own namespaces');
  t.false(os.process.noNewPrivileges, 'setuid programs of an OS keep working');
  t.false(os.linux.seccomp!.syscalls[0]!.names.includes('reboot'));
  t.false(os.linux.namespaces.some((n) => n.type === 'network'));
  t.deepEqual(os.mounts.find((m) => m.destination === '/sys')?.options?.slice(0, 2), ['rbind', 'ro'], 'host network: sysfs is bound read-only');
  const priv = ociConfig({ ...base, kind: 'app', privileged: true, ids: null });
  t.is(priv.linux.uidMappings, undefined);
  t.false(priv.linux.namespaces.some((n) => n.type === 'user'));
  t.is(priv.linux.seccomp, undefined);
  t.is(priv.linux.maskedPaths, undefined);
  t.true(priv.process.capabilities.bounding.includes('CAP_SYS_MODULE'));
  t.deepEqual(seccompProfile('app').architectures.slice(0, 2), ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
});

test('the supervisor script: identity first, idmapped lower, overlay, hides, crun; no command or env of the system in it', (t) => {
  const paths = systemPaths('/d', 'web');
  const l: LaunchSpec = {
    tools: { sh: '/bin/sh', unshare: '/usr/bin/unshare', nsenter: '/usr/bin/nsenter', chroot: '/usr/sbin/chroot', mount: '/bin/mount', ip: '/sbin/ip', hostname: '/bin/hostname', tar: '/bin/tar', crun: '/usr/bin/crun', proot: null },
    crun: '/usr/bin/crun',
    paths,
    rootfs: '/run/anybios/x/web',
    root: { overlayOptions: overlayOptions([paths.lower], paths.upper, paths.work) },
    idmap: { helper: '/d/bin/idmap', template: '/t/mini', hostId: 2147483648, size: 65536 },
    hides: ['/d'],
    hideCgroupfs: true,
    rootless: false,
    cgroupDirs: ['/sys/fs/cgroup/anybios/x-web'],
    marker: 'anybios-supervisor:/d/systems/web:r1',
    containerId: 'anybios-web-r1',
  };
  const s = supervisorScript(l);
  const at = (x: string) => s.indexOf(x);
  t.true(at('/proc/self/stat') < at('cgroup.procs'));
  t.true(at('cgroup.procs') < at("'/d/bin/idmap' '/t/mini' '/d/systems/web/lower' 2147483648 65536"));
  t.true(at('/d/bin/idmap') < at('-t overlay'));
  t.true(at('-t overlay') < at('anybios-hide'));
  t.true(at('anybios-hide') < at("'/usr/bin/crun' --root '/d/systems/web/crun' --cgroup-manager=disabled run"));
  t.regex(s, /anybios-nocgroup \/sys\/fs\/cgroup/);
  t.regex(s, /\[ -s '\/d\/systems\/web\/init.pid' \] \|\| c=125/);
  t.deepEqual(launchArgv(l).slice(0, 4), ['--mount', '--propagation', 'private', '--']);
  t.is(launchArgv(l).at(-1), l.marker);
  t.deepEqual(launchArgv({ ...l, rootless: true }).slice(0, 2), ['--user', '--map-root-user']);
  t.false(s.includes('PATH='), 'no environment in the script');
});

test('launcher choice: crun with root or a user namespace, proot when neither (auto or asked), else the reason', (t) => {
  const base = { root: false, userns: false, crun: true, proot: true, prefer: 'auto' };
  t.is(chooseLauncher({ ...base, root: true }).launcher, 'crun');
  t.is(chooseLauncher({ ...base, userns: true }).launcher, 'crun');
  t.is(chooseLauncher(base).launcher, 'proot');
  t.is(chooseLauncher({ ...base, root: true, prefer: 'proot' }).launcher, 'proot');
  t.like(chooseLauncher({ ...base, proot: false }), { launcher: null });
  t.regex(chooseLauncher({ ...base, proot: false }).launcherReason, /apt-get install proot/);
  t.regex(chooseLauncher({ ...base, root: true, crun: false }).launcherReason, /apt-get install crun/);
  t.is(chooseLauncher({ ...base, prefer: 'overlay' }).launcher, null, 'a strategy that needs namespaces never falls back to proot');
});

test('proot: the run script carries env and program, quoted; proot binds the run script and volumes', (t) => {
  t.is(runScript(['/bin/echo', "it's"], { A: 'x y', B: "q'q" }), "#!/bin/sh\n# written by anybios for this run: the spec's env and program\nunset LC_ALL\nexport A='x y'\nexport B='q'\\''q'\nexec '/bin/echo' 'it'\\''s'\n");
  t.deepEqual(prootArgs({ root: '/d/u', cwd: '/w', volumes: [{ source: '/v/a', target: '/srv', readOnly: false }] }, '/d/run', ['/bin/sh', '/.anybios-run']), ['-0', '-r', '/d/u', '-b', '/proc', '-b', '/dev', '-b', '/sys', '-b', '/d/run:/.anybios-run', '-b', '/v/a:/srv', '-w', '/w', '/bin/sh', '/.anybios-run']);
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
