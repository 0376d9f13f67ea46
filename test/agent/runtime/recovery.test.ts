// Adoption and crash recovery: another node process starts systems and exits or is SIGKILLed at each
// step of materialize/start; a new runtime must adopt what runs (no restart) or redo what did not.
import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { hostMountsUnder, osSystem, requirePrivilege, setup, waitFor } from './helpers/setup.ts';
import { createRuntime, type FaultPoint, type Observed } from '../../../agent/runtime/index.ts';
import { findByArg, readStat } from '../../../agent/runtime/proc.ts';
import { promises as fsp } from 'node:fs';
import { docErrors } from '../../../ddocs/validate.ts';

const CHILD = fileURLToPath(new URL('./helpers/child-start.ts', import.meta.url));

function startInChild(args: object): { status: number | null; signal: NodeJS.Signals | null; observed: Observed | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(args)], { encoding: 'utf8', timeout: 60_000 });
  const line = r.stdout.trim().split('\n').pop();
  return { status: r.status, signal: r.signal, observed: line ? (JSON.parse(line) as Observed) : null, stderr: r.stderr };
}

/** Supervisors of one system, found by their argv (whatever run they belong to). */
async function supervisorsOf(sysDir: string): Promise<number[]> {
  const found: { pid: number; ppid: number }[] = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = (await fsp.readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (argv.some((a) => a.startsWith(`anybios-supervisor:${sysDir}:`))) {
        const st = await readStat(Number(name));
        if (st && st.state !== 'Z') found.push(st);
      }
    } catch {
      // gone
    }
  }
  // The system's pid 1 is a forked copy of its supervisor and carries the same argv until it execs:
  // a supervisor is a match whose parent is not a match (the runtime's own rule).
  return found.filter((p) => !found.some((q) => q.pid === p.ppid)).map((p) => p.pid);
}

test.serial('a system outlives the process that started it and is adopted by a new one without restart', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template, templateRoot, base } = await setup(t);
  const spec = osSystem('adopt1');
  const r = startInChild({ dataDir: data, templateRoots: [templateRoot], spec, template });
  t.is(r.status, 0, r.stderr);
  const started = r.observed!;
  t.is(started.phase, 'running');
  // The starter is gone; the system runs on, reparented away from it.
  const st = await readStat(started.supervisor!.pid);
  t.truthy(st, 'supervisor alive');
  t.is(st?.startTime, started.supervisor!.startTime);
  const marker = `${data}/systems/adopt1/upper/var/lib/marker`;
  await waitFor(async () => existsSync(marker));
  const markerBefore = (await fsp.stat(marker)).mtimeMs;
  // A new runtime (this process) sees it running: same pid 1, same start time, no restart.
  const rt2 = await createRuntime({ checkDoc: docErrors, dataDir: data, templateRoots: [templateRoot] });
  const [o] = await rt2.list();
  t.is(o?.name, 'adopt1');
  t.is(o?.phase, 'running');
  t.is(o?.pid, started.pid);
  t.is(o?.startTime, started.startTime);
  t.is(o?.restarts, 0);
  // start() on an adopted system is a no-op (idempotent), not a second instance.
  const again = await rt2.start(spec, template);
  t.is(again.pid, started.pid);
  t.deepEqual(await supervisorsOf(`${data}/systems/adopt1`), [started.supervisor!.pid]);
  t.is((await fsp.stat(marker)).mtimeMs, markerBefore);
  const stopped = await rt2.stop('adopt1', { graceMs: 5000 });
  t.is(stopped?.phase, 'stopped');
  t.is(stopped?.exitCode, 0, 'the exit code is recorded although the starter is long gone');
  t.is(rt === rt2, false);
  t.deepEqual(hostMountsUnder(base), []);
});

const POINTS: FaultPoint[] = ['materialize:begin', 'materialize:done', 'start:before-spawn', 'start:after-spawn', 'start:after-ready'];

for (const [point, limits] of POINTS.flatMap((p) => [[p, true], [p, false]] as const)) {
  const what = limits ? 'with limits' : 'without limits';
  test.serial(`SIGKILL of the starter at ${point} (${what}): the next call finishes or rolls back, leaving one system and no leak`, async (t) => {
    if (!requirePrivilege(t)) return;
    const { rt, data, template, templateRoot, base } = await setup(t);
    const spec = osSystem('crash1', limits ? { resources: { pids: 32 } } : {});
    const r = startInChild({ dataDir: data, templateRoots: [templateRoot], spec, template, crashAt: point });
    t.is(r.signal, 'SIGKILL', r.stderr);
    t.deepEqual(hostMountsUnder(base), [], 'no mount of ours in the host namespace, even mid-start');
    const seen = await rt.observe('crash1');
    t.truthy(seen);
    if (point === 'start:after-spawn' || point === 'start:after-ready') t.is(seen?.phase, 'running', 'the spawned system is adopted');
    else t.not(seen?.phase, 'running');
    // The lock of the dead starter does not block us; start finishes the job (or adopts).
    const o = await rt.start(spec, template);
    t.is(o.phase, 'running');
    if (seen?.phase === 'running') t.deepEqual(o.supervisor, seen.supervisor, 'adopted, not restarted');
    await waitFor(async () => existsSync(`${data}/systems/crash1/upper/var/lib/marker`));
    t.deepEqual(await supervisorsOf(`${data}/systems/crash1`), [o.supervisor!.pid], 'exactly one instance');
    t.is(readFileSync(`${data}/systems/crash1/upper/var/lib/marker`, 'utf8').trim(), 'booted pid=1 hostname=crash1');
    await rt.destroy('crash1', { graceMs: 5000 });
    t.deepEqual(await supervisorsOf(`${data}/systems/crash1`), []);
    t.false(existsSync(`${data}/systems/crash1`));
    t.deepEqual(hostMountsUnder(base), []);
    t.deepEqual(await findByArg(`anybios-init`).then((ps) => ps.filter((p) => p.ppid === o.supervisor!.pid)), []);
  });
}

test.serial('files of an earlier run are never taken for the current one (exit code, supervisor identity)', async (t) => {
  if (!requirePrivilege(t)) return;
  const { rt, data, template } = await setup(t);
  const { app } = await import('./helpers/setup.ts');
  await rt.start(app('runs', ['/bin/sh', '-c', 'exit 7']), template);
  t.is(await rt.wait('runs'), 7);
  const first = readFileSync(`${data}/systems/runs/exit`, 'utf8');
  // A second run that is killed with its supervisor before it can write an exit status: the 7 of the
  // first run must not be reported as this run's exit code.
  const o = await rt.start(app('runs', ['/bin/sleep', '30']), template);
  process.kill(o.supervisor!.pid, 'SIGKILL');
  process.kill(o.pid!, 'SIGKILL');
  await waitFor(async () => !(await readStat(o.supervisor!.pid)) || (await readStat(o.supervisor!.pid))?.state === 'Z');
  t.is(readFileSync(`${data}/systems/runs/exit`, 'utf8'), first, 'the old exit file is still there');
  const seen = await rt.observe('runs');
  t.is(seen?.phase, 'failed');
  t.is(seen?.code, 'SYSTEM_LOST');
  t.is(seen?.exitCode, null);
  // And the next start runs normally, overwriting both files.
  await rt.start(app('runs', ['/bin/true']), template);
  t.is(await rt.wait('runs'), 0);
  t.is((await rt.observe('runs'))?.restarts, 2);
});

for (const point of ['start:before-spawn', 'start:after-spawn'] as FaultPoint[]) {
  test.serial(`a restart whose starter is SIGKILLed at ${point} is adopted or redone, not confused with the earlier run`, async (t) => {
    if (!requirePrivilege(t)) return;
    const { rt, data, template, templateRoot, base } = await setup(t);
    const spec = osSystem('again1');
    const first = await rt.start(spec, template);
    await waitFor(async () => existsSync(`${data}/systems/again1/upper/var/lib/marker`)); // its TERM trap is set
    await rt.stop('again1', { graceMs: 5000 });
    const r = startInChild({ dataDir: data, templateRoots: [templateRoot], spec, template, crashAt: point });
    t.is(r.signal, 'SIGKILL', r.stderr);
    const seen = await rt.observe('again1');
    if (point === 'start:after-spawn') t.is(seen?.phase, 'running', 'the new run is seen through its own wrapper.stat');
    else t.not(seen?.phase, 'running');
    const o = await rt.start(spec, template);
    t.is(o.phase, 'running');
    t.not(o.supervisor!.pid, first.supervisor!.pid);
    if (seen?.phase === 'running') t.deepEqual(o.supervisor, seen.supervisor, 'adopted, not restarted');
    t.deepEqual(await supervisorsOf(`${data}/systems/again1`), [o.supervisor!.pid], 'exactly one instance');
    await rt.destroy('again1', { graceMs: 200 }); // (pid 1 may not have set its TERM trap yet)
    t.deepEqual(hostMountsUnder(base), []);
  });
}
