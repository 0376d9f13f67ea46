// Safe paths: normalization, containment, shell/fstab quoting, and lookups in the merged view of a
// system's layers (upper over lowers) done from the host without mounting anything.
//
// Invariants:
// - A path given by a spec is normalized first (absolute, no "." / "..", no NUL) and is only ever
//   resolved component by component with lstat; a symlink anywhere on the way is refused, so nothing
//   that a system wrote into its own layer can redirect a mount or a write of ours to the host.
// - Directories we create for a system are created in its upper layer only.
// - Known approximation: overlay "opaque" directories (an xattr Node cannot read) are treated as
//   transparent. The effect is at worst a refused target or a failed mount at start, never an escape.
import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { RuntimeError, errnoOf } from './errors.ts';

/** Normalize an absolute path; refuse anything relative, with "." or ".." components, or NUL. */
export function normalizeAbs(p: unknown, what = 'path'): string {
  if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0') || p.length > 4096) {
    throw new RuntimeError('PATH_INVALID', `${what} ${JSON.stringify(p)} must be an absolute path without NUL`);
  }
  const parts = p.split('/').filter((c) => c !== '');
  for (const c of parts) {
    if (c === '.' || c === '..') throw new RuntimeError('PATH_INVALID', `${what} ${JSON.stringify(p)} contains a "${c}" component`);
  }
  return '/' + parts.join('/');
}

/** Is `child` equal to or below `parent` (both absolute and normalized)? */
export function isInside(child: string, parent: string): boolean {
  if (parent === '/') return child.startsWith('/');
  return child === parent || child.startsWith(parent + '/');
}

/** Join a normalized absolute path below a host directory. */
export function under(root: string, abs: string): string {
  return abs === '/' ? root : root.replace(/\/+$/, '') + abs;
}

/** Every prefix of a normalized absolute path, shortest first: /a/b → [/a, /a/b]. */
export function prefixes(abs: string): string[] {
  const parts = abs.split('/').filter(Boolean);
  return parts.map((_, i) => '/' + parts.slice(0, i + 1).join('/'));
}

/** Quote for POSIX sh as one word. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Escape a field of an fstab line (space, tab, newline and backslash as octal, like getmntent). */
export function fstabEscape(s: string): string {
  return s.replace(/[\\ \t\n]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
}

/** Mount points of the calling process's mount namespace (unescaped). */
export async function mountPoints(mountinfo = '/proc/self/mountinfo'): Promise<string[]> {
  const text = await fsp.readFile(mountinfo, 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export interface LayerView {
  /** The system's writable layer (for the copy strategy: the copy itself, with no lowers). */
  upper: string;
  /** Read-only layers, top first. */
  lowers: string[];
  /** For a lower of `/` (the host template): host mount points, whose content the lower does not show. */
  hostMounts?: string[];
}

export type EntryKind = 'dir' | 'file' | 'symlink' | 'other' | 'missing';

export interface Lookup {
  kind: EntryKind;
  /** The prefix where the walk stopped (the path itself when it resolved to the end). */
  at: string;
  /** The layer directory that supplied the final entry (null when missing). */
  layer: string | null;
}

async function lstatOrNull(p: string) {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return null;
    throw e;
  }
}

/** Look a normalized absolute path up in the merged view, without following any symlink. */
export async function lookupMerged(view: LayerView, abs: string): Promise<Lookup> {
  const layers = [view.upper, ...view.lowers];
  let live = layers.map(() => true);
  const hostMounts = new Set((view.hostMounts ?? []).filter((m) => m !== '/'));
  const steps = prefixes(abs);
  if (steps.length === 0) return { kind: 'dir', at: '/', layer: view.upper };
  for (let s = 0; s < steps.length; s++) {
    const pre = steps[s]!;
    let found = -1;
    let st: Awaited<ReturnType<typeof lstatOrNull>> = null;
    for (let i = 0; i < layers.length; i++) {
      if (!live[i]) continue;
      st = await lstatOrNull(under(layers[i]!, pre));
      if (st) {
        found = i;
        break;
      }
    }
    if (found < 0 || !st) return { kind: 'missing', at: pre, layer: null };
    // An overlay whiteout (0/0 character device) in a layer hides everything below it.
    if (st.isCharacterDevice() && st.rdev === 0) return { kind: 'missing', at: pre, layer: null };
    const kind: EntryKind = st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    if (kind !== 'dir' || s === steps.length - 1) return { kind, at: pre, layer: layers[found]! };
    const next = layers.map(() => false);
    next[found] = true;
    for (let i = found + 1; i < layers.length; i++) {
      if (!live[i]) continue;
      const lst = await lstatOrNull(under(layers[i]!, pre));
      next[i] = !!lst && lst.isDirectory();
    }
    // The host lower is `/` without submounts: below a mount point it shows only the empty stub.
    if (view.hostMounts && hostMounts.has(pre)) {
      for (let i = 0; i < layers.length; i++) if (layers[i] === '/') next[i] = false;
    }
    live = next;
  }
  return { kind: 'missing', at: abs, layer: null };
}

/**
 * Make sure `abs` is a directory in the merged view, creating missing components in the upper layer.
 * Refuses symlinks and non-directories on the way (PATH_SYMLINK / PATH_NOT_DIR).
 */
export async function ensureDirMerged(view: LayerView, abs: string, what = 'path'): Promise<void> {
  for (const pre of prefixes(abs)) {
    const r = await lookupMerged(view, pre);
    if (r.kind === 'symlink') throw new RuntimeError('PATH_SYMLINK', `${what} ${abs}: ${pre} is a symlink inside the rootfs`);
    if (r.kind === 'file' || r.kind === 'other') throw new RuntimeError('PATH_NOT_DIR', `${what} ${abs}: ${pre} is not a directory`);
    if (r.kind === 'missing') {
      // Every shorter prefix is a real directory in the merged view, hence absent or a directory in upper.
      const up = under(view.upper, pre);
      const st = await lstatOrNull(up);
      if (st && st.isCharacterDevice()) await fsp.unlink(up); // a whiteout: replace it by a fresh directory
      // Parents that exist only in a lower are created in upper too (overlay merges them).
      if (!st || st.isCharacterDevice()) await fsp.mkdir(up, { recursive: true, mode: 0o755 });
    } else if (r.layer !== view.upper) {
      // Exists only in a lower: nothing to create, overlay merges it.
    }
  }
}

/** Ensure every parent of `abs` exists in upper as a real directory (for writing a file there). */
async function ensureUpperParents(view: LayerView, abs: string): Promise<void> {
  const dir = path.posix.dirname(abs);
  await ensureDirMerged(view, dir);
  for (const pre of prefixes(dir)) {
    const up = under(view.upper, pre);
    const st = await lstatOrNull(up);
    if (!st) await fsp.mkdir(up, { mode: 0o755 });
    else if (!st.isDirectory()) throw new RuntimeError('PATH_NOT_DIR', `${pre} in the system layer is not a directory`);
  }
}

/** Write a file into the upper layer at `abs` atomically; a symlink there is replaced, never followed. */
export async function writeFileMerged(view: LayerView, abs: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const r = await lookupMerged(view, abs);
  if (r.kind === 'dir') throw new RuntimeError('PATH_NOT_DIR', `${abs} is a directory in the rootfs`);
  await ensureUpperParents(view, abs);
  const dest = under(view.upper, abs);
  const tmp = `${path.posix.dirname(dest)}/.anybios-${randomBytes(6).toString('hex')}`;
  const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, dest);
}

/** Read a small text file if it exists (ENOENT → null). */
export async function readIfExists(p: string): Promise<string | null> {
  try {
    return await fsp.readFile(p, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    throw e;
  }
}

/** Write a file atomically (tmp + rename): a SIGKILL leaves the old or the new content, never half. */
export async function writeAtomic(file: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await fsp.writeFile(tmp, content, { mode });
  await fsp.rename(tmp, file);
}

/** Bytes used on disk by a tree (like du: st_blocks, hard links counted once, symlinks not followed). */
export async function diskUsage(root: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    const st = await lstatOrNull(p);
    if (!st) return;
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    total += st.blocks * 512;
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = await fsp.readdir(p);
      } catch {
        return;
      }
      for (const n of names) await walk(`${p}/${n}`);
    }
  };
  await walk(root);
  return total;
}
