// Mount rules of a system (pure): the overlay options, the fresh mounts, the host paths a host-template
// system must not see. The mounts themselves are made by the supervisor and crun (launcher.ts,
// oci-config.ts) inside the system's own mount namespace, so they vanish with it.
import { isInside } from './paths.ts';

/** Paths inside a system that get fresh mounts; nothing of the template below them is visible. */
export const FRESH_MOUNTS = ['/proc', '/sys', '/dev', '/run', '/tmp'] as const;

export interface VolumeMount {
  /** Host directory (validated under the volume root). */
  source: string;
  /** Normalized absolute path inside the rootfs (validated against the layers). */
  target: string;
  readOnly: boolean;
}

/** Overlay mount options; refuses layer paths overlayfs cannot take (',' ':' or whitespace). */
export function overlayOptions(lowers: string[], upper: string, work: string): string {
  for (const p of [...lowers, upper, work]) {
    if (/[,:\s\\]/.test(p)) throw new Error(`overlay layer path ${JSON.stringify(p)} contains , : \\ or whitespace`);
  }
  return `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`;
}

/**
 * Host paths a host-template system must not see (the data dir, volume root, template roots), reduced
 * to those the lower actually shows: not below a fresh mount, not below any host mount point other
 * than `/` (overlayfs does not show submounts), and not inside another hidden path. Pure.
 */
export function hostHides(paths: string[], hostMounts: string[]): string[] {
  const mounts = hostMounts.filter((m) => m !== '/');
  const visible = paths.filter(
    (p) => p !== '/' && !FRESH_MOUNTS.some((f) => isInside(p, f)) && !mounts.some((m) => isInside(p, m)),
  );
  const uniq = [...new Set(visible)].sort((a, b) => a.length - b.length);
  return uniq.filter((p, i) => !uniq.slice(0, i).some((q) => isInside(p, q)));
}
