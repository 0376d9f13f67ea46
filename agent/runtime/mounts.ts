// The mounts of a system, as fstab lines (pure): done by `mount -a -T fstab` inside the system's own
// mount namespace at start, so they vanish with the namespace: no mount of ours ever exists in the host
// namespace, and a crash at any point cannot leak one.
//
// Order: rootfs (overlay, or a bind of the copy) → hides (host template) → /proc, /sys → /dev skeleton
// and its device binds, devpts, shm → /run, /tmp → volumes.
import { fstabEscape, isInside, under } from './paths.ts';

/** Paths inside a system that get fresh mounts; nothing of the template below them is visible. */
export const FRESH_MOUNTS = ['/proc', '/sys', '/dev', '/run', '/tmp'] as const;

/** Device nodes of the minimal /dev, bound from the host's. */
export const DEV_NODES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'] as const;

export interface VolumeMount {
  /** Host directory (validated under the volume root). */
  source: string;
  /** Normalized absolute path inside the rootfs (validated against the layers). */
  target: string;
  readOnly: boolean;
}

export interface MountPlan {
  rootfs: string;
  strategy: 'overlay' | 'copy';
  upper: string;
  work: string;
  lowers: string[];
  dev: string;
  network: 'none' | 'host';
  userns: boolean;
  volumes: VolumeMount[];
}

const line = (src: string, target: string, type: string, opts: string) =>
  `${fstabEscape(src)} ${fstabEscape(target)} ${type} ${opts} 0 0`;

/** Overlay mount options; refuses layer paths overlayfs cannot take (',' ':' or whitespace). */
export function overlayOptions(lowers: string[], upper: string, work: string): string {
  for (const p of [...lowers, upper, work]) {
    if (/[,:\s\\]/.test(p)) throw new Error(`overlay layer path ${JSON.stringify(p)} contains , : \\ or whitespace`);
  }
  return `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work}`;
}

export function rootfsLine(plan: MountPlan): string {
  if (plan.strategy === 'copy') return line(plan.upper, plan.rootfs, 'none', 'bind');
  return line('overlay', plan.rootfs, 'overlay', overlayOptions(plan.lowers, plan.upper, plan.work));
}

/** Lines after the rootfs (and after the hides of a host template). */
export function systemLines(plan: MountPlan): string[] {
  const R = (p: string) => under(plan.rootfs, p);
  const out: string[] = [];
  out.push(line('proc', R('/proc'), 'proc', 'nosuid,nodev,noexec'));
  // sysfs can only be mounted by the owner of the network namespace; rootless with host network: bind.
  if (plan.userns && plan.network === 'host') out.push(line('/sys', R('/sys'), 'none', 'rbind'));
  else out.push(line('sysfs', R('/sys'), 'sysfs', 'ro,nosuid,nodev,noexec'));
  out.push(line(plan.dev, R('/dev'), 'none', 'bind'));
  for (const n of DEV_NODES) out.push(line(`/dev/${n}`, R(`/dev/${n}`), 'none', 'bind'));
  out.push(line('devpts', R('/dev/pts'), 'devpts', plan.userns ? 'newinstance,ptmxmode=0666,mode=620' : 'newinstance,ptmxmode=0666,mode=620,gid=5'));
  out.push(line('shm', R('/dev/shm'), 'tmpfs', 'nosuid,nodev,mode=1777'));
  out.push(line('tmpfs', R('/run'), 'tmpfs', 'nosuid,nodev,mode=755'));
  out.push(line('tmpfs', R('/tmp'), 'tmpfs', 'nosuid,nodev,mode=1777'));
  for (const v of plan.volumes) out.push(line(v.source, R(v.target), 'none', v.readOnly ? 'bind,ro' : 'bind'));
  return out;
}

/** An empty read-only tmpfs over a host path inside the rootfs. */
export function hideLine(rootfs: string, p: string): string {
  return line('anybios-hide', under(rootfs, p), 'tmpfs', 'ro,nosuid,nodev,noexec,size=4k,mode=755');
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
