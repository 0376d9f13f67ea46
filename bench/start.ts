// bench/start: start-to-exit time of /bin/true in an app and an os system, beside three floors measured
// in the same run (bare unshare+chroot; the by-hand overlay script; crun run by hand on an overlay), the bytes in a fresh layer against
// a full copy of the template, and the memory we keep alive per running system (its supervisor).
//   node --import tsx bench/start.ts [ITERATIONS]      (root; prints a table, writes bench/results/start.json)
import { promises as fsp } from 'node:fs';
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import { buildRootfs } from '../fixtures/rootfs/build.ts';
import { createRuntime } from '../agent/runtime/index.ts';
import { diskUsage } from '../agent/runtime/paths.ts';
import { memoryOf } from '../agent/runtime/proc.ts';
import { findTools } from '../agent/runtime/tools.ts';
import type { SystemDoc, TemplateDoc } from '../ddocs/schemas/types.ts';
import { docErrors } from '../ddocs/validate.ts';
import { ociConfig } from '../agent/runtime/oci-config.ts';
import { guardBench } from './lib.ts';

const N = Number(process.argv[2] ?? 40);
const WARMUP = 5;

function runCmd(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('error', reject);
    c.on('exit', (code) => resolve(code ?? 1));
  });
}

async function measure(label: string, fn: () => Promise<void>): Promise<{ label: string; median: number; p90: number; min: number }> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await fn();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { label, median: ms[Math.floor(ms.length / 2)]!, p90: ms[Math.floor(ms.length * 0.9)]!, min: ms[0]! };
}

const base = await fsp.mkdtemp(`${process.env.ANYBIOS_BENCH_TMP ?? '/var/tmp'}/anybios-bench-`);
const tools = findTools();
const mounted: string[] = [];
// Runs once: at the end, on SIGINT/SIGTERM, or on an uncaught error (bench/lib.ts guardBench).
const guard = guardBench('start', async () => {
  for (const m of mounted) await runCmd('umount', [m]).catch(() => 0);
  await fsp.rm(base, { recursive: true, force: true });
});
try {
  const tplRoot = `${base}/templates`;
  const rootfs = await buildRootfs(`${tplRoot}/mini`);
  const t = (cmd: string) => async () => {
    const code = await runCmd(tools.sh, ['-c', cmd]);
    if (code !== 0) throw new Error(`${cmd} exited ${code}`);
  };
  const bare = await measure('bare floor: unshare --pid --fork --mount --uts --ipc --net chroot ROOTFS /bin/true', async () => {
    const code = await runCmd(tools.unshare, ['--pid', '--fork', '--mount', '--uts', '--ipc', '--net', tools.chroot, rootfs, '/bin/true']);
    if (code !== 0) throw new Error(`bare floor exited ${code}`);
  });
  const h = `${base}/byhand`;
  for (const d of ['u', 'w', 'm']) await fsp.mkdir(`${h}/${d}`, { recursive: true });
  mounted.push(`${h}/m`);
  const byHand = await measure(
    'by-hand floor: mount overlay; unshare … chroot MERGED /bin/true; umount (one sh script)',
    t(`${tools.mount} -t overlay overlay -o lowerdir=${rootfs},upperdir=${h}/u,workdir=${h}/w ${h}/m && ${tools.unshare} --pid --fork --mount --uts --ipc --net ${tools.chroot} ${h}/m /bin/true; r=$?; umount ${h}/m; exit $r`),
  );
  // The chosen tool run by hand: crun with the same kind of config (userns with a range, seccomp, caps,
  // masked paths) on an overlay mounted in a private mount namespace, no idmapped lower.
  const cb = `${base}/crunhand`;
  await fsp.chmod(base, 0o711); // crun mounts as the system's root, which must reach the root by path
  for (const d of ['u', 'w', 'm', 'bundle', 'state']) await fsp.mkdir(`${cb}/${d}`, { recursive: true });
  await fsp.chown(`${cb}/u`, 2 ** 31 + 100 * 65536, 2 ** 31 + 100 * 65536);
  const cfg = ociConfig({ rootfs: `${cb}/m`, argv: ['/bin/true'], env: { PATH: '/bin' }, cwd: '/', hostname: 'b', kind: 'app', privileged: false, network: 'none', ids: { hostId: 2 ** 31 + 100 * 65536, size: 65536 }, volumes: [], bound: (await import('../agent/runtime/oci-config.ts')).ALL_CAPS.filter((c) => c !== 'CAP_SYS_RESOURCE') });
  await fsp.writeFile(`${cb}/bundle/config.json`, JSON.stringify(cfg));
  const crunBin = tools.crun ?? 'crun';
  const hybrid = (await fsp.readFile('/proc/self/mountinfo', 'utf8')).includes(' /sys/fs/cgroup/unified ');
  let ci = 0;
  const crunHand = await measure('crun by hand: unshare --mount sh -c "mount overlay; crun run" /bin/true', async () => {
    const inner = [
      ...(hybrid ? [`${tools.mount} -t tmpfs none /sys/fs/cgroup`] : []),
      `${tools.mount} -t overlay overlay -o lowerdir=${rootfs},upperdir=${cb}/u,workdir=${cb}/w ${cb}/m`,
      `exec ${crunBin} --root ${cb}/state --cgroup-manager=disabled run --no-new-keyring --bundle ${cb}/bundle b${ci++}`,
    ].join(' && ');
    const code = await runCmd(tools.unshare, ['--mount', '--propagation', 'private', '--', tools.sh, '-c', inner]);
    if (code !== 0) throw new Error(`crun by hand exited ${code}`);
  });
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: `${base}/data`, templateRoots: [tplRoot] });
  const template: TemplateDoc = { _id: 'template:mini', type: 'template', name: 'mini', source: 'dir', path: rootfs };
  const sys = (name: string, kind: 'app' | 'os'): SystemDoc =>
    kind === 'app'
      ? { _id: `system:${name}`, type: 'system', name, kind, template: 'mini', state: 'running', command: ['/bin/true'] }
      : { _id: `system:${name}`, type: 'system', name, kind, template: 'mini', state: 'running', init: ['/bin/true'] };
  const startToExit = (spec: SystemDoc) => async () => {
    await rt.start(spec, template);
    const code = await rt.wait(spec.name);
    if (code !== 0) throw new Error(`${spec.name} exited ${code}: ${await rt.logTail(spec.name)}`);
  };
  const appRun = await measure('anybios app system (start → exit of /bin/true)', startToExit(sys('bench-app', 'app')));
  const osRun = await measure('anybios os system (init = /bin/true)', startToExit(sys('bench-os', 'os')));
  let k = 0;
  const fresh = await measure('anybios app system, fresh each time (materialize + start → exit)', async () => {
    await startToExit(sys(`bench-fresh-${k++}`, 'app'))();
  });
  // Bytes: a fresh layer (after one run of /bin/true) against a full copy of the template.
  await startToExit(sys('bench-layer', 'app'))();
  const layerBytes = await diskUsage(`${rt.dataDir}/systems/bench-layer/upper`);
  const templateBytes = await diskUsage(rootfs);
  // Memory of what we keep alive per running system: the supervisor shell.
  const up = await rt.start({ ...sys('bench-mem', 'os'), init: ['/bin/sleep', '60'] }, template);
  // The sh supervisor and crun (crun run stays as the system's parent until it exits).
  const supMem = await memoryOf(up.supervisor!.pid);
  const crunPid = Number((await fsp.readFile(`/proc/${up.supervisor!.pid}/task/${up.supervisor!.pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
  const crunMem = await memoryOf(crunPid);
  const mem = supMem && crunMem ? { rss: supMem.rss + crunMem.rss, pss: supMem.pss + crunMem.pss, privateBytes: supMem.privateBytes + crunMem.privateBytes } : supMem;
  await rt.stop('bench-mem', { graceMs: 100 });
  for (const o of await rt.list({ diskUsage: false })) await rt.destroy(o.name, { graceMs: 100 });

  const rows = [bare, byHand, crunHand, appRun, osRun, fresh].map((r) => ({ ...r, ratio: r.median / bare.median }));
  const w = Math.max(...rows.map((r) => r.label.length));
  console.log(`${'start-to-exit'.padEnd(w)}  median ms    p90 ms   x bare`);
  for (const r of rows) console.log(`${r.label.padEnd(w)}  ${r.median.toFixed(2).padStart(9)}  ${r.p90.toFixed(2).padStart(8)}  ${r.ratio.toFixed(2).padStart(7)}`);
  console.log('');
  console.log(`fresh app layer: ${layerBytes} bytes; full copy of the template: ${templateBytes} bytes (${((100 * layerBytes) / templateBytes).toFixed(2)}%)`);
  console.log(`kept alive per running system (sh supervisor + crun): RSS ${(mem!.rss / 1024).toFixed(0)} KiB, PSS ${(mem!.pss / 1024).toFixed(0)} KiB, private ${(mem!.privateBytes / 1024).toFixed(0)} KiB`);
  const goals = {
    appWithin3xBare: appRun.median <= 3 * bare.median,
    osWithin3xBare: osRun.median <= 3 * bare.median,
    appWithin1_5xCrunByHand: appRun.median <= 1.5 * crunHand.median,
    layerUnder64KiB: layerBytes < 64 * 1024,
    perSystemUnder1MiB: (mem?.pss ?? Infinity) <= 1024 * 1024,
  };
  console.log('goals:', JSON.stringify(goals));
  await fsp.mkdir(new URL('./results/', import.meta.url), { recursive: true });
  await fsp.writeFile(
    new URL('./results/start.json', import.meta.url),
    JSON.stringify({ when: new Date().toISOString(), host: { kernel: os.release(), cpus: os.cpus().length, model: os.cpus()[0]?.model }, iterations: N, rows, layerBytes, templateBytes, supervisorMemory: mem, goals }, null, 2) + '\n',
  );
} finally {
  await guard.done();
}
