// The runtime: materialize, start, observe, stop, destroy systems on this Linux machine.
//
// Invariants:
// - Every operation on a system holds its lock and is idempotent: "already there / already gone" is
//   success. A start that died halfway (our process SIGKILLed) is adopted if its supervisor runs, and
//   otherwise simply redone: mounts live only in the system's own namespace, so nothing needs undoing.
// - Specs and templates are validated here again (schema, names, every path against the layers).
// - We only ever touch <data>/systems/<name>, <volumeRoot>/<volume> named by a spec, <data>/templates,
//   <data>/locks and cgroups named anybios/<tag>-<name>; signals go only to processes identified by
//   pid + start time.
import { promises as fsp, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import { docErrors } from '../../ddocs/validate.ts';
import { probeCapabilities, type Capabilities } from './capabilities.ts';
import { removeCgroups, setupCgroups } from './cgroups.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { readLog, rotateLog, tailLog } from './logs.ts';
import { makeDevSkeletonSync, materializeSystem, volumeDir, type MaterializeContext } from './materialize.ts';
import { hostHides, overlayOptions, rootfsLine, systemLines, type MountPlan } from './mounts.ts';
import { observeState, liveSupervisor, supervisorMarker, type Observed } from './observe.ts';
import { diskUsage, isInside, mountPoints, mountPointsSync, writeAtomicSync } from './paths.ts';
import { childrenOf, isSameProcess, readStat, readStatSync, sleep, sleepUnref } from './proc.ts';
import { launch, type LaunchSpec } from './start.ts';
import { readState, readStateSync, systemPaths, withLock, writeState, writeStateSync, type SystemPaths, type SystemState } from './state.ts';
import type { ResolvedTemplate } from './templates.ts';
import { resolveTemplate } from './templates.ts';
import { findTools, run, type Tools } from './tools.ts';

export interface RuntimeOptions {
  dataDir: string;
  /** Directories under which `dir` templates may live. */
  templateRoots?: string[];
  /** Default <dataDir>/volumes. */
  volumeRoot?: string;
  log?: (msg: string) => void;
  /** overlay where possible (auto), or force one strategy (copy: a full copy of the template per system). */
  strategy?: 'auto' | 'overlay' | 'copy';
  /** Log cap before rotation (default 1 MiB). */
  logMaxBytes?: number;
  /** Test hook: called at named points of materialize/start (crash-recovery tests SIGKILL there). */
  faultPoint?: (point: FaultPoint) => void | Promise<void>;
}

export type FaultPoint = 'materialize:begin' | 'materialize:done' | 'start:before-spawn' | 'start:after-spawn' | 'start:after-ready';

export interface StartOptions {
  /** The spec revision being applied (default spec._rev). */
  specRev?: string | null;
  /** A tar template's tarball (file path or bytes) when it is not in the cache yet. */
  tarball?: string | Buffer;
  /** How long to wait for the system's setup (mounts) before giving up. */
  readyTimeoutMs?: number;
}

export interface Runtime {
  readonly dataDir: string;
  readonly volumeRoot: string;
  capabilities(): Promise<Capabilities>;
  materialize(spec: SystemDoc, template: TemplateDoc, opts?: StartOptions): Promise<Observed>;
  start(spec: SystemDoc, template: TemplateDoc, opts?: StartOptions): Promise<Observed>;
  stop(name: string, opts?: { graceMs?: number }): Promise<Observed | null>;
  destroy(name: string, opts?: { volumes?: boolean; graceMs?: number }): Promise<void>;
  observe(name: string, opts?: { diskUsage?: boolean }): Promise<Observed | null>;
  list(opts?: { diskUsage?: boolean }): Promise<Observed[]>;
  /** Resolves with the exit code once the system is no longer running (null: exit not recorded). */
  wait(name: string, opts?: { timeoutMs?: number }): Promise<number | null>;
  logs(name: string, opts?: { follow?: boolean; signal?: AbortSignal }): AsyncGenerator<Buffer>;
  logTail(name: string, bytes?: number): Promise<string>;
  /** argv (nsenter …) that runs `cmd` inside the running system's namespaces and root. */
  enterArgs(name: string, cmd?: string[]): Promise<string[]>;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function checkName(name: unknown, what = 'system'): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new RuntimeError('INVALID_NAME', `${what} name ${JSON.stringify(name)} must match ${NAME_RE.source}`);
  return name;
}

// docErrors runs the ddoc rules in a sandbox that JSON-copies its argument (~0.1 ms a call), so its
// verdict is a function of the JSON text: documents already found valid are remembered by that text.
const validDocs = new Set<string>();
function knownValid(doc: unknown): boolean {
  const key = JSON.stringify(doc);
  if (validDocs.has(key)) return true;
  if (docErrors(doc).length) return false;
  if (validDocs.size >= 256) validDocs.clear();
  validDocs.add(key);
  return true;
}

export function validateInputs(spec: SystemDoc, template: TemplateDoc): void {
  checkName(spec?.name);
  if (knownValid(spec) && knownValid(template)) {
    checkName(template?.name, 'template');
    if (template.name !== spec.template) throw new RuntimeError('INVALID_TEMPLATE', `system ${spec.name} wants template ${spec.template}, got ${template.name}`);
    return;
  }
  const se = docErrors(spec);
  if (se.length) throw new RuntimeError('INVALID_SPEC', `system ${spec.name}: ${se.map((e) => `${e.path} ${e.message}`).join('; ')}`);
  checkName(template?.name, 'template');
  const te = docErrors(template);
  if (te.length) throw new RuntimeError('INVALID_TEMPLATE', `template ${template.name}: ${te.map((e) => `${e.path} ${e.message}`).join('; ')}`);
  if (template.name !== spec.template) throw new RuntimeError('INVALID_TEMPLATE', `system ${spec.name} wants template ${spec.template}, got ${template.name}`);
}

export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  await fsp.mkdir(options.dataDir, { recursive: true, mode: 0o755 });
  const dataDir = await fsp.realpath(options.dataDir);
  if (/[,:\s\\]/.test(dataDir)) throw new RuntimeError('PATH_INVALID', `data dir ${dataDir} must not contain , : \\ or whitespace (overlayfs options)`);
  // Kept as given (not realpath'd): a volume root that is a symlink is refused when a volume is used.
  const volumeRoot = options.volumeRoot ? path.resolve(options.volumeRoot) : `${dataDir}/volumes`;
  const templateRoots = options.templateRoots ?? [];
  const say = options.log ?? (() => {});
  const fault = options.faultPoint ?? (() => {});
  // ANYBIOS_TRACE=1 prints the time spent in each step of materialize/start (for bench/start).
  let traceT = 0;
  const trace = process.env.ANYBIOS_TRACE
    ? (step: string) => {
        const now = performance.now();
        if (step !== 'begin') process.stderr.write(`trace ${step} ${(now - traceT).toFixed(2)}ms\n`);
        traceT = now;
      }
    : () => {};
  const logMax = options.logMaxBytes ?? 1024 * 1024;
  const tag = createHash('sha256').update(dataDir).digest('hex').slice(0, 8);
  await fsp.mkdir(`${dataDir}/systems`, { recursive: true });
  const tools: Tools = findTools();
  let caps: Promise<Capabilities> | null = null;
  const capabilities = () => (caps ??= probeCapabilities(tools, dataDir, options.strategy ?? 'auto'));
  const spawned = new Map<string, { wrapperPid: number; exited: Promise<number | null>; hold(on: boolean): void }>();

  const pathsOf = (name: string): SystemPaths => systemPaths(dataDir, checkName(name));

  async function hidden(): Promise<{ hides: string[]; hostMounts: string[] }> {
    const hostMounts = mountPointsSync();
    const real = async (p: string) => fsp.realpath(p).catch(() => p);
    const candidates = await Promise.all([dataDir, volumeRoot, ...templateRoots].map(real));
    return { hides: hostHides(candidates, hostMounts), hostMounts };
  }

  async function userns(c: Capabilities): Promise<boolean> {
    if (c.root) return false;
    if (!c.userns) {
      throw new RuntimeError(
        'NOT_PRIVILEGED',
        `running as uid ${process.getuid?.()} (not root) and this kernel gives us no user namespace: ` +
          `unshare --user --map-root-user failed${c.usernsError ? ` (${c.usernsError})` : ''}; ` +
          'run as root, or allow unprivileged user namespaces (user.max_user_namespaces > 0, and e.g. kernel.unprivileged_userns_clone=1 or ' +
          'kernel.apparmor_restrict_unprivileged_userns=0 where the distribution has those)',
      );
    }
    return true;
  }

  /** Rootless: files of the template not owned by our uid show as nobody inside and cannot be changed there. */
  function warnForeignOwner(name: string, t: ResolvedTemplate): void {
    const uid = process.getuid?.();
    let owner: number | undefined;
    try {
      owner = statSync(t.lower).uid;
    } catch {
      return;
    }
    if (owner !== uid) {
      say(`${name}: rootless: template ${t.name} (${t.lower}) is owned by uid ${owner}, not by us (uid ${uid}): inside the system its files show as nobody and cannot be changed (only our own uid is mapped, to root)`);
    }
  }

  /**
   * Materialize (idempotent). `inStart`: called by start, which writes the state ("starting") right
   * after, so the "materialized" write is left out, and so is the "materializing" write when the state
   * already records this very materialization (same inputs, finished): a restart writes nothing here.
   */
  async function doMaterialize(spec: SystemDoc, template: TemplateDoc, opts: StartOptions, prev: SystemState | null, inStart = false) {
    const c = await capabilities();
    const ns = await userns(c);
    const paths = pathsOf(spec.name);
    const t = await resolveTemplate({ dataDir, templateRoots, tar: tools.tar }, template, opts.tarball);
    if (ns && t.host) {
      // overlayfs must clone its lower layer privately; in a user namespace the kernel refuses that for
      // `/`, whose submounts (/proc, /sys, /dev…) are locked there ("failed to clone lowerpath").
      throw new RuntimeError('TEMPLATE_HOST_ROOTLESS', `system ${spec.name}: the host template needs root; in a user namespace the kernel does not let overlayfs take / (with its locked submounts) as the lower layer`);
    }
    if (c.strategy === 'overlay' && !c.overlay) throw new RuntimeError('OVERLAY_UNAVAILABLE');
    // A system keeps the strategy it was created with (its layer is one or the other).
    const strategy = prev?.strategy ?? c.strategy;
    const state: SystemState = {
      v: 1,
      name: spec.name,
      phase: 'materializing',
      spec,
      specRev: opts.specRev !== undefined ? opts.specRev : (spec._rev ?? null),
      template: t,
      strategy,
      userns: ns,
      runId: null,
      wrapper: null,
      cgroups: prev?.cgroups ?? [],
      starts: prev?.starts ?? 0,
      startedAt: prev?.startedAt ?? null,
      stopRequested: false,
      code: null,
      message: null,
    };
    const same = inStart && prev !== null && prev.phase !== 'materializing' && materializeKey(prev.spec, prev.template, prev.userns) === materializeKey(spec, t, ns);
    if (!same) {
      if (ns) warnForeignOwner(spec.name, t);
      mkdirSync(paths.dir, { recursive: true, mode: 0o755 });
      writeStateSync(paths, state);
    }
    await fault('materialize:begin');
    trace('m:template+state');
    // Hidden host paths only concern the host template (the others never show host paths).
    const { hides, hostMounts } = t.host ? await hidden() : { hides: [], hostMounts: [] };
    trace('m:hidden');
    const mctx: MaterializeContext = { volumeRoot, hides, hostMounts };
    const { volumes } = await materializeSystem(mctx, paths, spec, t, strategy);
    state.phase = 'materialized';
    if (!inStart) writeStateSync(paths, state);
    await fault('materialize:done');
    return { paths, state, volumes, hides };
  }

  async function observeOne(name: string, withDisk: boolean): Promise<Observed | null> {
    const paths = pathsOf(name);
    const s = readStateSync(paths);
    if (!s) return null;
    const o = await observeState(paths, s);
    await rotateIfOver(paths.log);
    if (withDisk) o.diskUsed = await diskUsage(paths.upper);
    return o;
  }

  /** Keep the log cap (a stat; the copy only when over the cap). */
  async function rotateIfOver(log: string): Promise<void> {
    let size = 0;
    try {
      size = statSync(log).size;
    } catch {
      return;
    }
    if (size > logMax) await rotateLog(log, logMax).catch(() => false);
  }

  async function stopLocked(name: string, graceMs: number): Promise<Observed | null> {
    const paths = pathsOf(name);
    const s = await readState(paths);
    if (!s) return null;
    const sup = await liveSupervisor(paths, s);
    if (sup) {
      s.stopRequested = true;
      s.wrapper = sup;
      await writeState(paths, s);
      const initPid = async (): Promise<number | null> => {
        for (const k of await childrenOf(sup.pid)) {
          const st = await readStat(k);
          if (st && st.ppid === sup.pid) return k;
        }
        return null;
      };
      const gone = async (ms: number) => {
        const until = Date.now() + ms;
        while (Date.now() < until) {
          if (!(await isSameProcess(sup.pid, sup.startTime))) return true;
          await sleep(10);
        }
        return !(await isSameProcess(sup.pid, sup.startTime));
      };
      const signal = async (sig: NodeJS.Signals) => {
        const p = await initPid();
        if (p) {
          try {
            process.kill(p, sig);
          } catch (e) {
            if (errnoOf(e) !== 'ESRCH') throw e;
          }
        }
      };
      await signal('SIGTERM');
      if (!(await gone(graceMs))) {
        say(`${name}: no exit ${graceMs} ms after SIGTERM, sending SIGKILL`);
        await signal('SIGKILL');
        if (!(await gone(5000))) {
          if (await isSameProcess(sup.pid, sup.startTime)) process.kill(sup.pid, 'SIGKILL');
          if (!(await gone(2000))) throw new RuntimeError('STOP_FAILED', `${name}: supervisor ${sup.pid} still alive after SIGKILL`);
        }
      }
    }
    await removeCgroups(s.cgroups);
    if (s.phase === 'starting' || s.phase === 'running' || sup) {
      s.phase = 'stopped';
      s.stopRequested = true;
    }
    s.cgroups = [];
    await writeState(paths, s);
    return observeState(paths, s);
  }

  const rt: Runtime = {
    dataDir,
    volumeRoot,
    capabilities,

    async materialize(spec, template, opts = {}) {
      validateInputs(spec, template);
      return withLock(dataDir, spec.name, async () => {
        const paths = pathsOf(spec.name);
        const prev = await readState(paths);
        if (prev && (await liveSupervisor(paths, prev))) throw new RuntimeError('RUNNING', `system ${spec.name} is running; stop it before materializing again`);
        await doMaterialize(spec, template, opts, prev);
        return (await observeOne(spec.name, false))!;
      });
    },

    async start(spec, template, opts = {}) {
      trace('begin');
      validateInputs(spec, template);
      return withLock(dataDir, spec.name, async () => {
        trace('validate+lock');
        const paths = pathsOf(spec.name);
        const prev = readStateSync(paths);
        if (prev) {
          const sup = await liveSupervisor(paths, prev);
          if (sup) {
            // Running already (perhaps started by a process of ours that died mid-start): adopt it.
            if (prev.phase === 'starting' || !prev.wrapper) writeStateSync(paths, { ...prev, phase: 'running', wrapper: sup });
            return (await observeOne(spec.name, false))!;
          }
          if (prev.cgroups.length) await removeCgroups(prev.cgroups);
        }
        trace('prev-state');
        const { state, volumes, hides } = await doMaterialize(spec, template, opts, prev, true);
        trace('materialize');
        const c = await capabilities();
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
          else cgroupDirs = await setupCgroups(c.cgroup, `${tag}-${spec.name}`, spec.resources);
        }
        // exit and wrapper.stat of the last run stay: the supervisor overwrites them and they name their run.
        if (hostPhase) rmFile(`${paths.fstab}.run`);
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
          tools,
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
        spawned.set(spec.name, launched);
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
        await rotateIfOver(paths.log);
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
            : await observeOne(spec.name, false);
        trace('observed');
        return o!;
      });
    },

    async stop(name, opts = {}) {
      checkName(name);
      return withLock(dataDir, name, () => stopLocked(name, opts.graceMs ?? 10_000));
    },

    async destroy(name, opts = {}) {
      checkName(name);
      await withLock(dataDir, name, async () => {
        const paths = pathsOf(name);
        const s = await readState(paths);
        if (s) await stopLocked(name, opts.graceMs ?? 10_000);
        // We never mount in the host namespace; anything found here is not from a clean run: unmount it.
        const stray = (await mountPoints()).filter((m) => isInside(m, paths.dir)).reverse();
        for (const m of stray) await run('umount', ['-l', m]);
        if (opts.volumes && s?.spec.mounts) {
          for (const m of s.spec.mounts) {
            const dir = await volumeDir(volumeRoot, m.volume, false).catch(() => null);
            if (dir) await removeTree(dir);
          }
        }
        await removeTree(paths.dir);
        spawned.delete(name);
      });
    },

    async observe(name, opts = {}) {
      return observeOne(name, opts.diskUsage ?? true);
    },

    async list(opts = {}) {
      const names = (await fsp.readdir(`${dataDir}/systems`)).filter((n) => NAME_RE.test(n)).sort();
      const out: Observed[] = [];
      for (const n of names) {
        const o = await observeOne(n, opts.diskUsage ?? true);
        if (o) out.push(o);
      }
      return out;
    },

    async wait(name, opts = {}) {
      const paths = pathsOf(name);
      const until = Date.now() + (opts.timeoutMs ?? 2 ** 31 - 1);
      const mine = spawned.get(name);
      if (mine) {
        const s = readStateSync(paths);
        if (s?.wrapper?.pid === mine.wrapperPid) {
          mine.hold(true);
          try {
            await Promise.race([mine.exited, sleepUnref(Math.max(0, until - Date.now()))]);
          } finally {
            mine.hold(false);
          }
        }
      }
      for (;;) {
        const s = readStateSync(paths);
        if (!s) return null;
        const o = await observeState(paths, s);
        if (o.phase !== 'running') return o.exitCode;
        if (Date.now() > until) throw new RuntimeError('RUNNING', `system ${name} still running`);
        await sleep(20);
      }
    },

    async *logs(name, opts = {}) {
      const paths = pathsOf(name);
      if (!(await readState(paths))) throw new RuntimeError('NOT_FOUND', `no system ${name} in ${dataDir}`);
      yield* readLog(paths.log, opts);
    },

    async logTail(name, bytes = 4096) {
      return tailLog(pathsOf(name).log, bytes);
    },

    async enterArgs(name, cmd = ['/bin/sh']) {
      const paths = pathsOf(name);
      const s = await readState(paths);
      if (!s) throw new RuntimeError('NOT_FOUND', `no system ${name} in ${dataDir}`);
      const o = await observeState(paths, s);
      if (o.phase !== 'running' || !o.pid) throw new RuntimeError('NOT_RUNNING', `system ${name} is ${o.phase}`);
      const a = [tools.nsenter, '--target', String(o.pid), '--mount', '--uts', '--ipc', '--pid'];
      if ((s.spec.network ?? 'none') === 'none') a.push('--net');
      if (s.userns) a.push('--user', '--preserve-credentials');
      a.push('--root', '--wd', '--', ...cmd);
      return a;
    },
  };
  return rt;
}

/** The materialization inputs that the state records (for observe and destroy): unchanged → no write. */
function materializeKey(spec: SystemDoc, t: ResolvedTemplate, userns: boolean): string {
  return JSON.stringify([spec.name, spec.template, spec.hostname ?? null, spec.network ?? null, spec.mounts ?? [], t, userns]);
}

/**
 * rm -rf that also works without root: a system (root only in its user namespace, our uid on the host)
 * can leave directories we may not read or search (mode 000, or overlayfs' own work/work). We own them,
 * so on EACCES/EPERM the directories (never symlinks: lstat) are made 0700 and the removal retried.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    await fsp.rm(dir, { recursive: true, force: true });
    return;
  } catch (e) {
    if (errnoOf(e) !== 'EACCES' && errnoOf(e) !== 'EPERM') throw e;
  }
  const open = async (d: string): Promise<void> => {
    await fsp.chmod(d, 0o700).catch(() => {});
    for (const n of await fsp.readdir(d).catch(() => [] as string[])) {
      const st = await fsp.lstat(`${d}/${n}`).catch(() => null);
      if (st?.isDirectory()) await open(`${d}/${n}`);
    }
  };
  await open(dir);
  await fsp.rm(dir, { recursive: true, force: true });
}

function rmFile(f: string): void {
  try {
    unlinkSync(f);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
}

function readOr(f: string): string | null {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return null;
  }
}
