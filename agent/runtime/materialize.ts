// Materialize: the system's own directories, its layer (overlay upper, or a full copy where overlayfs is
// unavailable), the files the system needs in its layer, its /dev skeleton and its volumes — all checked
// against the layers so that no path of a spec reaches outside the rootfs or the volume root.
// Idempotent: run again after a crash at any point, it finishes the job.
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { SystemDoc } from '../../ddocs/schemas/types.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { DEV_NODES, FRESH_MOUNTS, type VolumeMount } from './mounts.ts';
import { ensureDirMerged, isInside, normalizeAbs, readIfExists, writeFileMerged, type LayerView } from './paths.ts';
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

export async function materializeSystem(
  ctx: MaterializeContext,
  paths: SystemPaths,
  spec: SystemDoc,
  t: ResolvedTemplate,
  strategy: 'overlay' | 'copy',
): Promise<{ view: LayerView; volumes: VolumeMount[] }> {
  await fsp.mkdir(paths.dir, { recursive: true, mode: 0o755 });
  await fsp.mkdir(paths.rootfs, { recursive: true, mode: 0o755 });
  if (strategy === 'overlay') {
    await fsp.mkdir(paths.upper, { recursive: true, mode: 0o755 });
    await fsp.mkdir(paths.work, { recursive: true, mode: 0o700 });
  } else {
    await copyTemplate(paths, t);
  }
  const view = layerView(paths, t, strategy, ctx.hostMounts);
  for (const d of [...FRESH_MOUNTS, '/etc']) await ensureDirMerged(view, d, 'rootfs directory');
  const hostname = spec.hostname ?? spec.name;
  await writeFileMerged(view, '/etc/hostname', `${hostname}\n`);
  const resolv = spec.network === 'host' ? ((await readIfExists('/etc/resolv.conf')) ?? '') : '# network none: no resolver\n';
  await writeFileMerged(view, '/etc/resolv.conf', resolv);
  const volumes = await prepareVolumes(ctx, view, spec, t.host);
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
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new RuntimeError('INVALID_NAME', `volume name ${JSON.stringify(name)} is not valid`);
  const rootSt = await fsp.lstat(volumeRoot).catch(() => null);
  if (rootSt?.isSymbolicLink()) throw new RuntimeError('VOLUME_ROOT_SYMLINK', `volume root ${volumeRoot} is a symlink`);
  if (create) await fsp.mkdir(volumeRoot, { recursive: true, mode: 0o755 });
  const dir = `${volumeRoot}/${name}`;
  let st = await fsp.lstat(dir).catch((e) => (errnoOf(e) === 'ENOENT' ? null : Promise.reject(e)));
  if (!st && create) {
    await fsp.mkdir(dir, { mode: 0o755 }).catch((e) => (errnoOf(e) === 'EEXIST' ? undefined : Promise.reject(e)));
    st = await fsp.lstat(dir);
  }
  if (st?.isSymbolicLink()) throw new RuntimeError('VOLUME_SYMLINK', `volume ${name}: ${dir} is a symlink`);
  if (st && !st.isDirectory()) throw new RuntimeError('VOLUME_NOT_DIR', `volume ${name}: ${dir} is not a directory`);
  const real = await fsp.realpath(dir).catch(() => dir);
  const realRoot = await fsp.realpath(volumeRoot).catch(() => volumeRoot);
  if (!isInside(real, realRoot) || real === realRoot) throw new RuntimeError('VOLUME_OUTSIDE_ROOT', `volume ${name} resolves to ${real}, outside ${realRoot}`);
  return real;
}

async function prepareVolumes(ctx: MaterializeContext, view: LayerView, spec: SystemDoc, hostTemplate: boolean): Promise<VolumeMount[]> {
  const mounts = spec.mounts ?? [];
  const targets = checkTargets(mounts, ctx.hides, hostTemplate);
  const out: VolumeMount[] = [];
  for (let i = 0; i < mounts.length; i++) {
    const m = mounts[i]!;
    const source = await volumeDir(ctx.volumeRoot, m.volume, true);
    await ensureDirMerged(view, targets[i]!, 'mount target');
    out.push({ source, target: targets[i]!, readOnly: !!m.readOnly });
  }
  return out;
}

/** The minimal /dev, recreated at every start so nothing a system left there survives a restart. */
export async function makeDevSkeleton(devDir: string): Promise<void> {
  await fsp.rm(devDir, { recursive: true, force: true });
  await fsp.mkdir(devDir, { mode: 0o755 });
  await Promise.all([
    ...DEV_NODES.map((n) => fsp.writeFile(`${devDir}/${n}`, '', { mode: 0o666 })),
    fsp.mkdir(`${devDir}/pts`),
    fsp.mkdir(`${devDir}/shm`),
    fsp.symlink('pts/ptmx', `${devDir}/ptmx`),
    fsp.symlink('/proc/self/fd', `${devDir}/fd`),
    fsp.symlink('/proc/self/fd/0', `${devDir}/stdin`),
    fsp.symlink('/proc/self/fd/1', `${devDir}/stdout`),
    fsp.symlink('/proc/self/fd/2', `${devDir}/stderr`),
  ]);
}
