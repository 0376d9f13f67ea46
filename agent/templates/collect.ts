// The template collector: an unpacked template (<data>/templates/<sha256>) or a pulled tarball that no
// system uses any more is removed once it has stayed unused for a grace period (a system deleted and
// re-created, or a template rolled back, finds it still there). "Used" = named by a desired system's
// template, or the lower layer recorded in any system's state.json (a system still running an older
// template version keeps it). A tarball whose tree is unpacked is not needed any more and goes at once.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { SHA_RE, pullPaths } from './paths.ts';

export interface CollectOptions {
  dataDir: string;
  /** sha256 of the tar templates the desired systems name now. */
  wanted: Set<string>;
  /** A pull in progress (its part file is never touched). */
  active: string | null;
  graceMs: number;
  now: number;
  /** sha256 → when it was first seen unused (persisted by the caller). */
  unusedSince: Map<string, number>;
  log: (msg: string) => void;
}

/** The sha256 of every template lower recorded by a system on this node. */
async function lowersInUse(dataDir: string): Promise<Set<string>> {
  const used = new Set<string>();
  const systems = join(dataDir, 'systems');
  for (const name of await fsp.readdir(systems).catch(() => [] as string[])) {
    const raw = await fsp.readFile(join(systems, name, 'state.json'), 'utf8').catch(() => null);
    if (raw === null) {
      // A system directory without a readable state is being made: keep everything this time.
      if (await fsp.stat(join(systems, name)).then((s) => s.isDirectory(), () => false)) return new Set(['*']);
      continue;
    }
    try {
      const lower = (JSON.parse(raw) as { template?: { lower?: unknown } }).template?.lower;
      const sha = typeof lower === 'string' ? lower.split('/').pop() ?? '' : '';
      if (SHA_RE.test(sha)) used.add(sha);
    } catch {
      return new Set(['*']);
    }
  }
  return used;
}

/** One sweep; returns the sha256 of what it removed. */
export async function collectTemplates(o: CollectOptions): Promise<string[]> {
  const p = pullPaths(o.dataDir);
  const lowers = await lowersInUse(o.dataDir);
  if (lowers.has('*')) return [];
  const inUse = new Set([...o.wanted, ...lowers]);
  const unpacked = new Set((await fsp.readdir(join(o.dataDir, 'templates')).catch(() => [] as string[])).filter((n) => SHA_RE.test(n)));
  const pulled = new Map<string, string[]>();
  for (const n of await fsp.readdir(p.dir).catch(() => [] as string[])) {
    const m = /^([0-9a-f]{64})\.(tar|part|part\.json)$/.exec(n);
    if (m) pulled.set(m[1], [...(pulled.get(m[1]) ?? []), n]);
  }
  const removed: string[] = [];
  for (const sha of new Set([...unpacked, ...pulled.keys()])) {
    if (sha === o.active) continue;
    if (inUse.has(sha)) {
      o.unusedSince.delete(sha);
      // Unpacked: its tarball has done its job.
      if (unpacked.has(sha) && pulled.get(sha)?.includes(`${sha}.tar`)) await fsp.rm(p.tar(sha), { force: true });
      continue;
    }
    const since = o.unusedSince.get(sha);
    if (since === undefined) {
      o.unusedSince.set(sha, o.now);
      continue;
    }
    if (o.now - since < o.graceMs) continue;
    await fsp.rm(p.unpacked(sha), { recursive: true, force: true });
    for (const f of pulled.get(sha) ?? []) await fsp.rm(join(p.dir, f), { force: true });
    o.unusedSince.delete(sha);
    removed.push(sha);
    o.log(`templates: removed ${sha.slice(0, 12)}… (unused for ${Math.round((o.now - since) / 1000)} s)`);
  }
  for (const sha of o.unusedSince.keys()) if (!unpacked.has(sha) && !pulled.has(sha)) o.unusedSince.delete(sha);
  return removed;
}
