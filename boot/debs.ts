// Debian packages as the image build's only source of binaries: `apt-get download` into a cache and
// `dpkg-deb -x` (no install on this machine, no root needed for the unpack). Nothing else is fetched.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export class BootError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new BootError('TOOL_MISSING', `${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new BootError('APT_FAILED', `${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`);
  return r.stdout;
}

/** A virtual or meta package (linux-image-amd64) → the real package it depends on (linux-image-6.1.0-N-amd64). */
export function resolveDepends(pkg: string, prefix: string): string {
  const out = run('apt-cache', ['depends', pkg]);
  const m = new RegExp(`Depends:\\s+(${prefix.replace(/[-.]/g, '\\$&')}\\S*)`).exec(out);
  if (!m) throw new BootError('APT_FAILED', `apt-cache depends ${pkg}: no ${prefix}* dependency (run apt-get update?)`);
  return m[1]!;
}

/**
 * The unpacked files of Debian package `pkg` under `<cache>/pkg/<pkg>/` (downloaded with apt-get into
 * `<cache>/debs/` unless there already). Safe when two builds share the cache at once (the tests do):
 * each downloads and unpacks into a directory of its own, then renames it into place; the loser of the
 * rename keeps the winner's.
 */
export function unpackedPackage(pkg: string, cache: string, log: (m: string) => void): string {
  const dest = path.join(cache, 'pkg', pkg);
  if (existsSync(path.join(dest, '.complete'))) return dest;
  const debs = path.join(cache, 'debs');
  mkdirSync(debs, { recursive: true });
  mkdirSync(path.dirname(dest), { recursive: true });
  const find = (dir: string) => readdirSync(dir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  let deb = find(debs);
  if (!deb) {
    log(`downloading ${pkg} with apt-get`);
    const tmp = mkdtempSync(path.join(debs, '.download-'));
    try {
      run('apt-get', ['download', '-q', pkg], tmp);
      deb = find(tmp);
      if (!deb) throw new BootError('APT_FAILED', `apt-get download ${pkg} left no .deb`);
      renameSync(path.join(tmp, deb), path.join(debs, deb));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  log(`unpacking ${deb}`);
  const tmp = mkdtempSync(path.join(path.dirname(dest), `.${pkg}-`));
  try {
    run('dpkg-deb', ['-x', path.join(debs, deb), tmp]);
    writeFileSync(path.join(tmp, '.complete'), '');
    if (existsSync(dest) && !existsSync(path.join(dest, '.complete'))) rmSync(dest, { recursive: true, force: true }); // left unfinished by an older build
    try {
      renameSync(tmp, dest);
    } catch (e) {
      if (!existsSync(path.join(dest, '.complete'))) throw e; // another build finished first: use its copy
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dest;
}
