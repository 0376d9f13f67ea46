// Attacks from inside a system, as a hostile program would make them (issue 9). Each ran as root of the
// host before the systems became containers (chroot, no user namespace, every capability).
// The host template gives the attacker the host's own perl and tools; syscall numbers are x86-64.
import test from 'ava';
import { promises as fsp, existsSync, readFileSync, statSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { app, hostMountsUnder, osSystem, requirePrivilege, setup, TEST_BASE } from './helpers/setup.ts';
import type { SystemDoc } from '../../../ddocs/schemas/types.ts';
import type { Env } from './helpers/setup.ts';

const x86 = process.arch === 'x64';

/** Run a shell script as an app on the host template; its output (the log) once it exited. */
async function attack(env: Env, name: string, script: string, extra: Partial<SystemDoc> = {}): Promise<{ code: number | null; log: string }> {
  await env.rt.start(app(name, ['/bin/sh', '-c', script], { template: 'host', ...extra }), env.hostTemplate);
  const code = await env.rt.wait(name, { timeoutMs: 20_000 });
  return { code, log: await env.rt.logTail(name, 64 * 1024) };
}

/** perl's syscall() with an errno report: "errno=<name>" or "ok". */
const sys = (nr: number, ...args: (number | string)[]) =>
  `perl -e '$r = syscall(${[nr, ...args].join(', ')}); print $r == -1 ? "errno=" . ($!{EPERM} ? "EPERM" : $!+0) : "ok", "\\n"'`;

test.serial('chroot escape (mkdir x; chroot x; cd .. many times; chroot .) finds only the system: no host file written, no host secret read', async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  const probe = `${TEST_BASE}/anybios-escape-${process.pid}`;
  t.teardown(() => fsp.rm(probe, { force: true }));
  await fsp.writeFile(`${env.data}/secret`, 'host data\n', { mode: 0o600 });
  const escape = [
    'mkdir "/tmp/x"; chroot "/tmp/x" or die "chroot: $!";',
    'chdir ".." for 1..64; chroot "." or die "chroot .: $!";',
    `open(F, ">", "${probe}") and print F "escaped\\n";`,
    `print "data: ", (-e "${env.data}/secret" ? "visible" : "absent"), "\\n";`,
    'print "shadow: ", (open(S, "<", "/etc/shadow") ? "read" : "refused"), "\\n";',
    'opendir(D, "/proc"); @p = grep { /^\\d+$/ } readdir(D); print "procs: ", scalar(@p), "\\n";',
  ].join(' ');
  const { log } = await attack(env, 'esc', `perl -e '${escape}'`);
  t.false(existsSync(probe), `a host file was written: ${log}`);
  t.regex(log, /data: absent/);
  t.regex(log, /shadow: refused/, 'the host /etc/shadow is not readable (its owner is not mapped into the system)');
  const procs = Number(/procs: (\d+)/.exec(log)?.[1]);
  t.true(procs >= 1 && procs <= 3, `only the system's own processes are visible (${procs})`);
  t.deepEqual(hostMountsUnder(env.base), []);
});

test.serial("the spec's env reaches only the system's pid 1: LD_PRELOAD of a library in its layer runs nowhere on the host", async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  const marker = `${TEST_BASE}/anybios-preload-${process.pid}`;
  t.teardown(() => fsp.rm(marker, { force: true }));
  // The attacker's library sits in its own layer, at a path the host can open.
  const lib = `${env.base}/evil.so`;
  const c = `${env.base}/evil.c`;
  await fsp.writeFile(c, `#include <stdio.h>\n__attribute__((constructor)) static void f(void) { FILE *o = fopen("${marker}", "a"); if (o) { fputs("loaded\\n", o); fclose(o); } }\n`);
  execFileSync('cc', ['-shared', '-fPIC', '-o', lib, c]);
  await env.rt.start(app('envy', ['/bin/sh', '-c', 'echo "pid1 sees $SECRET_TOKEN"; sleep 30'], { env: { LD_PRELOAD: lib, SECRET_TOKEN: 'tok-123' } }), env.template);
  const o = (await env.rt.observe('envy'))!;
  t.false(existsSync(marker), 'no host-side helper loaded the library');
  const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8');
  t.false(environ(o.supervisor!.pid).includes('SECRET_TOKEN'), 'the supervisor has a clean environment');
  for (const kid of readFileSync(`/proc/${o.supervisor!.pid}/task/${o.supervisor!.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
    t.false(environ(Number(kid)).includes('SECRET_TOKEN'), `host helper ${kid} has a clean environment`);
    t.false(readFileSync(`/proc/${kid}/cmdline`, 'utf8').includes('pid1 sees'), 'no command in a host process argv');
  }
  t.false(readFileSync(`/proc/${o.supervisor!.pid}/cmdline`, 'utf8').includes('pid1 sees'), 'no command in the supervisor argv');
  // (start returns once crun is about to exec the program: wait until pid 1 is the program itself.)
  const until = Date.now() + 5000;
  while (!environ(o.pid!).includes('SECRET_TOKEN') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.true(environ(o.pid!).includes('SECRET_TOKEN=tok-123'), "the system's pid 1 has it");
  const state = statSync(`${env.data}/systems/envy/state.json`);
  t.is(state.mode & 0o777, 0o600, 'state.json (it holds the env) is 0600');
  t.is(statSync(env.data).mode & 0o777, 0o700, 'the data dir is 0700');
  await env.rt.stop('envy', { graceMs: 500 });
});

test.serial("a default system's root is not root of the host: private id range, Docker's capability set, seccomp, no_new_privs", async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  await env.rt.start(app('who', ['/bin/sleep', '30']), env.template);
  const o = (await env.rt.observe('who'))!;
  const status = readFileSync(`/proc/${o.pid}/status`, 'utf8');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(status)![1]);
  t.true(uid >= 2 ** 31, `host uid of the system's root: ${uid}`);
  const capEff = BigInt('0x' + /^CapEff:\s+(\w+)/m.exec(status)![1]);
  t.is(capEff & (1n << 21n), 0n, 'no CAP_SYS_ADMIN');
  t.is(capEff & (1n << 16n), 0n, 'no CAP_SYS_MODULE');
  t.is(capEff & (1n << 19n), 0n, 'no CAP_SYS_PTRACE');
  t.regex(status, /^Seccomp:\s+2$/m);
  t.regex(status, /^NoNewPrivs:\s+1$/m);
  const uidMap = readFileSync(`/proc/${o.pid}/uid_map`, 'utf8').trim().split(/\s+/).map(Number);
  t.deepEqual(uidMap, [0, uid, 65536]);
  // Inside, its own files look like its own: the template (idmapped) and its layer belong to root.
  const argv = await env.rt.enterArgs('who', ['/bin/stat', '-c', '%u %g', '/bin/sh', '/etc/hostname']);
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), '0 0\n0 0');
  await env.rt.stop('who', { graceMs: 500 });
});

test.serial('kernel attack surface is closed: modules, kexec, keyctl, bpf, open_by_handle_at, ptrace of the host, sysrq, /proc/sys, a host block device', async (t) => {
  if (!requirePrivilege(t)) return;
  if (!x86) return t.fail('syscall numbers in this test are x86-64; add this architecture');
  const env = await setup(t);
  const rootDev = statSync('/').dev;
  const major = Math.floor(rootDev / 256) & 0xfff;
  const minor = (rootDev & 0xff) | ((rootDev >> 12) & 0xfff00);
  const script = [
    `echo init_module $(${sys(175, 0, 0, 0)})`,
    `echo finit_module $(${sys(313, 0, 0, 0)})`,
    `echo kexec_load $(${sys(246, 0, 0, 0, 0)})`,
    `echo keyctl $(${sys(250, 0, 0)})`,
    `echo bpf $(${sys(321, 0, 0, 0)})`,
    `echo open_by_handle_at $(${sys(304, 3, 0, 0)})`,
    `echo ptrace $(${sys(101, 16, process.pid, 0, 0)})`,
    `echo sysrq $( (echo h > /proc/sysrq-trigger) 2>/dev/null && stat -c %t:%T /proc/sysrq-trigger || echo refused)`,
    'echo procsys $(echo 1 > /proc/sys/kernel/sysrq 2>&1 || echo refused)',
    `echo mknod $(mknod /tmp/blk b ${major} ${minor} 2>&1 && echo made || echo refused)`,
    `echo mount $(mkdir -p /tmp/m; mount /dev/vda /tmp/m 2>&1 >/dev/null || mount -t ext4 /tmp/blk /tmp/m 2>&1 >/dev/null || echo refused)`,
    `echo hostpid $(kill -0 ${process.pid} 2>/dev/null && echo visible || echo hidden)`,
  ].join('\n');
  const { log } = await attack(env, 'kern', script);
  for (const call of ['init_module', 'finit_module', 'kexec_load', 'keyctl', 'bpf', 'open_by_handle_at']) t.regex(log, new RegExp(`^${call} errno=EPERM$`, 'm'), `${call}: ${log}`);
  t.regex(log, /^ptrace errno=(3|EPERM)$/m, 'no host process to attach to (ESRCH) or refused');
  t.regex(log, /^sysrq (refused|1:3)$/m, '/proc/sysrq-trigger refuses the write or is masked (/dev/null)');
  t.regex(log, /^procsys .*(Read-only|refused)/m);
  t.regex(log, /^mknod .*refused/m);
  t.regex(log, /^mount .*refused/m);
  t.regex(log, /^hostpid hidden$/m);
});

test.serial("one system cannot read another's files", async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  await env.rt.start(app('alice', ['/bin/sh', '-c', 'umask 077; echo alice-secret > /root/secret']), env.template);
  t.is(await env.rt.wait('alice', { timeoutMs: 10_000 }), 0, await env.rt.logTail('alice'));
  const secret = `${env.data}/systems/alice/upper/root/secret`;
  t.is(readFileSync(secret, 'utf8'), 'alice-secret\n');
  const alice = statSync(secret).uid;
  const { log } = await attack(env, 'mallory', `cat ${secret} 2>&1; ls ${env.data}/systems 2>&1; echo done`);
  t.notRegex(log, /alice-secret/);
  t.regex(log, /done/);
  // Even where a path is visible, the owner differs: each system has its own range.
  const o = await env.rt.start(app('bob', ['/bin/sleep', '30']), env.template);
  const bobUid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${o.pid}/status`, 'utf8'))![1]);
  t.not(bobUid, alice);
  t.true(alice >= 2 ** 31);
  await env.rt.stop('bob', { graceMs: 500 });
});

test.serial('privileged: true runs as root of the host with every capability and no filter (the explicit opt-in)', async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  await env.rt.start(app('root1', ['/bin/sleep', '30'], { privileged: true }), env.template);
  const o = (await env.rt.observe('root1'))!;
  const status = readFileSync(`/proc/${o.pid}/status`, 'utf8');
  t.regex(status, /^Uid:\s+0\s/m);
  t.regex(status, /^Seccomp:\s+0$/m);
  t.is(await fsp.readlink(`/proc/${o.pid}/ns/user`), await fsp.readlink('/proc/self/ns/user'));
  t.not(await fsp.readlink(`/proc/${o.pid}/ns/mnt`), await fsp.readlink('/proc/self/ns/mnt'));
  await env.rt.stop('root1', { graceMs: 500 });
});

test.serial('os system: init boots in the user namespace and stop uses its halt signal without waiting out the grace', async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  const o = await env.rt.start(osSystem('boot1'), env.template);
  t.is(o.phase, 'running');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${o.pid}/status`, 'utf8'))![1]);
  t.true(uid >= 2 ** 31);
  const t0 = Date.now();
  const s = await env.rt.stop('boot1', { graceMs: 20_000 });
  t.is(s?.phase, 'stopped');
  t.true(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms`);
});

test.serial('a tar template whose only file is a static escape program: chroot escape, host /etc/shadow and /proc/1/environ stay out of reach', async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  const probe = `${TEST_BASE}/anybios-tar-escape-${process.pid}`;
  t.teardown(() => fsp.rm(probe, { force: true }));
  const src = `${env.base}/escape.c`;
  await fsp.writeFile(
    src,
    `#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
static void show(const char *what, const char *path) {
  char buf[256]; FILE *f = fopen(path, "r"); size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f); buf[n] = 0; for (size_t i = 0; i < n; i++) if (buf[i] == 0 || buf[i] == '\\n') buf[i] = ' ';
  printf("%s: %s\\n", what, f ? (n ? buf : "(empty)") : "refused");
}
int main(void) {
  mkdir("/x", 0700);
  if (chroot("/x") != 0) perror("chroot");
  for (int i = 0; i < 64; i++) (void)!chdir("..");
  if (chroot(".") != 0) perror("chroot .");
  FILE *o = fopen("${probe}", "w"); printf("host write: %s\\n", o ? "done" : "refused"); if (o) fclose(o);
  show("shadow", "/etc/shadow");
  show("environ", "/proc/1/environ");
  return 0;
}
`,
  );
  const root = `${env.base}/tarroot`;
  await fsp.mkdir(`${root}/etc`, { recursive: true });
  execFileSync('cc', ['-static', '-O1', '-o', `${root}/escape`, src]);
  const tarball = `${env.base}/escape.tar`;
  execFileSync('tar', ['-C', root, '-cf', tarball, '.']);
  const sha = execFileSync('sha256sum', [tarball]).toString().split(' ')[0]!;
  const tpl = { _id: 'template:evil', type: 'template', name: 'evil', source: 'tar', sha256: sha } as const;
  await env.rt.start(app('tarx', ['/escape'], { template: 'evil' }), tpl, { tarball });
  t.is(await env.rt.wait('tarx', { timeoutMs: 10_000 }), 0, await env.rt.logTail('tarx'));
  const log = await env.rt.logTail('tarx');
  t.false(existsSync(probe), `the host file was written: ${log}`);
  t.regex(log, /shadow: refused/, 'there is no host /etc/shadow in the system');
  // /proc/1 is the system's own pid 1 (this program), never the host's init or our server.
  t.regex(log, /environ: (refused|PATH=[^ ]* HOME=\/root container=anybios)/);
  t.deepEqual(hostMountsUnder(env.base), []);
});

test.serial('busybox init boots as an os system in the user namespace and powers off on its own signal (SIGUSR2)', async (t) => {
  if (!requirePrivilege(t)) return;
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
  if (!busybox) return t.fail('busybox is not installed (Debian: apt-get install busybox-static)');
  const env = await setup(t);
  const root = `${env.templateRoot}/busybox-${process.pid}`;
  t.teardown(() => fsp.rm(root, { recursive: true, force: true }));
  for (const d of ['bin', 'sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'root']) await fsp.mkdir(`${root}/${d}`, { recursive: true });
  await fsp.copyFile(busybox, `${root}/bin/busybox`);
  await fsp.chmod(`${root}/bin/busybox`, 0o755);
  for (const l of ['sh', 'echo', 'sleep', 'cat']) await fsp.symlink('busybox', `${root}/bin/${l}`);
  await fsp.symlink('../bin/busybox', `${root}/sbin/init`);
  await fsp.writeFile(`${root}/etc/inittab`, '::sysinit:/bin/echo busybox-init-up\n::respawn:/bin/sleep 3600\n::shutdown:/bin/echo busybox-init-bye\n');
  const tpl = { _id: 'template:bb', type: 'template', name: 'bb', source: 'dir', path: root } as const;
  const o = await env.rt.start(osSystem('bb1', { template: 'bb' }), tpl);
  t.is(o.phase, 'running');
  const until = Date.now() + 10_000;
  while (!(await env.rt.logTail('bb1')).includes('busybox-init-up') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  t.regex(await env.rt.logTail('bb1'), /busybox-init-up/);
  t.true(Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${o.pid}/status`, 'utf8'))![1]) >= 2 ** 31, 'root of the system is not root of the host');
  const t0 = Date.now();
  const s = await env.rt.stop('bb1', { graceMs: 20_000 });
  t.is(s?.phase, 'stopped');
  t.true(Date.now() - t0 < 10_000, `stop took ${Date.now() - t0} ms (SIGTERM would have made busybox init reboot, i.e. wait out the grace)`);
  t.regex(await env.rt.logTail('bb1'), /busybox-init-bye/);
});

test.serial('a data dir found wider than 0700 is made 0700, with a warning', async (t) => {
  const { createRuntime } = await import('../../../agent/runtime/index.ts');
  const { docErrors } = await import('../../../ddocs/validate.ts');
  const dir = await fsp.mkdtemp(`${TEST_BASE}/anybios-mode-`);
  t.teardown(() => fsp.rm(dir, { recursive: true, force: true }));
  await fsp.chmod(dir, 0o755);
  const said: string[] = [];
  await createRuntime({ dataDir: dir, checkDoc: docErrors, log: (m) => said.push(m) });
  t.is(statSync(dir).mode & 0o777, 0o700);
  t.true(said.some((m) => /was mode 755; made 0700/.test(m)), said.join('\n'));
});

test.serial('an os system (CAP_SYS_ADMIN in its own namespaces) cannot unmount what hides the host data dir', async (t) => {
  if (!requirePrivilege(t)) return;
  const env = await setup(t);
  await fsp.writeFile(`${env.data}/secret`, 'host data\n', { mode: 0o600 });
  const script = `umount ${env.data} 2>&1 || umount -l ${env.data} 2>&1; echo listing: $(ls -A ${env.data} 2>&1); echo done`;
  await env.rt.start(osSystem('unhide', { template: 'host', init: ['/bin/sh', '-c', script] }), env.hostTemplate);
  t.is(await env.rt.wait('unhide', { timeoutMs: 10_000 }), 0);
  const log = await env.rt.logTail('unhide');
  t.regex(log, /done/);
  t.notRegex(log, /secret/, `the data dir showed through: ${log}`);
  t.deepEqual(hostMountsUnder(env.base), []);
});
