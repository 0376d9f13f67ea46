// Rootless: the runtime used by an unprivileged user (uid/gid 65534, `nobody`), each step in a child node
// process run through `setpriv --reuid=65534 --regid=65534 --clear-groups` (the suite runs as root), on a
// data dir and a fixture template owned by that user under /var/tmp. Systems then run in a user
// namespace (`unshare --user --map-root-user`): root inside, uid 65534 on the host.
//
// The child runs `node --import tsx` straight from the repo: it must be readable by uid 65534 (a clone
// with umask 022 is). Nothing is copied or re-permissioned; a preflight fails with a clear message when
// the repo is not readable, or when this kernel gives an unprivileged user no user namespace.
import test, { type ExecutionContext } from 'ava';
import { existsSync, promises as fsp, readFileSync, readlinkSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { buildRootfs } from '../../../fixtures/rootfs/build.ts';
import { createRuntime, type Observed } from '../../../agent/runtime/index.ts';
import { isSameProcess, readStat } from '../../../agent/runtime/proc.ts';
import type { SystemDoc, TemplateDoc } from '../../../ddocs/schemas/types.ts';
import { TEST_BASE, hostMountsUnder, waitFor } from './helpers/setup.ts';
import type { ChildArgs } from './helpers/rootless-child.ts';
import { docErrors } from '../../../ddocs/validate.ts';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const CHILD = fileURLToPath(new URL('./helpers/rootless-child.ts', import.meta.url));
const UID = 65534;
const AS_USER = ['setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--'];

interface ChildOut {
  identity: { uid: number; gid: number; groups: number[] };
  results: any[];
  logs: string[];
}

/** Processes started by these tests (killed by teardown if still there). */
function childEnv(base: string): string[] {
  return ['env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `HOME=${base}`, `TMPDIR=${base}/tmp`];
}

function parseChild(stdout: string, stderr: string, status: number | null): ChildOut {
  const line = stdout.trim().split('\n').pop();
  try {
    return JSON.parse(line ?? '') as ChildOut;
  } catch {
    throw new Error(`the unprivileged child printed no result (exit ${status}):\n${stdout}\n${stderr}`);
  }
}

/** One child node process as uid 65534 doing `ops` on the runtime. */
function asUser(base: string, args: ChildArgs): ChildOut {
  const r = spawnSync(AS_USER[0]!, [...AS_USER.slice(1), ...childEnv(base), process.execPath, '--import', 'tsx', CHILD, JSON.stringify(args)], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 90_000,
    killSignal: 'SIGKILL',
  });
  return parseChild(r.stdout ?? '', r.stderr ?? '', r.status);
}

/** The child ran as uid/gid 65534 with no other group (node's getgroups() adds the egid). */
function unprivileged(t: ExecutionContext, out: ChildOut): void {
  t.like(out.identity, { uid: UID, gid: UID }, 'the child runs unprivileged');
  t.deepEqual([...new Set([UID, ...out.identity.groups])], [UID], 'and in no other group');
}

/** A base dir under /var/tmp owned by uid 65534; teardown (registered first) removes whatever runs there. */
async function userBase(t: ExecutionContext): Promise<string> {
  const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-rootless-`);
  t.teardown(async () => {
    // The systems: a root runtime on the same data dir stops and destroys them (it can signal anything).
    if (existsSync(`${base}/data/systems`)) {
      const rt = await createRuntime({ checkDoc: docErrors, dataDir: `${base}/data`, templateRoots: [`${base}/templates`] }).catch(() => null);
      for (const o of (await rt?.list({ diskUsage: false }).catch(() => [])) ?? []) await rt!.destroy(o.name, { graceMs: 200 }).catch(() => {});
    }
    // Anything still carrying the data dir in its argv (a supervisor whose state was lost): kill its group.
    for (const pid of await argvMatches(base)) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await fsp.rm(base, { recursive: true, force: true });
  });
  await fsp.mkdir(`${base}/tmp`);
  await fsp.mkdir(`${base}/data`);
  return base;
}

async function argvMatches(s: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if ((await fsp.readFile(`/proc/${name}/cmdline`, 'utf8')).includes(s)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Fail (never skip) with a clear message when uid 65534 cannot run the child or get a user namespace. */
function preflight(t: ExecutionContext): boolean {
  if (process.getuid?.() !== 0) {
    t.fail('the rootless tests start their unprivileged children with setpriv and must run as root');
    return false;
  }
  const readable = spawnSync(AS_USER[0]!, [...AS_USER.slice(1), 'sh', '-c', 'test -r "$1/package.json" && test -r "$1/node_modules/tsx/package.json" && test -r "$2" && test -x "$3"', 'sh', REPO, CHILD, process.execPath], { encoding: 'utf8' });
  if (readable.status !== 0) {
    t.fail(`uid ${UID} cannot read the repo (${REPO}: package.json, node_modules/tsx, ${CHILD}) or run ${process.execPath}; clone it readable for others (umask 022) to run the rootless tests`);
    return false;
  }
  const ns = spawnSync(AS_USER[0]!, [...AS_USER.slice(1), 'unshare', '--user', '--map-root-user', '--mount', '--pid', '--fork', 'sh', '-c', 'mount -t tmpfs x /tmp'], { encoding: 'utf8' });
  if (ns.status !== 0) {
    t.fail(`this kernel does not let an unprivileged user create a user namespace (unshare --user --map-root-user as uid ${UID}: ${ns.stderr.trim()}); rootless operation cannot be tested here`);
    return false;
  }
  return true;
}

const TEMPLATE = (base: string): TemplateDoc => ({ _id: 'template:mini', type: 'template', name: 'mini', source: 'dir', path: `${base}/templates/mini` });

function sys(name: string, kind: 'os' | 'app', extra: Partial<SystemDoc>): SystemDoc {
  return { _id: `system:${name}`, type: 'system', name, kind, template: 'mini', state: 'running', ...extra } as SystemDoc;
}

const APP_SCRIPT = [
  'echo "pid=$$"',
  'echo "hostname=$(hostname)"',
  'echo "net=$(ls /sys/class/net)"',
  'echo "uid=$(id -u)"',
  'echo "pwd=$(pwd)"',
  'echo kept > /data/v',
  'echo hello > /root/app-file',
  'mkdir -p /root/locked/inner && touch /root/locked/inner/f',
  'echo ready',
  "trap 'exit 0' TERM",
  'while :; do sleep 1 & wait $!; done',
].join('\n');

function hostMountsMentioning(s: string): string[] {
  return execFileSync('findmnt', ['-rn', '-o', 'TARGET,SOURCE,OPTIONS'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(s));
}

test.serial('rootless: os and app systems run as an unprivileged user in a user namespace, are adopted, stopped and destroyed', async (t) => {
  const base = await userBase(t);
  if (!preflight(t)) return;
  const data = `${base}/data`;
  const template = TEMPLATE(base);
  await buildRootfs(`${base}/templates/mini`);
  // Everything of the test belongs to the unprivileged user; the template too, so that its files are
  // root's inside the system (a template owned by someone else shows as nobody there: read-only).
  execFileSync('chown', ['-R', `${UID}:${UID}`, base]);
  await fsp.chmod(base, 0o755);

  const os1 = sys('os1', 'os', { init: ['/sbin/init'], hostname: 'os-one' });
  const app1 = sys('app1', 'app', { command: ['/bin/sh', '-c', APP_SCRIPT], hostname: 'app-one', network: 'none', workdir: '/root', mounts: [{ volume: 'v1', target: '/data' }], resources: { memory: 64 * 1024 * 1024 } } as Partial<SystemDoc>);
  const hostNet = sys('app-hostnet', 'app', { command: ['/bin/sh', '-c', 'echo net=$(ls /sys/class/net)'], network: 'host' });
  const hostTpl = sys('host-app', 'app', { command: ['/bin/true'], template: 'host' });

  // 1. One unprivileged process starts them, then exits.
  const first = asUser(base, {
    dataDir: data,
    templateRoots: [`${base}/templates`],
    ops: [
      { op: 'caps' },
      { op: 'start', spec: os1, template },
      { op: 'start', spec: app1, template },
      { op: 'start', spec: hostNet, template },
      { op: 'start', spec: hostTpl, template: { _id: 'template:host', type: 'template', name: 'host', source: 'host' } },
    ],
  });
  unprivileged(t, first);
  const [caps, oOs, oApp, oHostNet, hostErr] = first.results;
  t.like(caps, { root: false, userns: true, usernsError: null, rootless: true, overlay: true, strategy: 'overlay', resourceLimits: false });
  for (const o of [oOs, oApp, oHostNet]) t.is(o?.phase, 'running', JSON.stringify(o));
  // The host template cannot work in a user namespace: refused with its own code, before anything is made.
  t.is(hostErr?.error?.code, 'TEMPLATE_HOST_ROOTLESS', JSON.stringify(hostErr));
  t.false(existsSync(`${data}/systems/host-app`));
  t.true(first.logs.some((l) => l.includes('app1: resource limits need root')), first.logs.join('\n'));

  // 2. They outlive the child. On the host they run as uid 65534 in a user namespace of their own.
  for (const o of [oOs, oApp] as Observed[]) {
    const st = await readStat(o.pid!);
    t.is(st?.startTime, o.startTime ?? undefined, `${o.name}: pid 1 alive after the starter exited`);
    const uids = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${o.pid}/status`, 'utf8'))![1]!.split(/\s+/).map(Number);
    t.deepEqual(uids, [UID, UID, UID, UID], `${o.name} runs as uid ${UID} on the host`);
    t.not(readlinkSync(`/proc/${o.pid}/ns/user`), readlinkSync('/proc/self/ns/user'));
    t.is(readFileSync(`/proc/${o.pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), `0 ${UID} 1`);
  }
  // os: init is pid 1, wrote its marker into the system's own layer, with the spec's hostname.
  const marker = `${data}/systems/os1/upper/var/lib/marker`;
  await waitFor(async () => existsSync(marker) && readFileSync(marker, 'utf8').includes('\n'), 10_000).catch(() => {});
  t.is(existsSync(marker) ? readFileSync(marker, 'utf8') : `no marker; log: ${readFileSync(`${data}/systems/os1/log`, 'utf8')}`, 'booted pid=1 hostname=os-one\n');
  t.false(existsSync(`${base}/templates/mini/var/lib/marker`), 'the template is untouched');
  // app: pid 1, hostname, network none (only lo), root inside; its write went to its upper layer only.
  const appLog = `${data}/systems/app1/log`;
  await waitFor(async () => existsSync(appLog) && readFileSync(appLog, 'utf8').includes('ready'), 10_000).catch(() => {});
  const log = readFileSync(appLog, 'utf8');
  for (const l of ['pid=1', 'hostname=app-one', 'net=lo', 'uid=0', 'pwd=/root', 'ready']) t.true(log.split('\n').includes(l), `app log lacks ${l}:\n${log}`);
  t.is(readFileSync(`${data}/systems/app1/upper/root/app-file`, 'utf8'), 'hello\n');
  t.is(readFileSync(`${data}/volumes/v1/v`, 'utf8'), 'kept\n', 'the volume is bound');
  t.false(existsSync(`${base}/templates/mini/root/app-file`));
  // What a system may do to its own files (the fixture has no chmod, so done here in its layer): a
  // directory that its owner may not search; destroy must still remove it without root's DAC override.
  t.true(existsSync(`${data}/systems/app1/upper/root/locked/inner/f`));
  await fsp.chmod(`${data}/systems/app1/upper/root/locked`, 0);
  // network host: the host's interfaces (sysfs is bind-mounted: a user namespace cannot mount it there).
  const hostIfaces = execFileSync('ls', ['/sys/class/net'], { encoding: 'utf8' }).trim().split('\n').join(' ');
  await waitFor(async () => readFileSync(`${data}/systems/app-hostnet/log`, 'utf8').includes('net='), 10_000).catch(() => {});
  t.true(readFileSync(`${data}/systems/app-hostnet/log`, 'utf8').includes(`net=${hostIfaces}\n`), readFileSync(`${data}/systems/app-hostnet/log`, 'utf8'));
  // Nothing of ours in the host's mount table while they run: the mounts live in their namespaces.
  t.deepEqual(hostMountsUnder(base), []);
  t.deepEqual(hostMountsMentioning(base), []);

  // 3. A second unprivileged process adopts them (no restart), enters one, stops and destroys them.
  const second = asUser(base, {
    dataDir: data,
    templateRoots: [`${base}/templates`],
    ops: [
      { op: 'list' },
      { op: 'enter', name: 'app1', cmd: ['/bin/sh', '-c', 'echo "$(id -u) $(hostname) $(ls /sys/class/net)"; cat /root/app-file'] },
      { op: 'stop', name: 'app1' },
      { op: 'stop', name: 'os1' },
      { op: 'observe', name: 'os1' },
      { op: 'destroy', name: 'app1' },
      { op: 'destroy', name: 'os1' },
      { op: 'destroy', name: 'app-hostnet' },
      { op: 'list' },
    ],
  });
  const [listed, entered, stoppedApp, stoppedOs, observedOs, d1, d2, d3, after] = second.results;
  const byName = new Map((listed as Observed[]).map((o) => [o.name, o]));
  for (const o of [oOs, oApp] as Observed[]) {
    t.like(byName.get(o.name), { phase: 'running', pid: o.pid, startTime: o.startTime, supervisor: o.supervisor, restarts: 0 }, `${o.name} adopted as it was`);
  }
  t.is(byName.get('app-hostnet')?.phase, 'stopped', 'the host-network app exited 0');
  t.is(entered?.status, 0, JSON.stringify(entered));
  t.is(entered?.stdout, '0 app-one lo\nhello\n');
  t.like(stoppedApp, { phase: 'stopped', exitCode: 0 });
  t.like(stoppedOs, { phase: 'stopped', exitCode: 0 });
  t.like(observedOs, { phase: 'stopped', pid: null });
  t.deepEqual([d1, d2, d3], ['destroyed', 'destroyed', 'destroyed']);
  t.deepEqual(after, []);
  // Gone for real: processes, layers, mounts.
  // (A zombie counts as gone: our starter has exited, so whoever reaps orphans here reaps them, in its own time.)
  for (const o of [oOs, oApp] as Observed[]) {
    t.false(await isSameProcess(o.pid!, o.startTime!), `${o.name} pid 1 gone`);
    t.false(await isSameProcess(o.supervisor!.pid, o.supervisor!.startTime), `${o.name} supervisor gone`);
  }
  t.deepEqual(await fsp.readdir(`${data}/systems`), []);
  t.is(readFileSync(`${data}/volumes/v1/v`, 'utf8'), 'kept\n', 'volumes stay (destroy without volumes)');
  t.deepEqual(await argvMatches(data), []);
  t.deepEqual(hostMountsUnder(base), []);
  t.deepEqual(hostMountsMentioning(base), []);
});

/**
 * Run the child as uid 65534 inside a user namespace made by us (root) whose own limit on nested user
 * namespaces is 0: the kernel really refuses `unshare --user` to it (ENOSPC), exactly as on a host with
 * user.max_user_namespaces=0, while the host's setting is never touched (the limit lives and dies with
 * that namespace). The namespace maps uids/gids 0-65535 to the same ids on the host, so the repo and the
 * test's files look as they do outside.
 */
async function asUserWithoutUserns(t: ExecutionContext, base: string, args: ChildArgs): Promise<ChildOut> {
  const inner = [...AS_USER, ...childEnv(base), process.execPath, '--import', 'tsx', CHILD, JSON.stringify(args)];
  // unshare execs sh before its uid map exists, so that sh has no capabilities in the namespace; the
  // `sh -c` it execs once the map is written (uid 0 there) has them, sets the limit and drops to 65534.
  const script = 'echo ready; read go; exec sh -c \'echo 0 > /proc/sys/user/max_user_namespaces || exit 97; exec "$@"\' sh "$@"';
  const child = spawn('unshare', ['--user', '--', 'sh', '-c', script, 'sh', ...inner], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`unshare --user did not start: ${stderr}`)), 10_000);
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (stdout.startsWith('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('error', reject);
  });
  await fsp.writeFile(`/proc/${child.pid}/uid_map`, '0 0 65536\n');
  await fsp.writeFile(`/proc/${child.pid}/gid_map`, '0 0 65536\n');
  child.stdin.end('go\n');
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const code = await exited;
  clearTimeout(timer);
  return parseChild(stdout.slice('ready\n'.length), stderr, code);
}

test.serial('rootless: without user namespaces and with a strategy that needs them, an unprivileged user is refused with NOT_PRIVILEGED, before anything is made', async (t) => {
  const base = await userBase(t);
  if (!preflight(t)) return;
  const hostLimit = readFileSync('/proc/sys/user/max_user_namespaces', 'utf8');
  const data = `${base}/data`;
  const template = TEMPLATE(base);
  await buildRootfs(`${base}/templates/mini`);
  execFileSync('chown', ['-R', `${UID}:${UID}`, base]);
  await fsp.chmod(base, 0o755);
  const out = await asUserWithoutUserns(t, base, {
    dataDir: data,
    templateRoots: [`${base}/templates`],
    strategy: 'overlay',
    ops: [
      { op: 'caps' },
      { op: 'start', spec: sys('nope', 'app', { command: ['/bin/true'] }), template },
      { op: 'list' },
    ],
  });
  unprivileged(t, out);
  const [caps, started, listed] = out.results;
  t.like(caps, { root: false, userns: false, rootless: false, overlay: false, resourceLimits: false, launcher: null });
  t.regex(String(caps?.usernsError), /No space left on device/, 'the kernel refused the user namespace');
  t.is(started?.error?.code, 'NOT_PRIVILEGED', JSON.stringify(started));
  t.regex(String(started?.error?.message), /uid 65534 \(not root\).*no user namespace.*unshare --user --map-root-user failed \(.*No space left on device\)/);
  t.deepEqual(listed, []);
  t.false(existsSync(`${data}/systems/nope`), 'nothing materialized');
  t.deepEqual(hostMountsMentioning(base), []);
  t.is(readFileSync('/proc/sys/user/max_user_namespaces', 'utf8'), hostLimit, "the host's limit was never changed");
});

test.serial('proot: without root and without user namespaces, os and app systems run under proot as the same unprivileged user', async (t) => {
  const base = await userBase(t);
  if (!preflight(t)) return;
  if (!existsSync('/usr/bin/proot')) return t.fail('proot is not installed (Debian: apt-get install proot)');
  const data = `${base}/data`;
  const template = TEMPLATE(base);
  await buildRootfs(`${base}/templates/mini`);
  execFileSync('chown', ['-R', `${UID}:${UID}`, base]);
  await fsp.chmod(base, 0o755);
  const app = sys('papp', 'app', { command: ['/bin/sh', '-c', 'echo "app uid=$(id -u) token=$TOKEN"; echo kept > /srv/v; sleep 30'], env: { TOKEN: 't-1' }, mounts: [{ volume: 'pv', target: '/srv' }] });
  const os = sys('pos', 'os', {});
  const out = await asUserWithoutUserns(t, base, {
    dataDir: data,
    templateRoots: [`${base}/templates`],
    ops: [
      { op: 'caps' },
      { op: 'start', spec: app, template },
      { op: 'start', spec: os, template },
      { op: 'enter', name: 'pos', cmd: ['/bin/sh', '-c', 'sleep 0.5; cat /var/lib/marker; id -u'] },
      { op: 'observe', name: 'papp' },
      { op: 'logTail', name: 'papp' },
      { op: 'stop', name: 'pos', graceMs: 5000 },
      { op: 'stop', name: 'papp', graceMs: 5000 },
      { op: 'destroy', name: 'pos' },
      { op: 'destroy', name: 'papp' },
      { op: 'list' },
    ],
  });
  unprivileged(t, out);
  const [caps, oApp, oOs, entered, observedApp, appLog, stoppedOs, stoppedApp, d1, d2, after] = out.results;
  t.like(caps, { root: false, userns: false, launcher: 'proot', strategy: 'copy' });
  t.regex(String(caps?.launcherReason), /neither root nor a user namespace/);
  t.is(oApp?.phase, 'running', JSON.stringify(oApp));
  t.is(oOs?.phase, 'running', JSON.stringify(oOs));
  t.is(entered?.status, 0, JSON.stringify(entered));
  t.regex(String(entered?.stdout), /^booted pid=\d+ hostname=\S+\n0\n$/, 'the init ran and wrote into its own copy; root inside (faked)');
  t.is(observedApp?.phase, 'running');
  t.regex(String(appLog), /app uid=0 token=t-1/);
  t.like(stoppedOs, { phase: 'stopped', exitCode: 0 });
  t.is(stoppedApp?.phase, 'stopped');
  t.deepEqual([d1, d2], ['destroyed', 'destroyed']);
  t.deepEqual(after, []);
  t.is(readFileSync(`${data}/volumes/pv/v`, 'utf8'), 'kept\n', 'the volume was bound in');
  t.deepEqual(await argvMatches(data), []);
  t.deepEqual(hostMountsMentioning(base), []);
});
