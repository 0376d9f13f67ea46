// Templates: resolve a template document to the read-only lower directory of a system.
// host → `/` (submounts excluded by overlayfs itself; the rest is hidden at start), dir → a directory
// under a configured template root, tar → unpacked once into <data>/templates/<sha256>, verified first.
import { promises as fsp, createReadStream, realpathSync, statSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import { RuntimeError, errnoOf } from './errors.ts';
import { isInside, normalizeAbs } from './paths.ts';
import { run } from './tools.ts';
import { readStat } from './proc.ts';

export interface ResolvedTemplate {
  name: string;
  source: TemplateDoc['source'];
  /** The lower directory (`/` for host). */
  lower: string;
  host: boolean;
}

export interface TemplateContext {
  dataDir: string;
  templateRoots: string[];
  tar: string;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function resolveTemplate(ctx: TemplateContext, t: TemplateDoc, tarball?: string | Buffer): Promise<ResolvedTemplate> {
  if (t.source === 'host') return { name: t.name, source: 'host', lower: '/', host: true };
  if (t.source === 'dir') {
    const p = normalizeAbs(t.path, `template ${t.name} path`);
    // Synchronous (realpath(3) and one stat): this runs at every start.
    let real: string;
    try {
      real = realpathSync.native(p);
    } catch (e) {
      throw new RuntimeError('TEMPLATE_NOT_FOUND', `template ${t.name}: ${p} does not exist`, { cause: e });
    }
    const roots = ctx.templateRoots.map((r) => {
      try {
        return realpathSync.native(r);
      } catch {
        return null;
      }
    });
    if (!roots.some((r) => r && r !== '/' && isInside(real, r) && real !== r)) {
      throw new RuntimeError('TEMPLATE_OUTSIDE_ROOTS', `template ${t.name}: ${p} (${real}) is not under a template root (${ctx.templateRoots.join(', ') || 'none configured'})`);
    }
    const st = statSync(real);
    if (!st.isDirectory()) throw new RuntimeError('TEMPLATE_NOT_FOUND', `template ${t.name}: ${real} is not a directory`);
    return { name: t.name, source: 'dir', lower: real, host: false };
  }
  return { name: t.name, source: 'tar', lower: await unpackTar(ctx, t, tarball), host: false };
}

/** Unpack a verified tarball once into the cache; concurrent or interrupted unpacks are safe. */
async function unpackTar(ctx: TemplateContext, t: TemplateDoc, tarball?: string | Buffer): Promise<string> {
  const sha = t.sha256;
  if (!sha || !/^[0-9a-f]{64}$/.test(sha)) throw new RuntimeError('INVALID_TEMPLATE', `template ${t.name}: a tar template needs a sha256`);
  const cache = `${ctx.dataDir}/templates`;
  const dest = `${cache}/${sha}`;
  try {
    if (statSync(dest).isDirectory()) return dest;
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
  }
  if (tarball === undefined) throw new RuntimeError('TEMPLATE_NOT_FOUND', `template ${t.name}: not in the cache and no tarball given`);
  await fsp.mkdir(cache, { recursive: true });
  await removeStaleUnpacks(cache);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  let file: string;
  let tmpFile: string | null = null;
  if (Buffer.isBuffer(tarball)) {
    tmpFile = `${cache}/.tmp-${sha}-${tag}.tar`;
    await fsp.writeFile(tmpFile, tarball);
    file = tmpFile;
  } else file = tarball;
  const work = `${cache}/.tmp-${sha}-${tag}`;
  try {
    let got: string;
    try {
      got = await sha256File(file);
    } catch (e) {
      throw new RuntimeError('TEMPLATE_NOT_FOUND', `template ${t.name}: cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    if (got !== sha) throw new RuntimeError('TEMPLATE_SHA_MISMATCH', `template ${t.name}: tarball sha256 is ${got}, the template says ${sha}`);
    await fsp.mkdir(work, { mode: 0o755 });
    // GNU tar strips leading "/" and refuses ".." members; symlinks are created last (no write through them).
    const r = await run(ctx.tar, ['-x', '-f', file, '-C', work, '--numeric-owner', '--no-overwrite-dir']);
    if (r.code !== 0) throw new RuntimeError('TEMPLATE_UNPACK_FAILED', `template ${t.name}: tar: ${r.stderr.trim().slice(0, 500)}`);
    try {
      await fsp.rename(work, dest);
    } catch (e) {
      if (!['EEXIST', 'ENOTEMPTY'].includes(errnoOf(e) ?? '')) throw e;
      // someone else finished first: theirs is as good as ours
    }
    return dest;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
    if (tmpFile) await fsp.rm(tmpFile, { force: true });
  }
}

/** Unpacks left behind by a process that died (its pid is in the name). */
async function removeStaleUnpacks(cache: string): Promise<void> {
  for (const n of await fsp.readdir(cache)) {
    const m = /^\.tmp-[0-9a-f]{64}-(\d+)-[0-9a-f]{8}(\.tar)?$/.exec(n);
    if (m && !(await readStat(Number(m[1])))) await fsp.rm(`${cache}/${n}`, { recursive: true, force: true });
  }
}
