// Real systems: overlay mounts, namespaces and processes on this machine (root or a user namespace).
import test from 'ava';
import { promises as fsp, existsSync, readFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { app, hostMountsUnder, osSystem, requirePrivilege, setup, waitFor } from './helpers/setup.ts';
import { RuntimeError } from '../../../agent/runtime/index.ts';
import { docErrors } from '../../../ddocs/validate.ts';

const codeOf = (e: unknown) => (e as RuntimeError).code;

test.serial('os system boots its init as pid 1: marker in its layer, hostname, only lo (up), stays up, stops on SIGTERM', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, base } = await setup(t);
  const o = await rt.start(osSystem('os1', { hostname: 'box-one' }), template);
  t.is(o.phase, 'running');
  t.truthy(o.pid);
  const marker = `${data}/systems/os1/upper/var/lib/marker`;
  const text = await waitFor(async () => existsSync(marker) && readFileSync(marker, 'utf8'));
  t.is(text.trim(), 'booted pid=1 hostname=box-one');
  await new Promise((r) => setTimeout(r, 300));
  const again = await rt.observe('os1');
  t.is(again?.phase, 'running');
  t.is(again?.pid, o.pid);
  // Own namespaces: pid, mount, uts, ipc, net differ from ours.
  for (const ns of ['pid', 'mnt', 'uts', 'ipc', 'net']) {
    t.not(await fsp.readlink(`/proc/${o.pid}/ns/${ns}`), await fsp.readlink(`/proc/self/ns/${ns}`), ns);
  }
  const enter = async (cmd: string[]) => {
    const argv = await rt.enterArgs('os1', cmd);
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    return r.stdout.trim();
  };
  t.is(await enter(['/bin/ls', '/sys/class/net']), 'lo');
  t.is(await enter(['/bin/cat', '/sys/class/net/lo/flags']), '0x9', 'lo is up (IFF_UP|IFF_LOOPBACK)');
  t.is(await enter(['/bin/cat', '/proc/sys/kernel/hostname']), 'box-one');
  t.is(await enter(['/bin/cat', '/proc/1/cmdline']), '/bin/sh\0/sbin/init\0');
  t.is(await enter(['/bin/cat', '/etc/hostname']), 'box-one');
  t.regex(await enter(['/bin/ls', '/dev']), /null[\s\S]*pts[\s\S]*urandom/);
  // The rootfs is mounted only inside the system: nothing in our mount namespace.
  t.deepEqual(hostMountsUnder(base), []);
  const inside = execFileSync('findmnt', ['-rn', '-N', String(o.supervisor!.pid), '-o', 'TARGET']).toString();
  t.regex(inside, /^\/run\/anybios\/[0-9a-f]{8}\/os1$/m, 'the root is mounted in the system\'s namespace only');
  const stopped = await rt.stop('os1', { graceMs: 5000 });
  t.is(stopped?.phase, 'stopped');
  t.is(stopped?.exitCode, 0, 'init handled SIGTERM and exited 0');
  t.regex(await rt.logTail('os1'), /init: pid 1 hostname box-one[\s\S]*SIGTERM, bye/);
  t.false(existsSync(`/proc/${o.pid}`) && readFileSync(`/proc/${o.pid}/stat`, 'utf8').includes('(sh)') && (await fsp.readlink(`/proc/${o.pid}/ns/pid`)) === '');
  // stop again: already stopped is success
  t.is((await rt.stop('os1'))?.phase, 'stopped');
});

test.serial('app on the host template runs a host binary; the host is untouched, its layer holds the change, data dir and /tmp are hidden', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, hostTemplate, templateRoot, base } = await setup(t);
  const probe = `/etc/anybios-test-${process.pid}`;
  t.teardown(() => fsp.rm(probe, { force: true }));
  await fsp.writeFile(`${data}/secret`, 'host data');
  const script = [
    `echo changed > ${probe}`,
    // The host's own files are not the system's (not idmapped): it writes where the host lets anyone
    // (/var/tmp) and in what its layer gives it (/etc, made for it at materialize).
    '/usr/bin/id -u > /var/tmp/uid',
    `ls -A ${data} > /var/tmp/data-listing`,
    `ls -A ${templateRoot} > /var/tmp/template-listing`,
    'ls -A /tmp > /var/tmp/tmp-listing',
    'ls -A /run > /var/tmp/run-listing',
    '(echo x > /root/owned-by-host) 2>/dev/null && echo wrote-root > /var/tmp/root-write; true',
  ].join('; ');
  const spec = app('hosty', ['/bin/sh', '-c', script], { template: 'host' });
  await rt.start(spec, hostTemplate);
  t.is(await rt.wait('hosty', { timeoutMs: 10_000 }), 0, await rt.logTail('hosty'));
  const upper = `${data}/systems/hosty/upper`;
  t.false(existsSync(probe), 'the host /etc is untouched');
  t.is(readFileSync(`${upper}${probe}`, 'utf8'), 'changed\n');
  t.is(readFileSync(`${upper}/var/tmp/uid`, 'utf8').trim(), '0');
  t.is(readFileSync(`${upper}/var/tmp/data-listing`, 'utf8'), '', 'the data dir (other systems, volumes) is hidden');
  t.is(readFileSync(`${upper}/var/tmp/template-listing`, 'utf8'), '', 'template roots are hidden');
  t.is(readFileSync(`${upper}/var/tmp/tmp-listing`, 'utf8'), '', '/tmp is a fresh tmpfs');
  t.is(readFileSync(`${upper}/var/tmp/run-listing`, 'utf8'), '', '/run is a fresh tmpfs');
  t.false(existsSync(`${upper}/var/tmp/root-write`), "the host's /root (0700, host root) is not the system's");
  const o = await rt.observe('hosty');
  t.is(o?.phase, 'stopped');
  t.true((o?.diskUsed ?? 0) < 64 * 1024, `layer ${o?.diskUsed} bytes`);
  t.deepEqual(hostMountsUnder(base), []);
  t.deepEqual(hostMountsUnder('/etc'), []);
});

test.serial('volumes persist across destroy and re-create; destroy with volumes removes them', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, base } = await setup(t);
  const spec = app('vol1', ['/bin/sh', '-c', 'echo run >> /srv/data/runs; cat /srv/data/runs'], { mounts: [{ volume: 'keep', target: '/srv/data' }] });
  await rt.start(spec, template);
  t.is(await rt.wait('vol1'), 0);
  await rt.destroy('vol1');
  t.false(existsSync(`${data}/systems/vol1`));
  t.is(readFileSync(`${data}/volumes/keep/runs`, 'utf8'), 'run\n');
  await rt.start(spec, template);
  t.is(await rt.wait('vol1'), 0);
  t.is(readFileSync(`${data}/volumes/keep/runs`, 'utf8'), 'run\nrun\n');
  t.regex(await rt.logTail('vol1'), /run\nrun/);
  // read-only volume
  const ro = app('vol2', ['/bin/sh', '-c', 'echo x > /in/file'], { mounts: [{ volume: 'keep', target: '/in', readOnly: true }] });
  await rt.start(ro, template);
  t.not(await rt.wait('vol2'), 0, 'a read-only volume refuses writes');
  t.false(existsSync(`${data}/volumes/keep/file`));
  await rt.destroy('vol2');
  await rt.destroy('vol1', { volumes: true });
  t.false(existsSync(`${data}/volumes/keep`));
  await rt.destroy('vol1', { volumes: true }); // already gone is success
  t.deepEqual(hostMountsUnder(base), []);
});

test.serial('resource limits land in cgroups; stop and destroy leave no mount, process or cgroup', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, base } = await setup(t);
  const caps = await rt.capabilities();
  t.truthy(caps.cgroup.layout);
  const spec = osSystem('lim1', { resources: { memory: 64 * 1024 * 1024, pids: 64, cpuWeight: 200 } });
  const o = await rt.start(spec, template);
  const cgs = (await fsp.readFile(`/proc/${o.pid}/cgroup`, 'utf8')).split('\n');
  const mem = caps.cgroup.controllers.memory;
  if (caps.root && mem) {
    const leaf = cgs.find((l) => /memory/.test(l.split(':')[1] ?? '') || (mem.version === 2 && l.startsWith('0::')))!;
    const rel = leaf.split(':')[2]!;
    t.regex(rel, /^\/anybios\/[0-9a-f]{8}-lim1$/);
    const file = mem.version === 2 ? 'memory.max' : 'memory.limit_in_bytes';
    t.is(readFileSync(`${mem.root}${rel}/${file}`, 'utf8').trim(), String(64 * 1024 * 1024));
    const pids = caps.cgroup.controllers.pids!;
    t.is(readFileSync(`${pids.root}${rel}/pids.max`, 'utf8').trim(), '64');
  } else {
    t.fail(`no memory cgroup controller to check (${JSON.stringify(caps.cgroup)})`);
  }
  const sup = o.supervisor!;
  await rt.destroy('lim1', { graceMs: 2000 });
  t.false(existsSync(`${data}/systems/lim1`));
  t.false(existsSync(`/proc/${o.pid}`) && !readFileSync(`/proc/${o.pid}/stat`, 'utf8').includes(' Z '), 'pid 1 is gone');
  t.false(existsSync(`/proc/${sup.pid}/stat`) && readFileSync(`/proc/${sup.pid}/stat`, 'utf8').split(' ')[21] === String(sup.startTime), 'supervisor is gone');
  for (const c of Object.values(caps.cgroup.controllers)) {
    const dirs = existsSync(`${c.root}/anybios`) ? await fsp.readdir(`${c.root}/anybios`) : [];
    t.false(dirs.some((d) => d.endsWith('-lim1')), `cgroup left in ${c.root}`);
  }
  t.deepEqual(hostMountsUnder(base), []);
  t.is(await rt.observe('lim1'), null);
  await rt.destroy('lim1'); // idempotent
});

test.serial('every traversal attempt is refused with a code', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, templateRoot, base } = await setup(t);
  const outside = `${base}/outside`;
  await fsp.mkdir(outside);
  // "../" in a target: refused by the schema and by our own normalization
  await t.throwsAsync(rt.start(app('t1', ['/bin/true'], { mounts: [{ volume: 'v', target: '/srv/../etc' }] }), template), { code: 'INVALID_SPEC' } as never);
  // names
  await t.throwsAsync(rt.stop('../etc'), { code: 'INVALID_NAME' } as never);
  await t.throwsAsync(rt.start({ ...app('t1', ['/bin/true']), name: 'Bad/..' } as never, template), { code: 'INVALID_NAME' } as never);
  // a template with an absolute and a relative escaping symlink
  const evil = `${templateRoot}/evil-${process.pid}`;
  t.teardown(() => fsp.rm(evil, { recursive: true, force: true }));
  await fsp.cp(template.path!, evil, { recursive: true, verbatimSymlinks: true });
  await fsp.symlink(outside, `${evil}/abs`);
  await fsp.symlink('../../../../../..', `${evil}/rel`);
  const evilT = { ...template, _id: 'template:evil', name: 'evil', path: evil } as typeof template;
  for (const target of ['/abs', '/abs/sub', '/rel/tmp/x']) {
    const e = await t.throwsAsync(rt.start(app('t2', ['/bin/true'], { template: 'evil', mounts: [{ volume: 'v', target }] }), evilT));
    t.is(codeOf(e), 'PATH_SYMLINK', target);
  }
  // a symlink a previous run planted in the system's own layer
  await rt.start(app('t3', ['/bin/ln', '-s', '/', '/mnt']), template);
  t.is(await rt.wait('t3'), 0, await rt.logTail('t3'));
  t.true((await fsp.lstat(`${data}/systems/t3/upper/mnt`)).isSymbolicLink());
  const e3 = await t.throwsAsync(rt.start(app('t3', ['/bin/true'], { mounts: [{ volume: 'v', target: '/mnt/etc' }] }), template));
  t.is(codeOf(e3), 'PATH_SYMLINK');
  // reserved and nested targets
  t.is(codeOf(await t.throwsAsync(rt.start(app('t4', ['/bin/true'], { mounts: [{ volume: 'v', target: '/proc/x' }] }), template))), 'PATH_RESERVED');
  const nested = [{ volume: 'v', target: '/a' }, { volume: 'w', target: '/a/b' }];
  t.is(codeOf(await t.throwsAsync(rt.start(app('t4', ['/bin/true'], { mounts: nested }), template))), 'PATH_NESTED');
  // a symlinked volume directory, and a symlinked volume root
  await fsp.mkdir(`${data}/volumes`, { recursive: true });
  await fsp.symlink(outside, `${data}/volumes/sneaky`);
  t.is(codeOf(await t.throwsAsync(rt.start(app('t5', ['/bin/true'], { mounts: [{ volume: 'sneaky', target: '/srv' }] }), template))), 'VOLUME_SYMLINK');
  const { createRuntime } = await import('../../../agent/runtime/index.ts');
  await fsp.symlink(outside, `${base}/volroot-link`);
  const rt2 = await createRuntime({ checkDoc: docErrors, dataDir: `${base}/data2`, templateRoots: [templateRoot], volumeRoot: `${base}/volroot-link` });
  t.teardown(async () => {
    for (const o of await rt2.list()) await rt2.destroy(o.name, { graceMs: 100 });
  });
  t.is(codeOf(await t.throwsAsync(rt2.start(app('t6', ['/bin/true'], { mounts: [{ volume: 'v', target: '/srv' }] }), template))), 'VOLUME_ROOT_SYMLINK');
  // templates outside the template roots, directly or through a symlink
  const etcT = { ...template, _id: 'template:etc', name: 'etc', path: '/etc' } as typeof template;
  t.is(codeOf(await t.throwsAsync(rt.start(app('t7', ['/bin/true'], { template: 'etc' }), etcT))), 'TEMPLATE_OUTSIDE_ROOTS');
  await fsp.symlink('/usr', `${templateRoot}/usr-link-${process.pid}`);
  t.teardown(() => fsp.rm(`${templateRoot}/usr-link-${process.pid}`, { force: true }));
  const linkT = { ...template, _id: 'template:lnk', name: 'lnk', path: `${templateRoot}/usr-link-${process.pid}` } as typeof template;
  t.is(codeOf(await t.throwsAsync(rt.start(app('t7', ['/bin/true'], { template: 'lnk' }), linkT))), 'TEMPLATE_OUTSIDE_ROOTS');
  // nothing was written outside
  t.deepEqual(await fsp.readdir(outside), []);
  t.deepEqual(hostMountsUnder(base), []);
});

test.serial('logs stream and rotate; a missing program fails with its exit code; a setup failure is START_FAILED', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template } = await setup(t, { logMaxBytes: 2000 });
  await rt.start(app('talk', ['/bin/sh', '-c', 'i=0; while [ $i -lt 100 ]; do echo "line $i ................................"; i=$((i+1)); done']), template);
  t.is(await rt.wait('talk'), 0);
  let all = '';
  for await (const chunk of rt.logs('talk')) all += chunk.toString();
  t.regex(all, /line 99/);
  await rt.observe('talk'); // observing keeps the cap
  t.true(existsSync(`${data}/systems/talk/log.1`));
  t.is((await fsp.stat(`${data}/systems/talk/log`)).size, 0);
  t.regex(await rt.logTail('talk', 100), /line 99/);
  // follow: sees lines appended after it started, stops when aborted
  await rt.start(app('tick', ['/bin/sh', '-c', 'sleep 0.3; echo late-line; sleep 30']), template);
  const ac = new AbortController();
  let followed = '';
  for await (const chunk of rt.logs('tick', { follow: true, signal: ac.signal })) {
    followed += chunk.toString();
    if (followed.includes('late-line')) ac.abort();
  }
  t.regex(followed, /late-line/);
  await rt.stop('tick', { graceMs: 100 });
  // a command that is not there: crun refuses before anything runs, naming it
  const missing = await t.throwsAsync(rt.start(app('nope', ['/bin/does-not-exist']), template));
  t.is(codeOf(missing), 'START_FAILED');
  t.regex(missing!.message, /\/bin\/does-not-exist. not found/);
  const o = await rt.observe('nope');
  t.is(o?.phase, 'failed');
  t.is(o?.code, 'START_FAILED');
  t.is(o?.restarts, 0);
  await rt.start(app('nope', ['/bin/true']), template);
  t.is(await rt.wait('nope'), 0);
  t.is((await rt.observe('nope'))?.restarts, 1);
  // setup failure: the idmapped template's mount point vanished before the system could mount it
  const { createRuntime } = await import('../../../agent/runtime/index.ts');
  const rt2 = await createRuntime({
    checkDoc: docErrors,
    dataDir: data,
    templateRoots: [template.path!.replace(/\/mini$/, '')],
    faultPoint: async (p) => {
      if (p === 'start:before-spawn') await fsp.rm(`${data}/systems/broken/lower`, { recursive: true });
    },
  });
  const e = await t.throwsAsync(rt2.start(app('broken', ['/bin/true']), template));
  t.is(codeOf(e), 'START_FAILED');
  t.regex((e as Error).message, /mount/);
  const b = await rt.observe('broken');
  t.is(b?.phase, 'failed');
  t.is(b?.code, 'START_FAILED');
});

test.serial('copy strategy: a full copy per system, same behaviour; refuses the host template', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, hostTemplate } = await setup(t, { strategy: 'copy' });
  await rt.start(app('cp1', ['/bin/sh', '-c', 'echo hi > /root/hi']), template);
  t.is(await rt.wait('cp1'), 0);
  t.is(readFileSync(`${data}/systems/cp1/upper/root/hi`, 'utf8'), 'hi\n');
  t.true(existsSync(`${data}/systems/cp1/upper/bin/sh`), 'the layer is a full copy');
  t.false(existsSync(`${template.path}/root/hi`), 'the template is untouched');
  t.is(codeOf(await t.throwsAsync(rt.start(app('cp2', ['/bin/true'], { template: 'host' }), hostTemplate))), 'TEMPLATE_HOST_COPY');
});

test.serial('tar template: verified by sha256, unpacked once into the cache', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, base } = await setup(t);
  const tarball = `${base}/mini.tar`;
  execFileSync('tar', ['-C', template.path!, '-cf', tarball, '.']);
  const sha = execFileSync('sha256sum', [tarball]).toString().split(' ')[0]!;
  const tarT = { _id: 'template:tarred', type: 'template', name: 'tarred', source: 'tar', sha256: sha } as const;
  const bad = { ...tarT, sha256: 'f'.repeat(64) };
  t.is(codeOf(await t.throwsAsync(rt.start(app('tar0', ['/bin/true'], { template: 'tarred' }), bad, { tarball }))), 'TEMPLATE_SHA_MISMATCH');
  t.is(codeOf(await t.throwsAsync(rt.start(app('tar0', ['/bin/true'], { template: 'tarred' }), tarT))), 'TEMPLATE_NOT_FOUND');
  await rt.start(app('tar1', ['/bin/cat', '/etc/os-release'], { template: 'tarred' }), tarT, { tarball: await fsp.readFile(tarball) });
  t.is(await rt.wait('tar1'), 0);
  t.regex(await rt.logTail('tar1'), /anybios-fixture/);
  t.true(existsSync(`${data}/templates/${sha}/bin/sh`));
  // cached: no tarball needed any more
  await rt.start(app('tar2', ['/bin/true'], { template: 'tarred' }), tarT);
  t.is(await rt.wait('tar2'), 0);
  t.deepEqual((await fsp.readdir(`${data}/templates`)).filter((n) => n.startsWith('.tmp')), []);
});
