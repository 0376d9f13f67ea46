// Verb `start`: materialize (prepareSystem), then cgroups and the launch — crun with an OCI bundle
// (../oci-config.ts, ../launcher.ts), or proot (../launcher-proot.ts); a running system is adopted as it
// is. Waits until the system is set up (crun: namespaces, mounts, pivot_root) and answers with what
// observe would say.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rmForce } from '../fs-util.ts';
import type { SystemDoc, TemplateDoc } from '../../../ddocs/schemas/types.ts';
import { delegateInitCgroup, removeCgroups, setupCgroups } from '../cgroups.ts';
import type { RuntimeContext } from '../context.ts';
import { RuntimeError } from '../errors.ts';
import { launch, type LaunchSpec, type Launched } from '../launcher.ts';
import { launchProot, writeRunScriptSync, type ProotLaunchSpec } from '../launcher-proot.ts';
import type { Capabilities } from '../capabilities.ts';
import { tailLog } from '../logs.ts';
import { overlayOptions, type VolumeMount } from '../mounts.ts';
import { ociConfig } from '../oci-config.ts';
import { containerId, writeBundleSync } from '../bundle.ts';
import { liveSupervisor, supervisorMarker, type Observed } from '../observe.ts';
import { isSameProcess, readStatSync, sleepUnref } from '../proc.ts';
import { readStateSync, stageDirOf, withLock, writeStateSync, type SystemPaths, type SystemState } from '../state.ts';
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
    const launcher = state.launcher ?? 'crun';
    if (launcher === 'crun' && !c.tools.crun) throw new RuntimeError('TOOL_MISSING', 'crun not found in /usr/sbin:/usr/bin:/sbin:/bin: systems run as OCI containers (Debian/Ubuntu: apt-get install crun)');
    if (launcher === 'proot' && !c.tools.proot) throw new RuntimeError('TOOL_MISSING', 'proot not found in /usr/sbin:/usr/bin:/sbin:/bin (Debian: apt-get install proot; Termux: pkg install proot)');
    let cgroupDirs: string[] = [];
    if (spec.resources && Object.keys(spec.resources).length) {
      if (!c.root) say(`${spec.name}: resource limits need root; running without cgroup limits`);
      else cgroupDirs = await setupCgroups(c.cgroup, `${ctx.tag}-${spec.name}`, spec.resources);
    }
    // An os system's init may need cgroups of its own (systemd does): one delegated to its root (issue 14).
    if (spec.kind === 'os' && c.root && launcher === 'crun') {
      const own = await delegateInitCgroup(c.cgroup, `${ctx.tag}-${spec.name}`, state.ids?.hostId ?? 0);
      if (own && !cgroupDirs.includes(own)) cgroupDirs.push(own);
    }
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
    const run: RunInputs = {
      argv: (spec.kind === 'os' ? spec.init : spec.command) ?? ['/sbin/init'],
      env: { PATH: DEFAULT_PATH, HOME: '/root', container: 'anybios', ...(spec.env ?? {}) },
      cwd: spec.workdir ?? '/',
      marker: supervisorMarker(paths, state.runId),
      cgroupDirs,
    };
    const spawnIt = launcher === 'proot' ? prepareProot(ctx, c, paths, volumes, run) : prepareCrun(ctx, c, spec, state, volumes, hides, run);
    trace('cgroups+state+bundle');
    rmForce(paths.initPid); // the last run's: readiness must see only this run's
    await fault('start:before-spawn');
    const launched = spawnIt(opts.readyTimeoutMs);
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
    // spawned and pid 1 as the launcher saw it (it may have exited already: /bin/true).
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

function stageDir(tag: string, name: string): string {
  const d = stageDirOf(tag, name);
  mkdirSync(d, { recursive: true, mode: 0o711 });
  return d;
}

/** What every launcher needs of a run. */
interface RunInputs {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  marker: string;
  cgroupDirs: string[];
}

/** crun: the OCI bundle and the supervisor's plan (idmapped lower, overlay, hides); returns the spawn. */
function prepareCrun(ctx: RuntimeContext, c: Capabilities, spec: SystemDoc, state: SystemState, volumes: VolumeMount[], hides: string[], run: RunInputs): (timeoutMs?: number) => Launched {
  const paths = ctx.pathsOf(spec.name);
  const t = state.template;
  const ids = state.ids ?? null;
  // The template shows with the system's ids only through an idmapped mount; the host's own root is
  // never idmapped: its files stay owned by ids the system does not have (readable where the host
  // lets anyone read, never writable, /etc/shadow not readable).
  // (Copy strategy: the copy itself is mounted idmapped, so it keeps the system's own ids on disk.)
  const idmap = ids && c.idmapHelper && !t.host ? { helper: c.idmapHelper, template: t.lower, hostId: ids.hostId, size: ids.size } : null;
  const lower = idmap && state.strategy === 'overlay' ? paths.lower : t.lower;
  if (idmap) mkdirSync(paths.lower, { recursive: true, mode: 0o700 });
  // crun mounts as the system's root, which must be able to reach its root: not through our 0700
  // data dir, but at a mount point under /run that only exists, mounted, in the system's namespace.
  const rootfs = c.root ? stageDir(ctx.tag, spec.name) : paths.rootfs;
  const config = ociConfig({
    rootfs,
    argv: run.argv,
    env: run.env,
    cwd: run.cwd,
    hostname: spec.hostname ?? spec.name,
    kind: spec.kind,
    privileged: !!spec.privileged,
    network: spec.network ?? 'none',
    ids,
    rootless: state.userns,
    // Volumes keep the system's own ids on disk (0 = its root) through an idmapped bind, so a volume
    // outlives the system's id range (destroy and re-create, another system).
    idmapVolumes: !!(ids && c.idmapHelper),
    volumes,
    bound: c.capBound,
  });
  writeBundleSync(paths, config);
  const l: LaunchSpec = {
    tools: ctx.tools,
    crun: c.tools.crun!,
    paths,
    rootfs,
    root: state.strategy === 'copy' ? { bind: paths.upper } : { overlayOptions: overlayOptions([lower], paths.upper, paths.work) },
    idmap: idmap && state.strategy === 'copy' ? { ...idmap, template: paths.upper } : idmap,
    hides: t.host ? hides : [],
    hideCgroupfs: c.cgroup.layout === 'hybrid',
    rootless: state.userns,
    cgroupDirs: run.cgroupDirs,
    marker: run.marker,
    containerId: containerId(spec.name, state.runId!),
  };
  return (timeoutMs) => launch(l, timeoutMs);
}

/** proot: the run script (env and program) and the supervisor; returns the spawn. */
function prepareProot(ctx: RuntimeContext, c: Capabilities, paths: SystemPaths, volumes: VolumeMount[], run: RunInputs): (timeoutMs?: number) => Launched {
  writeRunScriptSync(paths, run.argv, run.env);
  const l: ProotLaunchSpec = { tools: ctx.tools, proot: c.tools.proot!, paths, root: paths.upper, cwd: run.cwd, volumes, cgroupDirs: run.cgroupDirs, marker: run.marker };
  return (timeoutMs) => launchProot(l, timeoutMs);
}
