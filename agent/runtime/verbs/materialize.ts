// Verb `materialize`: the system's layer, /etc files and volumes, with its state recorded around it
// (the on-disk mechanics are ../materialize.ts). `prepareSystem` is shared with start, which
// materializes first every time.
import { promises as fsp, mkdirSync, statSync } from 'node:fs';
import type { SystemDoc, TemplateDoc } from '../../../ddocs/schemas/types.ts';
import type { Capabilities } from '../capabilities.ts';
import type { RuntimeContext } from '../context.ts';
import { RuntimeError } from '../errors.ts';
import { materializeSystem, type MaterializeContext } from '../materialize.ts';
import { hostHides, type VolumeMount } from '../mounts.ts';
import { liveSupervisor, type Observed } from '../observe.ts';
import { mountPointsSync } from '../paths.ts';
import { readState, withLock, writeStateSync, type SystemPaths, type SystemState } from '../state.ts';
import { resolveTemplate, type ResolvedTemplate } from '../templates.ts';
import { observeOne } from './observe.ts';
import { claimIdRange } from '../id-ranges.ts';
import type { IdRange } from '../oci-config.ts';

export interface StartOptions {
  /** The spec revision being applied (default spec._rev). */
  specRev?: string | null;
  /** A tar template's tarball (file path or bytes) when it is not in the cache yet. */
  tarball?: string | Buffer;
  /** How long to wait for the system's setup (mounts) before giving up. */
  readyTimeoutMs?: number;
}

export async function materialize(ctx: RuntimeContext, spec: SystemDoc, template: TemplateDoc, opts: StartOptions = {}): Promise<Observed> {
  ctx.validateInputs(spec, template);
  return withLock(ctx.dataDir, spec.name, async () => {
    const paths = ctx.pathsOf(spec.name);
    const prev = await readState(paths);
    if (prev && (await liveSupervisor(paths, prev))) throw new RuntimeError('RUNNING', `system ${spec.name} is running; stop it before materializing again`);
    await prepareSystem(ctx, spec, template, opts, prev);
    return (await observeOne(ctx, spec.name, false))!;
  });
}

export interface Prepared {
  paths: SystemPaths;
  state: SystemState;
  volumes: VolumeMount[];
  /** Host paths hidden from a host-template system. */
  hides: string[];
}

/**
 * Materialize (idempotent; the caller holds the lock). `inStart`: called by start, which writes the
 * state ("starting") right after, so the "materialized" write is left out, and so is the
 * "materializing" write when the state already records this very materialization (same inputs,
 * finished): a restart writes nothing here.
 */
export async function prepareSystem(ctx: RuntimeContext, spec: SystemDoc, template: TemplateDoc, opts: StartOptions, prev: SystemState | null, inStart = false): Promise<Prepared> {
  const c = await ctx.capabilities();
  const ns = userns(c);
  const paths = ctx.pathsOf(spec.name);
  const t = await resolveTemplate({ dataDir: ctx.dataDir, templateRoots: ctx.templateRoots, tar: ctx.tools.tar }, template, opts.tarball);
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
    launcher: c.launcher!,
    // Root: a private id range (kept for the system's life); privileged: none; rootless: our own uid only.
    ids: c.root && c.launcher === 'crun' && !spec.privileged ? claimIdRange(ctx.dataDir, spec.name) : null,
    runId: null,
    wrapper: null,
    cgroups: prev?.cgroups ?? [],
    starts: prev?.starts ?? 0,
    startedAt: prev?.startedAt ?? null,
    stopRequested: false,
    code: null,
    message: null,
  };
  const same = inStart && prev !== null && prev.phase !== 'materializing' && materializeKey(prev.spec, prev.template, prev.userns, prev.ids) === materializeKey(spec, t, ns, state.ids);
  if (!same) {
    if (ns) warnForeignOwner(ctx, spec.name, t);
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    writeStateSync(paths, state);
  }
  await ctx.fault('materialize:begin');
  ctx.trace('m:template+state');
  // Hidden host paths only concern the host template (the others never show host paths).
  const { hides, hostMounts } = t.host ? await hidden(ctx) : { hides: [], hostMounts: [] };
  ctx.trace('m:hidden');
  const mctx: MaterializeContext = { volumeRoot: ctx.volumeRoot, hides, hostMounts, owner: state.ids?.hostId ?? null, chownVolumes: !c.idmapHelper };
  const { volumes } = await materializeSystem(mctx, paths, spec, t, strategy);
  state.phase = 'materialized';
  if (!inStart) writeStateSync(paths, state);
  await ctx.fault('materialize:done');
  return { paths, state, volumes, hides };
}

/**
 * Whether systems run rootless under crun (in a user namespace of the supervisor's); refused when
 * nothing can run systems here (no root, no user namespace and no proot; or no crun).
 */
function userns(c: Capabilities): boolean {
  if (!c.launcher) {
    if (c.root || c.userns) throw new RuntimeError('TOOL_MISSING', c.launcherReason);
    throw new RuntimeError(
      'NOT_PRIVILEGED',
      `running as uid ${process.getuid?.()} (not root) and this kernel gives us no user namespace: ` +
        `unshare --user --map-root-user failed${c.usernsError ? ` (${c.usernsError})` : ''}; ` +
        'run as root, or allow unprivileged user namespaces (user.max_user_namespaces > 0, and e.g. kernel.unprivileged_userns_clone=1 or ' +
        'kernel.apparmor_restrict_unprivileged_userns=0 where the distribution has those), or install proot (no isolation): ' +
        c.launcherReason,
    );
  }
  return c.launcher === 'crun' && !c.root;
}

/** The host paths a host-template system must not see (data dir, volume root, template roots). */
async function hidden(ctx: RuntimeContext): Promise<{ hides: string[]; hostMounts: string[] }> {
  const hostMounts = mountPointsSync();
  const real = async (p: string) => fsp.realpath(p).catch(() => p);
  const candidates = await Promise.all([ctx.dataDir, ctx.volumeRoot, ...ctx.templateRoots].map(real));
  return { hides: hostHides(candidates, hostMounts), hostMounts };
}

/** Rootless: files of the template not owned by our uid show as nobody inside and cannot be changed there. */
function warnForeignOwner(ctx: RuntimeContext, name: string, t: ResolvedTemplate): void {
  const uid = process.getuid?.();
  let owner: number | undefined;
  try {
    owner = statSync(t.lower).uid;
  } catch {
    return;
  }
  if (owner !== uid) {
    ctx.say(`${name}: rootless: template ${t.name} (${t.lower}) is owned by uid ${owner}, not by us (uid ${uid}): inside the system its files show as nobody and cannot be changed (only our own uid is mapped, to root)`);
  }
}

/** The materialization inputs that the state records (for observe and destroy): unchanged → no write. */
function materializeKey(spec: SystemDoc, t: ResolvedTemplate, userns: boolean, ids: IdRange | null | undefined): string {
  return JSON.stringify([spec.name, spec.template, spec.hostname ?? null, spec.network ?? null, spec.mounts ?? [], t, userns, ids ?? null]);
}
