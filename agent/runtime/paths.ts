// Safe paths: normalization, containment, shell quoting, and lookups in the merged view of a
// system's layers (upper over lowers) done from the host without mounting anything.
//
// Invariants:
// - A path given by a spec is normalized first (absolute, no "." / "..", no NUL) and is only ever
//   resolved component by component with lstat; a symlink anywhere on the way is refused, so nothing
//   that a system wrote into its own layer can redirect a mount or a write of ours to the host.
// - Directories we create for a system are created in its upper layer only.
// - Known approximation: overlay "opaque" directories (an xattr Node cannot read) are treated as
//   transparent. The effect is at worst a refused target or a failed mount at start, never an escape.
import { promises as fsp, constants as fsc, closeSync, fchmodSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { RuntimeError, errnoOf } from './errors.ts';
import { lstatOrNull } from './fs-util.ts';

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

/** Mount points of the calling process's mount namespace (unescaped). */
export async function mountPoints(mountinfo = '/proc/self/mountinfo'): Promise<string[]> {
  return mountPointsSync(mountinfo);
}

export function mountPointsSync(mountinfo = '/proc/self/mountinfo'): string[] {
  const text = readFileSync(mountinfo, 'utf8');
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

// The lookups and writes below are synchronous on purpose: they sit on the start path, where a
// handful of lstat/open/rename calls on a local file system take microseconds each, far less than a
// round trip through libuv's thread pool (see docs/runtime.md, "Start time"). The async names are kept
// as thin wrappers for callers that prefer them.

/** Look a normalized absolute path up in the merged view, without following any symlink. */
export async function lookupMerged(view: LayerView, abs: string): Promise<Lookup> {
  return lookupMergedSync(view, abs);
}

export function lookupMergedSync(view: LayerView, abs: string): Lookup {
  const layers = [view.upper, ...view.lowers];
  let live = layers.map(() => true);
  const hostMounts = new Set((view.hostMounts ?? []).filter((m) => m !== '/'));
  const steps = prefixes(abs);
  if (steps.length === 0) return { kind: 'dir', at: '/', layer: view.upper };
  for (let s = 0; s < steps.length; s++) {
    const pre = steps[s]!;
    let found = -1;
    let st: ReturnType<typeof lstatOrNull> = null;
    for (let i = 0; i < layers.length; i++) {
      if (!live[i]) continue;
      st = lstatOrNull(under(layers[i]!, pre));
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
      const lst = lstatOrNull(under(layers[i]!, pre));
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
  ensureDirMergedSync(view, abs, what);
}

export function ensureDirMergedSync(view: LayerView, abs: string, what = 'path'): void {
  // One walk of the whole path: each prefix is checked by the walk itself (a symlink, a file or a
  // missing entry stops it there); only when something is missing do we create and walk on.
  let r = lookupMergedSync(view, abs);
  for (;;) {
    if (r.kind === 'symlink') throw new RuntimeError('PATH_SYMLINK', `${what} ${abs}: ${r.at} is a symlink inside the rootfs`);
    if (r.kind === 'file' || r.kind === 'other') throw new RuntimeError('PATH_NOT_DIR', `${what} ${abs}: ${r.at} is not a directory`);
    if (r.kind === 'dir') return;
    // Missing at r.at: every shorter prefix is a real directory in the merged view, hence absent or a
    // directory in upper. Parents that exist only in a lower are created in upper too (overlay merges them).
    const at = r.at;
    const up = under(view.upper, at);
    const st = lstatOrNull(up);
    if (st && st.isCharacterDevice()) unlinkSync(up); // a whiteout: replace it by a fresh directory
    if (!st || st.isCharacterDevice()) mkdirSync(up, { recursive: true, mode: 0o755 });
    r = lookupMergedSync(view, abs);
    // Created and still missing there (cannot happen): refuse rather than loop.
    if (r.kind === 'missing' && r.at === at) throw new RuntimeError('PATH_NOT_DIR', `${what} ${abs}: cannot create ${at} in the system layer`);
  }
}

/** Ensure every parent of `abs` exists in upper as a real directory (for writing a file there). */
function ensureUpperParents(view: LayerView, abs: string): void {
  const dir = path.posix.dirname(abs);
  ensureDirMergedSync(view, dir);
  for (const pre of prefixes(dir)) {
    const up = under(view.upper, pre);
    const st = lstatOrNull(up);
    if (!st) mkdirSync(up, { mode: 0o755 });
    else if (!st.isDirectory()) throw new RuntimeError('PATH_NOT_DIR', `${pre} in the system layer is not a directory`);
  }
}

/** Write a file into the upper layer at `abs` atomically; a symlink there is replaced, never followed. */
export async function writeFileMerged(view: LayerView, abs: string, content: string | Buffer, mode = 0o644): Promise<void> {
  writeFileMergedSync(view, abs, content, mode);
}

export function writeFileMergedSync(view: LayerView, abs: string, content: string | Buffer, mode = 0o644): void {
  const r = lookupMergedSync(view, abs);
  if (r.kind === 'dir') throw new RuntimeError('PATH_NOT_DIR', `${abs} is a directory in the rootfs`);
  ensureUpperParents(view, abs);
  const dest = under(view.upper, abs);
  const tmp = `${path.posix.dirname(dest)}/.anybios-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, dest);
}

/**
 * Like writeFileMergedSync, but only when the upper layer does not already hold exactly this content
 * in a regular file (the common case on a restart: nothing to write). Returns whether it wrote.
 */
export function ensureFileMergedSync(view: LayerView, abs: string, content: string, mode = 0o644): boolean {
  const dest = under(view.upper, abs);
  // The parents in upper must be real directories (no symlink on the way), as for a write.
  let ok = true;
  for (const pre of prefixes(path.posix.dirname(abs))) {
    const st = lstatOrNull(under(view.upper, pre));
    if (!st || !st.isDirectory()) {
      ok = false;
      break;
    }
  }
  if (ok) {
    const st = lstatOrNull(dest);
    ok = !!st && st.isFile() && st.size === Buffer.byteLength(content);
    if (ok) {
      let fd = -1;
      try {
        fd = openSync(dest, fsc.O_RDONLY | fsc.O_NOFOLLOW);
        ok = readFileSync(fd, 'utf8') === content;
      } catch {
        ok = false;
      } finally {
        if (fd >= 0) closeSync(fd);
      }
    }
  }
  if (ok) return false;
  writeFileMergedSync(view, abs, content, mode);
  return true;
}

/** Read a small text file if it exists (ENOENT → null). */
export async function readIfExists(p: string): Promise<string | null> {
  return readIfExistsSync(p);
}

export function readIfExistsSync(p: string): string | null {
  try {
    return readFileSync(p, 'utf8');
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return null;
    throw e;
  }
}

/** Write a file atomically (tmp + rename): a SIGKILL leaves the old or the new content, never half. */
export async function writeAtomic(file: string, content: string | Buffer, mode = 0o644): Promise<void> {
  writeAtomicSync(file, content, mode);
}

export function writeAtomicSync(file: string, content: string | Buffer, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}

/**
 * Write a file atomically without creating or freeing an inode in the steady state: the content goes
 * into `<file>.spare` (kept from the last write), the current file is kept as `<file>.old` (a hard
 * link), the spare is renamed over the file, and the old inode becomes the next spare. A SIGKILL at
 * any point leaves `file` whole, old or new. Not for concurrent writers of one file (callers hold a lock).
 */
export function writeAtomicReusingSync(file: string, content: string, mode = 0o644): void {
  const spare = `${file}.spare`;
  const old = `${file}.old`;
  let fd: number;
  try {
    fd = openSync(spare, fsc.O_WRONLY | fsc.O_TRUNC | fsc.O_NOFOLLOW);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
    fd = openSync(spare, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  }
  try {
    fchmodSync(fd, mode); // a spare kept from an older write may have a wider mode
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  let kept = false;
  for (;;) {
    try {
      linkSync(file, old);
      kept = true;
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') {
        unlinkSync(old); // left by a write that was interrupted
        continue;
      }
      if (errnoOf(e) !== 'ENOENT') throw e; // ENOENT: no file yet
    }
    break;
  }
  renameSync(spare, file);
  if (kept) renameSync(old, spare);
}

/** Bytes used on disk by a tree (like du: st_blocks, hard links counted once, symlinks not followed). */
export async function diskUsage(root: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p).catch(() => null);
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
