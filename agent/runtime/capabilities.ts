// What this node supports, probed for real: overlayfs mountable by us, a user namespace for rootless
// operation, and the cgroup controllers (v2 where offered, else v1).
import { promises as fsp } from 'node:fs';
import { detectCgroups, type CgroupSupport } from './cgroups.ts';
import { probeIdmap } from './idmap-helper.ts';
import { capsOfMask } from './oci-config.ts';
import { run, type Tools } from './tools.ts';

export interface Capabilities {
  root: boolean;
  /** `unshare --user --map-root-user` works (rootless operation possible). */
  userns: boolean;
  /** Why it does not (unshare's own message, e.g. "No space left on device" when user.max_user_namespaces is 0). */
  usernsError: string | null;
  /** Systems run inside a user namespace (not root, and userns works). Not root and not rootless: nothing can run. */
  rootless: boolean;
  /** cgroup limits (memory, pids, cpu weight) are applied: root only; rootless systems run without them. */
  resourceLimits: boolean;
  overlay: boolean;
  /** The layer: an overlay over the template, or a full copy of it (proot always copies). */
  strategy: 'overlay' | 'copy';
  /**
   * What runs systems here: crun (root, or rootless in a user namespace), proot (neither root nor a user
   * namespace: no isolation, see docs/runtime.md) or nothing; and why.
   */
  launcher: 'crun' | 'proot' | null;
  launcherReason: string;
  cgroup: CgroupSupport;
  tools: Tools;
  /** The idmapped-mount helper (templates show as owned by the system's root), or null with the reason. */
  idmapHelper: string | null;
  idmapError: string | null;
  /** Our own capability bounding set (a system is never given more). */
  capBound: string[];
}

export async function probeUserns(t: Tools): Promise<{ ok: boolean; error: string | null }> {
  const r = await run(t.unshare, ['--user', '--map-root-user', '--', t.sh, '-c', 'exit 0'], { timeoutMs: 10_000 }).catch((e: Error) => e);
  if (r instanceof Error) return { ok: false, error: r.message };
  if (r.code === 0) return { ok: true, error: null };
  return { ok: false, error: r.stderr.trim().split('\n').slice(-1)[0] || `unshare exited with ${r.code ?? r.signal}` };
}

/** Mount an overlay inside a throw-away mount namespace (nothing is left mounted anywhere). */
export async function probeOverlay(t: Tools, scratch: string, userns: boolean): Promise<boolean> {
  const d = `${scratch}/.probe-overlay-${process.pid}`;
  await fsp.rm(d, { recursive: true, force: true });
  try {
    for (const s of ['l', 'u', 'w', 'm']) await fsp.mkdir(`${d}/${s}`, { recursive: true });
    const ns = userns ? ['--user', '--map-root-user'] : [];
    const r = await run(t.unshare, [...ns, '--mount', '--', t.mount, '-t', 'overlay', 'overlay', '-o', `lowerdir=${d}/l,upperdir=${d}/u,workdir=${d}/w`, `${d}/m`], { timeoutMs: 10_000 });
    return r.code === 0;
  } catch {
    return false;
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
}

export async function probeCapabilities(t: Tools, scratch: string, prefer: 'auto' | 'overlay' | 'copy' | 'proot'): Promise<Capabilities> {
  const root = process.getuid?.() === 0;
  const u = await probeUserns(t);
  // Rootless: the overlay is mounted by root of a user namespace (Linux >= 5.11), so probe it there.
  const overlay = root || u.ok ? await probeOverlay(t, scratch, !root) : false;
  const cgroup = await detectCgroups();
  const rootless = !root && u.ok;
  const { launcher, launcherReason } = chooseLauncher({ root, userns: u.ok, crun: !!t.crun, proot: !!t.proot, prefer });
  const strategy = launcher === 'proot' || prefer === 'copy' ? 'copy' : prefer === 'auto' ? (overlay ? 'overlay' : 'copy') : 'overlay';
  const resourceLimits = root && Object.keys(cgroup.controllers).length > 0;
  const idmap = root ? await probeIdmap(t, scratch) : { helper: null, error: 'idmapped mounts need root' };
  return { root, userns: u.ok, usernsError: u.error, rootless, resourceLimits, overlay, strategy, launcher, launcherReason, cgroup, tools: t, idmapHelper: idmap.helper, idmapError: idmap.error, capBound: await ownBoundingSet() };
}

async function ownBoundingSet(): Promise<string[]> {
  const status = await fsp.readFile('/proc/self/status', 'utf8');
  return capsOfMask(/^CapBnd:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '0');
}

/** Pure: what runs systems on this node, and the sentence that says why. */
export function chooseLauncher(f: { root: boolean; userns: boolean; crun: boolean; proot: boolean; prefer: string }): { launcher: 'crun' | 'proot' | null; launcherReason: string } {
  if (f.prefer === 'proot') {
    return f.proot ? { launcher: 'proot', launcherReason: 'proot chosen by the strategy option' } : { launcher: null, launcherReason: 'strategy proot, but proot is not installed (apt-get install proot; Termux: pkg install proot)' };
  }
  if (f.root || f.userns) {
    const how = f.root ? 'root: containers with a user namespace and id range per system' : 'not root, but user namespaces work: rootless containers';
    return f.crun ? { launcher: 'crun', launcherReason: how } : { launcher: null, launcherReason: `${how} need crun, which is not installed (apt-get install crun)` };
  }
  if (f.prefer === 'auto' && f.proot) return { launcher: 'proot', launcherReason: 'neither root nor a user namespace here: proot (no isolation between a system and this user)' };
  return { launcher: null, launcherReason: 'neither root nor a user namespace here, and ' + (f.prefer === 'auto' ? 'proot is not installed (apt-get install proot; Termux: pkg install proot)' : `strategy ${f.prefer} needs one of them`) };
}
