// Materialize: the system's own directories, its layer (overlay upper, or a full copy where overlayfs is
// unavailable), the files the system needs in its layer, its /dev skeleton and its volumes — all checked
// against the layers so that no path of a spec reaches outside the rootfs or the volume root.
// Idempotent: run again after a crash at any point, it finishes the job.
import { promises as fsp, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { SystemDoc } from '../../ddocs/schemas/types.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { lstatOrNull } from './fs-util.ts';
import { DEV_NODES, FRESH_MOUNTS, type VolumeMount } from './mounts.ts';
import { ensureDirMergedSync, ensureFileMergedSync, isInside, normalizeAbs, readIfExistsSync, type LayerView } from './paths.ts';
import type { SystemPaths } from './state.ts';
import type { ResolvedTemplate } from './templates.ts';
import { run } from './tools.ts';

export interface MaterializeContext {
  volumeRoot: string;
  /** Host paths hidden from host-template systems (they are reserved as mount targets too). */
  hides: string[];
  hostMounts: string[];
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
  return { view, volumes };
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

const DEV_LINKS: [string, string][] = [
  ['ptmx', 'pts/ptmx'],
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
];

/** Is `devDir` exactly the skeleton makeDevSkeleton builds (names, types, link targets, empty dirs)? */
export function isDevSkeleton(devDir: string): boolean {
  try {
    const st = lstatSync(devDir);
    if (!st.isDirectory() || (st.mode & 0o7777) !== 0o755) return false;
    const entries = readdirSync(devDir, { withFileTypes: true });
    if (entries.length !== DEV_NODES.length + 2 + DEV_LINKS.length) return false;
    const kind = new Map(entries.map((e) => [e.name, e.isFile() ? 'file' : e.isDirectory() ? 'dir' : e.isSymbolicLink() ? 'link' : 'other']));
    for (const n of DEV_NODES) if (kind.get(n) !== 'file') return false;
    for (const d of ['pts', 'shm']) if (kind.get(d) !== 'dir' || readdirSync(`${devDir}/${d}`).length !== 0) return false;
    for (const [n, to] of DEV_LINKS) if (kind.get(n) !== 'link' || readlinkSync(`${devDir}/${n}`) !== to) return false;
    return true;
  } catch {
    return false;
  }
}

/**
 * The minimal /dev, fresh at every start so nothing a system left there survives a restart: kept only
 * when it is exactly the skeleton (what a system can leave in it is checked: names, types, link
 * targets, empty pts/shm; the device files are covered by binds of the host's nodes anyway).
 */
export async function makeDevSkeleton(devDir: string): Promise<void> {
  makeDevSkeletonSync(devDir);
}

export function makeDevSkeletonSync(devDir: string): void {
  if (isDevSkeleton(devDir)) return;
  rmSync(devDir, { recursive: true, force: true });
  mkdirSync(devDir, { mode: 0o755 });
  for (const n of DEV_NODES) writeFileSync(`${devDir}/${n}`, '', { mode: 0o666 });
  mkdirSync(`${devDir}/pts`);
  mkdirSync(`${devDir}/shm`);
  for (const [n, to] of DEV_LINKS) symlinkSync(to, `${devDir}/${n}`);
}
