// The runtime's file helpers for "may be absent": one stat-or-null, one forced file removal, one tree
// removal. Absent is success everywhere in the runtime (every operation is idempotent).
import { promises as fsp, lstatSync, unlinkSync, type Stats } from 'node:fs';
import { errnoOf } from './errors.ts';

/** lstat, or null when nothing is there (ENOENT, or ENOTDIR: a component on the way is not a directory). */
export function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return null;
    throw e;
  }
}

/** Remove a file; already gone is success. */
export function rmForce(file: string): void {
  try {
    unlinkSync(file);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
}

/**
 * rm -rf that also works without root: a system (root only in its user namespace, our uid on the host)
 * can leave directories we may not read or search (mode 000, or overlayfs' own work/work). We own them,
 * so on EACCES/EPERM the directories (never symlinks: lstat) are made 0700 and the removal retried.
 * A path below a non-directory (ENOTDIR) cannot exist: gone, like ENOENT.
 */
export async function removeTree(dir: string): Promise<void> {
  try {
    await fsp.rm(dir, { recursive: true, force: true });
    return;
  } catch (e) {
    if (errnoOf(e) === 'ENOTDIR') return;
    if (errnoOf(e) !== 'EACCES' && errnoOf(e) !== 'EPERM') throw e;
  }
  const open = async (d: string): Promise<void> => {
    await fsp.chmod(d, 0o700).catch(() => {});
    for (const n of await fsp.readdir(d).catch(() => [] as string[])) {
      // Best effort (any error: skip it): the final rm reports what could not be removed.
      const st = await fsp.lstat(`${d}/${n}`).catch(() => null);
      if (st?.isDirectory()) await open(`${d}/${n}`);
    }
  };
  await open(dir);
  await fsp.rm(dir, { recursive: true, force: true });
}
