// What this node supports, probed for real: overlayfs mountable by us, a user namespace for rootless
// operation, and the cgroup controllers (v2 where offered, else v1).
import { promises as fsp } from 'node:fs';
import { detectCgroups, type CgroupSupport } from './cgroups.ts';
import { run, type Tools } from './tools.ts';

export interface Capabilities {
  root: boolean;
  /** `unshare --user --map-root-user` works (rootless operation possible). */
  userns: boolean;
  /** Systems run inside a user namespace (not root). */
  rootless: boolean;
  overlay: boolean;
  strategy: 'overlay' | 'copy';
  cgroup: CgroupSupport;
  tools: Tools;
}

export async function probeUserns(t: Tools): Promise<boolean> {
  const r = await run(t.unshare, ['--user', '--map-root-user', '--', t.sh, '-c', 'exit 0'], { timeoutMs: 10_000 }).catch(() => null);
  return r?.code === 0;
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

export async function probeCapabilities(t: Tools, scratch: string, prefer: 'auto' | 'overlay' | 'copy'): Promise<Capabilities> {
  const root = process.getuid?.() === 0;
  const userns = await probeUserns(t);
  const overlay = await probeOverlay(t, scratch, !root);
  const cgroup = await detectCgroups();
  const strategy = prefer === 'auto' ? (overlay ? 'overlay' : 'copy') : prefer;
  return { root, userns, rootless: !root, overlay, strategy, cgroup, tools: t };
}
