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

const CHILD = fileURLToPath(new URL('./helpers/child-start.ts', import.meta.url));

function startInChild(args: object): { status: number | null; signal: NodeJS.Signals | null; observed: Observed | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(args)], { encoding: 'utf8', timeout: 60_000 });
  const line = r.stdout.trim().split('\n').pop();
  return { status: r.status, signal: r.signal, observed: line ? (JSON.parse(line) as Observed) : null, stderr: r.stderr };
}

/** Supervisors of one system, found by their argv (whatever run they belong to). */
async function supervisorsOf(sysDir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = (await fsp.readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
      if (argv.some((a) => a.startsWith(`anybios-supervisor:${sysDir}:`))) {
        const st = await readStat(Number(name));
        if (st && st.state !== 'Z') out.push(st.pid);
      }
    } catch {
      // gone
    }
  }
  return out;
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
  const rt2 = await createRuntime({ dataDir: data, templateRoots: [templateRoot] });
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

for (const point of POINTS) {
  test.serial(`SIGKILL of the starter at ${point}: the next call finishes or rolls back, leaving one system and no leak`, async (t) => {
    if (!requirePrivilege(t)) return;
    const { rt, data, template, templateRoot, base } = await setup(t);
    const spec = osSystem('crash1', { resources: { pids: 32 } });
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
