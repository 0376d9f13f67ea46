// Materialize: the system's own directories, its layer (overlay upper, or a full copy where overlayfs is
// unavailable), the files the system needs in its layer (given to the system's root) and its volumes — all checked
// against the layers so that no path of a spec reaches outside the rootfs or the volume root.
// Idempotent: run again after a crash at any point, it finishes the job.
import { promises as fsp, lchownSync, lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { SystemDoc } from '../../ddocs/schemas/types.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { lstatOrNull } from './fs-util.ts';
import { FRESH_MOUNTS, type VolumeMount } from './mounts.ts';
import { ensureDirMergedSync, ensureFileMergedSync, isInside, normalizeAbs, readIfExistsSync, type LayerView } from './paths.ts';
import type { SystemPaths } from './state.ts';
import type { ResolvedTemplate } from './templates.ts';
import { run } from './tools.ts';

export interface MaterializeContext {
  volumeRoot: string;
  /** Host paths hidden from host-template systems (they are reserved as mount targets too). */
  hides: string[];
  hostMounts: string[];
  /** Host id of the system's root (its range): what we create in its layer is given to it. null: ours. */
  owner: number | null;
  /** No idmapped volume binds here: give a new (root-owned) volume directory to the system's root. */
  chownVolumes: boolean;
}

export function layerView(paths: SystemPaths, t: ResolvedTemplate, strategy: 'overlay' | 'copy', hostMounts: string[]): LayerView {
  if (strategy === 'copy') return { upper: paths.upper, lowers: [] };
  return { upper: paths.upper, lowers: [t.lower], hostMounts: t.host ? hostMounts : undefined };
}

/**
 * Idempotent and cheap when nothing changed (a restart): directories that exist are kept, files that
 * already hold the right content are not rewritten, but every check runs every time — the mount
 * targets (fresh mounts, /etc, volume targets) are walked again in the merged view, so a symlink the
 * system planted in its own layer during its last run is refused, and the volumes are checked again.
 */
export async function materializeSystem(
  ctx: MaterializeContext,
  paths: SystemPaths,
  spec: SystemDoc,
  t: ResolvedTemplate,
  strategy: 'overlay' | 'copy',
): Promise<{ view: LayerView; volumes: VolumeMount[] }> {
  mkdirSync(paths.dir, { recursive: true, mode: 0o755 });
  mkdirSync(paths.rootfs, { recursive: true, mode: 0o755 });
  if (strategy === 'overlay') {
    mkdirSync(paths.upper, { recursive: true, mode: 0o755 });
    mkdirSync(paths.work, { recursive: true, mode: 0o700 });
  } else {
    await copyTemplate(paths, t);
  }
  const view = layerView(paths, t, strategy, ctx.hostMounts);
  for (const d of [...FRESH_MOUNTS, '/etc']) ensureDirMergedSync(view, d, 'rootfs directory');
  const hostname = spec.hostname ?? spec.name;
  ensureFileMergedSync(view, '/etc/hostname', `${hostname}\n`);
  const resolv = spec.network === 'host' ? (readIfExistsSync('/etc/resolv.conf') ?? '') : '# network none: no resolver\n';
  ensureFileMergedSync(view, '/etc/resolv.conf', resolv);
  const volumes = prepareVolumes(ctx, view, spec, t.host);
  if (ctx.owner !== null) {
    giveToOwner(paths.upper, ['/', ...FRESH_MOUNTS, '/etc/hostname', '/etc/resolv.conf', ...volumes.map((v) => v.target)], ctx.owner);
    if (ctx.chownVolumes) for (const v of volumes) if (lstatSync(v.source).uid === 0) lchownSync(v.source, ctx.owner, ctx.owner);
  }
  return { view, volumes };
}

/**
 * What we created in the layer (owned by host root, an id the system does not have) is handed to the
 * system's root: each existing component of these paths in the upper layer still owned by 0. Anything
 * the system made itself is already in its range and is left alone; lchown never follows a link.
 */
function giveToOwner(upper: string, paths: string[], owner: number): void {
  const seen = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/').filter(Boolean);
    for (let i = 0; i <= parts.length; i++) {
      const rel = '/' + parts.slice(0, i).join('/');
      if (seen.has(rel)) continue;
      seen.add(rel);
      const full = rel === '/' ? upper : `${upper}${rel}`;
      const st = lstatOrNull(full);
      if (st && st.uid === 0) lchownSync(full, owner, owner);
    }
  }
}

/** Copy strategy: the whole template once into upper/ (cost: a full copy per system, in time and disk). */
async function copyTemplate(paths: SystemPaths, t: ResolvedTemplate): Promise<void> {
  try {
    await fsp.access(paths.upper);
    return; // done before (the rename below is the commit point)
  } catch {
    // not yet
  }
  if (t.host) throw new RuntimeError('TEMPLATE_HOST_COPY');
  const tmp = `${paths.dir}/copy.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  for (const n of await fsp.readdir(paths.dir)) if (n.startsWith('copy.tmp-')) await fsp.rm(`${paths.dir}/${n}`, { recursive: true, force: true });
  try {
    const r = await run('cp', ['-a', '--reflink=auto', '--', `${t.lower}/.`, tmp]);
    if (r.code !== 0) throw new RuntimeError('TEMPLATE_UNPACK_FAILED', `copying template ${t.name}: ${r.stderr.trim().slice(0, 500)}`);
    await fsp.rename(tmp, paths.upper);
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/** Validate mount targets (pure part): normalized, not reserved, not nested. */
export function checkTargets(mounts: { volume: string; target: string }[], hides: string[], hostTemplate: boolean): string[] {
  const targets = mounts.map((m) => normalizeAbs(m.target, `mount target of volume ${m.volume}`));
  targets.forEach((tg, i) => {
    if (tg === '/' || FRESH_MOUNTS.some((f) => isInside(tg, f))) {
      throw new RuntimeError('PATH_RESERVED', `mount target ${tg} is reserved (/, ${FRESH_MOUNTS.join(', ')} get their own mounts)`);
    }
    if (hostTemplate && hides.some((h) => isInside(tg, h) || isInside(h, tg))) {
      throw new RuntimeError('PATH_RESERVED', `mount target ${tg} overlaps a host path hidden from host-template systems`);
    }
    targets.forEach((o, j) => {
      if (i !== j && isInside(tg, o)) throw new RuntimeError('PATH_NESTED', `mount target ${tg} lies inside mount target ${o}`);
    });
  });
  return targets;
}

/** The host directory of a volume: a real directory directly under the volume root (created if absent). */
export async function volumeDir(volumeRoot: string, name: string, create: boolean): Promise<string> {
  return volumeDirSync(volumeRoot, name, create);
}

export function volumeDirSync(volumeRoot: string, name: string, create: boolean): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new RuntimeError('INVALID_NAME', `volume name ${JSON.stringify(name)} is not valid`);
  const rootSt = lstatOrNull(volumeRoot);
  if (rootSt?.isSymbolicLink()) throw new RuntimeError('VOLUME_ROOT_SYMLINK', `volume root ${volumeRoot} is a symlink`);
  if (create && !rootSt) mkdirSync(volumeRoot, { recursive: true, mode: 0o755 });
  const dir = `${volumeRoot}/${name}`;
  let st = lstatOrNull(dir);
  if (!st && create) {
    try {
      mkdirSync(dir, { mode: 0o755 });
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw e;
    }
    st = lstatSync(dir);
  }
  if (st?.isSymbolicLink()) throw new RuntimeError('VOLUME_SYMLINK', `volume ${name}: ${dir} is a symlink`);
  if (st && !st.isDirectory()) throw new RuntimeError('VOLUME_NOT_DIR', `volume ${name}: ${dir} is not a directory`);
  const real = realOr(dir);
  const realRoot = realOr(volumeRoot);
  if (!isInside(real, realRoot) || real === realRoot) throw new RuntimeError('VOLUME_OUTSIDE_ROOT', `volume ${name} resolves to ${real}, outside ${realRoot}`);
  return real;
}

function realOr(p: string): string {
  try {
    return realpathSync.native(p);
  } catch {
    return p;
  }
}

function prepareVolumes(ctx: MaterializeContext, view: LayerView, spec: SystemDoc, hostTemplate: boolean): VolumeMount[] {
  const mounts = spec.mounts ?? [];
  const targets = checkTargets(mounts, ctx.hides, hostTemplate);
  const out: VolumeMount[] = [];
  for (let i = 0; i < mounts.length; i++) {
    const m = mounts[i]!;
    const source = volumeDirSync(ctx.volumeRoot, m.volume, true);
    ensureDirMergedSync(view, targets[i]!, 'mount target');
    out.push({ source, target: targets[i]!, readOnly: !!m.readOnly });
  }
  return out;
}
