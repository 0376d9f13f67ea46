// Verb `start`: materialize (prepareSystem), then the mount plan (fstab), cgroups, the /dev skeleton
// and the launch (../launcher.ts); a running system is adopted as it is. Waits until the system has set
// itself up (mounts, hostname, lo) and answers with what observe would say.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { SystemDoc, TemplateDoc } from '../../../ddocs/schemas/types.ts';
import { removeCgroups, setupCgroups } from '../cgroups.ts';
import type { RuntimeContext } from '../context.ts';
import { RuntimeError } from '../errors.ts';
import { rmForce } from '../fs-util.ts';
import { launch, type LaunchSpec } from '../launcher.ts';
import { tailLog } from '../logs.ts';
import { makeDevSkeletonSync } from '../materialize.ts';
import { overlayOptions, rootfsLine, systemLines, type MountPlan } from '../mounts.ts';
import { liveSupervisor, supervisorMarker, type Observed } from '../observe.ts';
import { writeAtomicSync } from '../paths.ts';
import { isSameProcess, readStatSync, sleepUnref } from '../proc.ts';
import { readStateSync, withLock, writeStateSync } from '../state.ts';
import { prepareSystem, type StartOptions } from './materialize.ts';
import { observeOne, rotateIfOver } from './observe.ts';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export async function start(ctx: RuntimeContext, spec: SystemDoc, template: TemplateDoc, opts: StartOptions = {}): Promise<Observed> {
  const { trace, fault, say } = ctx;
  trace('begin');
  ctx.validateInputs(spec, template);
  return withLock(ctx.dataDir, spec.name, async () => {
    trace('validate+lock');
    const paths = ctx.pathsOf(spec.name);
    const prev = readStateSync(paths);
    if (prev) {
      const sup = await liveSupervisor(paths, prev);
      if (sup) {
        // Running already (perhaps started by a process of ours that died mid-start): adopt it.
        if (prev.phase === 'starting' || !prev.wrapper) writeStateSync(paths, { ...prev, phase: 'running', wrapper: sup });
        return (await observeOne(ctx, spec.name, false))!;
      }
      if (prev.cgroups.length) await removeCgroups(prev.cgroups);
    }
    trace('prev-state');
    const { state, volumes, hides } = await prepareSystem(ctx, spec, template, opts, prev, true);
    trace('materialize');
    const c = await ctx.capabilities();
    const t = state.template;
    const plan: MountPlan = {
      rootfs: paths.rootfs,
      strategy: state.strategy,
      upper: paths.upper,
      work: paths.work,
      lowers: [t.lower],
      dev: paths.dev,
      network: spec.network ?? 'none',
      userns: state.userns,
      volumes,
    };
    const hostPhase = t.host && state.strategy === 'overlay' ? { overlayOptions: overlayOptions([t.lower], paths.upper, paths.work), hides } : undefined;
    const lines = hostPhase ? systemLines(plan) : [rootfsLine(plan), ...systemLines(plan)];
    let cgroupDirs: string[] = [];
    if (spec.resources && Object.keys(spec.resources).length) {
      if (state.userns) say(`${spec.name}: resource limits need root; running without cgroup limits`);
      else cgroupDirs = await setupCgroups(c.cgroup, `${ctx.tag}-${spec.name}`, spec.resources);
    }
    // exit and wrapper.stat of the last run stay: the supervisor overwrites them and they name their run.
    if (hostPhase) rmForce(`${paths.fstab}.run`);
    state.phase = 'starting';
    state.runId = randomBytes(6).toString('hex');
    state.wrapper = null;
    state.cgroups = cgroupDirs;
    state.starts += 1;
    state.stopRequested = false;
    state.code = null;
    state.message = null;
    // The one write before the spawn: it carries the runId, by which a supervisor spawned by a
    // process of ours that died right after is found again.
    writeStateSync(paths, state);
    const fstab = lines.join('\n') + '\n';
    if (readOr(paths.fstab) !== fstab) writeAtomicSync(paths.fstab, fstab);
    makeDevSkeletonSync(paths.dev);
    trace('cgroups+state+fstab+dev');
    await fault('start:before-spawn');
    const l: LaunchSpec = {
      tools: ctx.tools,
      paths,
      hostPhase,
      hostname: spec.hostname ?? spec.name,
      network: spec.network ?? 'none',
      userns: state.userns,
      argv: (spec.kind === 'os' ? spec.init : spec.command) ?? ['/sbin/init'],
      workdir: spec.workdir,
      cgroupDirs,
      marker: supervisorMarker(paths, state.runId),
      env: { PATH: DEFAULT_PATH, HOME: '/root', container: 'anybios', ...(spec.env ?? {}) },
    };
    const launched = launch(l, opts.readyTimeoutMs);
    ctx.spawned.set(spec.name, launched);
    trace('spawn');
    await fault('start:after-spawn');
    // From here on the system sets itself up (mounts, hostname, lo) on its own; what we do meanwhile
    // costs no time. The supervisor also records its own identity (wrapper.stat) first thing, so a
    // crash of ours from here on is recovered from that file. We record it, and the phase, now:
    // should setup fail, the supervisor exits 125 and the failure is recorded below (or observed).
    const ws = readStatSync(launched.wrapperPid);
    if (ws) state.wrapper = { pid: ws.pid, startTime: ws.startTime };
    state.phase = ws ? 'running' : 'starting'; // (no ws: gone already; observe reads wrapper.stat/exit)
    state.startedAt = new Date().toISOString();
    writeStateSync(paths, state);
    trace('record-supervisor');
    const ready = await launched.ready;
    trace('ready');
    if (!ready.ok) {
      launched.hold(true);
      await Promise.race([launched.exited, sleepUnref(5000)]);
      launched.hold(false);
      if (state.wrapper && (await isSameProcess(state.wrapper.pid, state.wrapper.startTime))) {
        try {
          process.kill(-state.wrapper.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await removeCgroups(cgroupDirs).catch(() => {});
      const tail = (await tailLog(paths.log, 2000)).trim().split('\n').slice(-5).join(' | ');
      state.phase = 'failed';
      state.code = 'START_FAILED';
      state.message = `setup failed before the system ran: ${tail || 'no output'}`;
      state.cgroups = [];
      writeStateSync(paths, state);
      throw new RuntimeError('START_FAILED', `system ${spec.name}: ${state.message}`);
    }
    await fault('start:after-ready');
    say(`${spec.name}: started (supervisor ${launched.wrapperPid})`);
    await rotateIfOver(ctx, paths.log);
    // What observe would say of a running system, from what we already know: the supervisor we
    // spawned and pid 1's identity from its "ok" line (it may have exited already: /bin/true).
    const o: Observed | null =
      state.wrapper && ready.init
        ? {
            name: spec.name,
            phase: 'running',
            kind: spec.kind,
            template: spec.template,
            pid: ready.init.pid,
            startTime: ready.init.startTime,
            supervisor: state.wrapper,
            exitCode: null,
            restarts: Math.max(0, state.starts - 1),
            specRev: state.specRev,
            strategy: state.strategy,
            startedAt: state.startedAt,
            diskUsed: null,
            code: null,
            message: null,
          }
        : await observeOne(ctx, spec.name, false);
    trace('observed');
    return o!;
  });
}

/** The file's content, or null when it cannot be read (then it is written). */
function readOr(f: string): string | null {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return null;
  }
}
