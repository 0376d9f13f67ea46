// Resource limits through cgroups: per controller, v2 where the unified hierarchy offers it, else v1.
// Our cgroups are named anybios/<tag>-<system> (tag = hash of the data dir) and nothing else is touched.
import { promises as fsp } from 'node:fs';
import type { Resources } from '../../ddocs/schemas/types.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { sleep } from './proc.ts';

export type Controller = 'memory' | 'pids' | 'cpu';
export const CONTROLLERS: Controller[] = ['memory', 'pids', 'cpu'];

export interface CgroupSupport {
  /** v2: unified only; v1: legacy only; hybrid: both mounted; none: no cgroup fs. */
  layout: 'v2' | 'v1' | 'hybrid' | 'none';
  /** Where each controller is driven from (absent: not available on this node). */
  controllers: Partial<Record<Controller, { version: 1 | 2; root: string }>>;
  /**
   * The hierarchy an os system's init (systemd) keeps its own cgroups in: the v1 `name=systemd` one on
   * v1/hybrid hosts, else the unified one. Absent: no such hierarchy (no cgroup delegated).
   */
  init?: { version: 1 | 2; root: string };
}

interface MountRow {
  target: string;
  fstype: string;
  superOpts: string[];
}

export function parseMountinfo(text: string): MountRow[] {
  const rows: MountRow[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const target = left.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const [fstype, , opts] = right.split(' ');
    rows.push({ target, fstype: fstype!, superOpts: (opts ?? '').split(',') });
  }
  return rows;
}

/** Pure: decide per controller from the mount table and the v2 root's cgroup.controllers. */
export function decideSupport(rows: MountRow[], v2Controllers: string[] | null): CgroupSupport {
  const v2 = rows.find((r) => r.fstype === 'cgroup2');
  const v1 = rows.filter((r) => r.fstype === 'cgroup');
  const controllers: CgroupSupport['controllers'] = {};
  for (const c of CONTROLLERS) {
    if (v2 && v2Controllers?.includes(c)) controllers[c] = { version: 2, root: v2.target };
    else {
      const m = v1.find((r) => r.superOpts.includes(c));
      if (m) controllers[c] = { version: 1, root: m.target };
    }
  }
  const layout = v2 && v1.length ? 'hybrid' : v2 ? 'v2' : v1.length ? 'v1' : 'none';
  const named = v1.find((r) => r.superOpts.includes('name=systemd'));
  const init = named ? { version: 1 as const, root: named.target } : v2 && layout === 'v2' ? { version: 2 as const, root: v2.target } : undefined;
  return init ? { layout, controllers, init } : { layout, controllers };
}

export async function detectCgroups(): Promise<CgroupSupport> {
  const rows = parseMountinfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'));
  const v2 = rows.find((r) => r.fstype === 'cgroup2');
  let v2c: string[] | null = null;
  if (v2) {
    try {
      v2c = (await fsp.readFile(`${v2.target}/cgroup.controllers`, 'utf8')).trim().split(/\s+/).filter(Boolean);
    } catch {
      v2c = null;
    }
  }
  return decideSupport(rows, v2c);
}

/** The settings (file → value) for each controller; pure, so option building is unit-tested. */
export function limitFiles(res: Resources | undefined, version: 1 | 2, c: Controller): Record<string, string> {
  if (!res) return {};
  if (c === 'memory' && res.memory) return version === 2 ? { 'memory.max': String(res.memory) } : { 'memory.limit_in_bytes': String(res.memory) };
  if (c === 'pids' && res.pids) return { 'pids.max': String(res.pids) };
  if (c === 'cpu' && res.cpuWeight) {
    // v1 shares: the systemd mapping (weight 100 = 1024 shares), at least 2.
    return version === 2 ? { 'cpu.weight': String(res.cpuWeight) } : { 'cpu.shares': String(Math.max(2, Math.round((res.cpuWeight * 1024) / 100))) };
  }
  return {};
}

/** Which controllers a spec needs. */
export function neededControllers(res: Resources | undefined): Controller[] {
  if (!res) return [];
  return CONTROLLERS.filter((c) => Object.keys(limitFiles(res, 1, c)).length > 0);
}

/**
 * Create the system's cgroups and write its limits; returns the cgroup directories (the wrapper writes
 * its pid into each one's cgroup.procs before it forks the system).
 */
export async function setupCgroups(support: CgroupSupport, leaf: string, res: Resources | undefined): Promise<string[]> {
  const dirs: string[] = [];
  const wanted = neededControllers(res);
  const missing = wanted.filter((c) => !support.controllers[c]);
  if (missing.length) throw new RuntimeError('CGROUP_FAILED', `this node has no cgroup controller for: ${missing.join(', ')}`);
  const byRoot = new Map<string, { version: 1 | 2; controllers: Controller[] }>();
  for (const c of wanted) {
    const { version, root } = support.controllers[c]!;
    const e = byRoot.get(root) ?? { version, controllers: [] };
    e.controllers.push(c);
    byRoot.set(root, e);
  }
  for (const [root, { version, controllers }] of byRoot) {
    const parent = `${root}/anybios`;
    const dir = `${parent}/${leaf}`;
    try {
      await fsp.mkdir(dir, { recursive: true });
      if (version === 2) {
        const plus = controllers.map((c) => `+${c}`).join(' ');
        await fsp.writeFile(`${root}/cgroup.subtree_control`, plus);
        await fsp.writeFile(`${parent}/cgroup.subtree_control`, plus);
      }
      for (const c of controllers) {
        for (const [file, value] of Object.entries(limitFiles(res, version, c))) await fsp.writeFile(`${dir}/${file}`, value);
      }
    } catch (e) {
      throw new RuntimeError('CGROUP_FAILED', `cgroup ${dir}: ${(e as Error).message}`, { cause: e });
    }
    dirs.push(dir);
  }
  return dirs;
}

/**
 * An os system's own cgroup in the init hierarchy, owned by the system's root (host id `hostId`) so
 * that its init can make cgroups below it, as systemd must (it exits at once otherwise: "mkdir
 * /sys/fs/cgroup/systemd/init.scope: Permission denied"). The supervisor joins it, so with the
 * system's cgroup namespace it is the root of what the system sees. What the init made below it is
 * removed with it (removeCgroups).
 */
export async function delegateInitCgroup(support: CgroupSupport, leaf: string, hostId: number): Promise<string | null> {
  if (!support.init) return null;
  const dir = `${support.init.root}/anybios/${leaf}`;
  try {
    await fsp.mkdir(dir, { recursive: true });
    await fsp.chown(dir, hostId, hostId);
    // Delegation: the directory and the files that move processes and enable controllers (v2).
    for (const f of ['cgroup.procs', 'tasks', 'cgroup.subtree_control', 'cgroup.threads']) {
      await fsp.chown(`${dir}/${f}`, hostId, hostId).catch((e) => { if (errnoOf(e) !== 'ENOENT') throw e; });
    }
  } catch (e) {
    throw new RuntimeError('CGROUP_FAILED', `cgroup ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return dir;
}

/** rmdir of a cgroup and of what a system's init made below it (deepest first). */
async function rmdirTree(dir: string): Promise<void> {
  let subs: string[] = [];
  try {
    subs = (await fsp.readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return;
    throw e;
  }
  for (const d of subs) await rmdirTree(`${dir}/${d}`);
  await fsp.rmdir(dir);
}

/** SIGKILL to every process in a cgroup and below it. */
async function killMembers(dir: string): Promise<void> {
  let entries: import('node:fs').Dirent[] = [];
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
    for (const pid of (await fsp.readFile(`${dir}/cgroup.procs`, 'utf8')).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    return; // the cgroup is gone
  }
  for (const e of entries) if (e.isDirectory()) await killMembers(`${dir}/${e.name}`);
}

/**
 * Remove the system's cgroups (the system has exited). Gone is success. Whatever is still in them
 * after ~100 ms is a leftover of this system and is killed (issue 14: the os systems' delegated cgroup
 * showed that a stop whose supervisor had to be SIGKILLed could leave `crun run` and the container
 * running, orphaned; before, nothing noticed).
 */
export async function removeCgroups(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    if (!/\/anybios\/[0-9a-f]{8}-[a-z0-9][a-z0-9-]*$/.test(dir)) continue; // never anything not ours
    for (let i = 0; i < 50; i++) {
      try {
        await rmdirTree(dir);
        break;
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') break;
        if (errnoOf(e) !== 'EBUSY' || i === 49) throw new RuntimeError('CGROUP_FAILED', `cannot remove ${dir}: ${(e as Error).message}`, { cause: e });
        if (i === 5) await killMembers(dir);
        await sleep(20);
      }
    }
  }
}
