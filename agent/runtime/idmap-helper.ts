// The idmapped-mount helper (native/idmap-mount.c.ts, C source): built once per node with the machine's C compiler
// into <data>/bin (keyed by the source's hash), then probed for real: an overlay whose lower layer is
// an idmapped mount must show a file with the shifted owner. Without it (no compiler, kernel < 5.19)
// templates show as owned by nobody inside a system: readable, not changeable (docs/runtime.md).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { IDMAP_MOUNT_C } from './native/idmap-mount.c.ts';
import { lstatOrNull } from './fs-util.ts';
import { run, which, type Tools } from './tools.ts';


export interface IdmapSupport {
  /** Path of the working helper, or null. */
  helper: string | null;
  /** Why there is none (compiler missing, compile error, kernel refused). */
  error: string | null;
}

async function build(dataDir: string): Promise<{ path: string | null; error: string | null }> {
  const src = IDMAP_MOUNT_C;
  const out = `${dataDir}/bin/anybios-idmap-mount-${createHash('sha256').update(src).digest('hex').slice(0, 16)}`;
  if ((await lstatOrNull(out))?.isFile()) return { path: out, error: null };
  const cc = which('cc') ?? which('gcc') ?? which('clang');
  if (!cc) return { path: null, error: 'no C compiler (cc, gcc or clang) to build the idmapped-mount helper: apt-get install gcc' };
  await fsp.mkdir(`${dataDir}/bin`, { recursive: true, mode: 0o700 });
  const tmp = `${out}.tmp-${process.pid}`;
  await fsp.writeFile(`${tmp}.c`, src, { mode: 0o600 });
  const r = await run(cc, ['-O2', '-o', tmp, `${tmp}.c`], { timeoutMs: 60_000 }).finally(() => fsp.rm(`${tmp}.c`, { force: true }));
  if (r.code !== 0) {
    await fsp.rm(tmp, { force: true });
    return { path: null, error: `building the idmapped-mount helper failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  }
  await fsp.chmod(tmp, 0o755);
  await fsp.rename(tmp, out);
  return { path: out, error: null };
}

/** Build (once) and prove the helper: idmapped lower under an overlay, in a throw-away mount namespace. */
export async function probeIdmap(t: Tools, dataDir: string): Promise<IdmapSupport> {
  if (process.getuid?.() !== 0) return { helper: null, error: 'idmapped mounts need root' };
  const b = await build(dataDir);
  if (!b.path) return { helper: null, error: b.error };
  const d = `${dataDir}/.probe-idmap-${process.pid}`;
  await fsp.rm(d, { recursive: true, force: true });
  try {
    for (const s of ['l', 'i', 'u', 'w', 'm']) await fsp.mkdir(`${d}/${s}`, { recursive: true });
    await fsp.writeFile(`${d}/l/f`, '');
    const shifted = 3_000_000;
    const script = `${b.path} ${d}/l ${d}/i ${shifted} 65536 && ${t.mount} -t overlay overlay -o lowerdir=${d}/i,upperdir=${d}/u,workdir=${d}/w ${d}/m && stat -c %u ${d}/m/f`;
    const r = await run(t.unshare, ['--mount', '--propagation', 'private', '--', t.sh, '-c', script], { timeoutMs: 10_000 });
    if (r.code === 0 && r.stdout.trim() === String(shifted)) return { helper: b.path, error: null };
    return { helper: null, error: `this kernel does not give an overlay an idmapped lower layer: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0]}` };
  } finally {
    await fsp.rm(d, { recursive: true, force: true });
  }
}
