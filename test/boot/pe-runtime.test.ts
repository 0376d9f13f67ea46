// The agent's PE runtime (agent/pe/runtime.ts) on this machine, without qemu: what it reads of the PE's
// state (pe.conf, the disk's system.conf, NAME.pid whose child is the init, NAME.rev) and the specs it
// refuses. Starting and stopping run the PE's scripts and are tested in qemu (test/boot/agent.test.ts).
import test from 'ava';
import { promises as fsp } from 'node:fs';
import { spawn } from 'node:child_process';
import { createPeRuntime } from '../../agent/pe/runtime.ts';
import { docErrors } from '../../ddocs/validate.ts';
import { isRuntimeError } from '../../agent/runtime/index.ts';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';

const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';

async function pe(t: import('ava').ExecutionContext) {
  const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-pe-runtime-`);
  t.teardown(() => fsp.rm(base, { recursive: true, force: true }));
  const run = `${base}/run`;
  const disk = `${base}/disk`;
  await fsp.mkdir(run, { recursive: true });
  await fsp.mkdir(`${disk}/anybios/templates/fixture`, { recursive: true });
  await fsp.mkdir(`${disk}/anybios/systems/system0`, { recursive: true });
  await fsp.writeFile(`${disk}/anybios/systems/system0/system.conf`, 'template=/anybios/templates/fixture\ninit=/sbin/init\n');
  await fsp.writeFile(`${run}/pe.conf`, `disk=${disk}\nsystems=/anybios/systems\nserver=\n`);
  // libDir has no scripts: a call that tried to run one would fail with START_FAILED/STOP_FAILED.
  const rt = await createPeRuntime({ checkDoc: docErrors, dataDir: `${disk}/anybios/node`, runDir: run, libDir: `${base}/no-scripts` });
  return { base, run, disk, rt };
}

const spec = (over: Partial<SystemDoc> = {}): SystemDoc => ({ _id: 'system:system0', _rev: '1-a', type: 'system', name: 'system0', kind: 'os', template: 'fixture', state: 'running', ...over });
const dirTemplate = (path = '/anybios/templates/fixture'): TemplateDoc => ({ _id: 'template:fixture', type: 'template', name: 'fixture', source: 'dir', path });

test('outside the PE (no pe.conf): refused with a message that says where it runs', async (t) => {
  const e = await t.throwsAsync(createPeRuntime({ checkDoc: docErrors, dataDir: '/nonexistent', runDir: '/nonexistent/run' }));
  t.regex(e!.message, /--strategy pe runs only inside the anybios PE/);
});

test('list and observe: the disk\'s systems, stopped until a recorded process has a child (the init); /init\'s are marked startedBy boot', async (t) => {
  const { run, rt } = await pe(t);
  t.like(await rt.list(), [{ name: 'system0', phase: 'stopped', kind: 'os', template: 'fixture', pid: null }]);
  t.is(await rt.observe('system9'), null);
  t.is(await rt.observe('../system0'), null);
  // The PE's shape: the recorded process (unshare) with the system's init as its child.
  const sup = spawn('sh', ['-c', 'sleep 60 & wait'], { stdio: 'ignore' });
  t.teardown(() => { sup.kill('SIGKILL'); });
  await fsp.writeFile(`${run}/system0.pid`, `${sup.pid}\n`);
  await fsp.writeFile(`${run}/system0.since`, '2026-01-01T00:00:00Z\n');
  let o = await rt.observe('system0');
  for (let i = 0; i < 50 && o?.phase !== 'running'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    o = await rt.observe('system0');
  }
  t.like(o, { phase: 'running', startedBy: 'boot', specRev: null, startedAt: '2026-01-01T00:00:00Z', supervisor: { pid: sup.pid } });
  t.true(o!.pid !== sup.pid && o!.pid! > 1, 'the pid is the child\'s (the init)');
  // Starting a running system adopts it (no script is run) and records the revision.
  const started = await rt.start(spec(), dirTemplate(), { specRev: '1-a' });
  t.like(started, { phase: 'running', specRev: '1-a' });
  t.is(started.startedBy, undefined);
  t.is((await fsp.readFile(`${run}/system0.rev`, 'utf8')).trim(), '1-a');
  t.deepEqual(await rt.enterArgs('system0', ['id']), ['/bin/sh', '/bin/anybios-enter', 'system0', 'id']);
  sup.kill('SIGKILL');
  await new Promise((r) => sup.once('exit', r));
  t.like(await rt.observe('system0'), { phase: 'stopped', pid: null, specRev: null });
});

test('start refuses what the disk does not hold or says otherwise, with the runtime\'s codes', async (t) => {
  const { rt } = await pe(t);
  const code = async (p: Promise<unknown>) => {
    const e = await p.then(() => null, (x: unknown) => x);
    return isRuntimeError(e) ? `${e.code}: ${e.message}` : String(e);
  };
  t.regex(await code(rt.start(spec({ _id: 'system:system9', name: 'system9' }), dirTemplate())), /^NOT_FOUND: system system9 is not on the data disk/);
  t.regex(await code(rt.start(spec({ kind: 'app', command: ['/bin/true'] }), dirTemplate())), /^INVALID_SPEC: system system0: the PE runs os systems only/);
  t.regex(await code(rt.start(spec(), { _id: 'template:fixture', type: 'template', name: 'fixture', source: 'tar', sha256: 'a'.repeat(64) })), /^INVALID_TEMPLATE: system system0 is on \/anybios\/templates\/fixture of the data disk: its template must be a dir template with path \/anybios\/templates\/fixture \(template fixture is tar\)/);
  t.regex(await code(rt.start(spec(), dirTemplate('/srv/elsewhere'))), /^INVALID_TEMPLATE: .*\(template fixture is dir \/srv\/elsewhere\)/);
  t.regex(await code(rt.start(spec({ name: 'Bad Name' }), dirTemplate())), /^INVALID_(NAME|SPEC)/);
  // A valid spec of a stopped system runs the PE's start-system: absent here, so START_FAILED says why.
  t.regex(await code(rt.start(spec(), dirTemplate())), /^START_FAILED: system system0: /);
});

test('logs: NAME.log in the PE\'s run dir, its tail and its stream; kept under 1 MiB by copy-truncate when listed', async (t) => {
  const { run, rt } = await pe(t);
  t.is(await rt.logTail('system0'), '');
  await fsp.writeFile(`${run}/system0.log`, 'line one\nline two\n');
  t.is(await rt.logTail('system0', 9), 'line two\n');
  const chunks: Buffer[] = [];
  for await (const c of rt.logs('system0')) chunks.push(c);
  t.is(Buffer.concat(chunks).toString(), 'line one\nline two\n');
  t.is(await rt.logTail('../etc/passwd'), '');
  await t.throwsAsync(async () => { for await (const _ of rt.logs('system9')) void _; }, { message: /no system system9 on the data disk/ });
  await fsp.writeFile(`${run}/system0.log`, Buffer.alloc((1 << 20) + 10, 'x'));
  await rt.list();
  t.is((await fsp.stat(`${run}/system0.log`)).size, 0);
  t.is((await fsp.stat(`${run}/system0.log.1`)).size, (1 << 20) + 10);
});
