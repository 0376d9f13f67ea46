// Disk on the node: refuse a pull that would fill the file system, and say what templates and the
// systems' layers use.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { diskUsage } from '../runtime/paths.ts';

const mb = (n: number) => `${Math.round(n / 1e6)} MB`;

/** Bytes available to us on the file system holding `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return s.bavail * s.bsize;
}

/** Throws TEMPLATE_NO_SPACE unless `need` bytes fit on `dir`'s file system with `reserve` left over. */
export async function checkRoom(dir: string, need: number, reserve: number, what: string): Promise<void> {
  const free = await freeBytes(dir);
  if (free - need >= reserve) return;
  throw Object.assign(new Error(`${what} needs ${mb(need)} and ${mb(reserve)} must stay free, but ${dir} has ${mb(free)} free: refused before pulling (free space, or lower --disk-reserve)`), { code: 'TEMPLATE_NO_SPACE' });
}

export interface DiskReport { templatesBytes: number; pullsBytes: number; layersBytes: number; freeBytes: number }

/** What templates (unpacked trees and tarballs) and the systems' own layers use on disk, and what is free. */
export async function diskReport(dataDir: string): Promise<DiskReport> {
  const systems = join(dataDir, 'systems');
  let layersBytes = 0;
  for (const name of await fsp.readdir(systems).catch(() => [] as string[])) layersBytes += await diskUsage(join(systems, name, 'upper'));
  return {
    templatesBytes: await diskUsage(join(dataDir, 'templates')),
    pullsBytes: await diskUsage(join(dataDir, 'agent', 'pulls')),
    layersBytes,
    freeBytes: await freeBytes(dataDir),
  };
}
