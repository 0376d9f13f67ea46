// node for the boot image: this machine's node binary and the shared libraries it (and leveldown's
// binary) load, as `ldd` resolves them, at the same paths in the initrd. They are the files of this
// machine's Debian packages (libc6, libstdc++6, libgcc-s1; `dpkg -S` names them in image.json); nothing
// is downloaded.
import { realpathSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BootError } from './debs.ts';

export interface ElfFile { /** Path in the PE. */ path: string; /** The file it is copied from. */ from: string }

/** The libraries `ldd` lists for `files` (and their ELF interpreter), each once. */
export function sharedLibraries(files: string[]): ElfFile[] {
  const seen = new Map<string, ElfFile>();
  for (const f of files) {
    const r = spawnSync('ldd', [f], { encoding: 'utf8' });
    if (r.error) throw new BootError('TOOL_MISSING', `ldd: ${r.error.message}`);
    if (r.status !== 0) throw new BootError('AGENT_BUNDLE_FAILED', `ldd ${f}: ${(r.stderr || r.stdout).trim()}`);
    for (const line of r.stdout.split('\n')) {
      // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
      const m = /=>\s+(\/\S+)\s+\(/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
      if (/not found/.test(line)) throw new BootError('AGENT_BUNDLE_FAILED', `ldd ${f}: ${line.trim()}`);
      if (m && !seen.has(m[1]!)) seen.set(m[1]!, { path: m[1]!, from: realpathSync(m[1]!) });
    }
  }
  return [...seen.values()];
}

/** The Debian package of each file (`dpkg -S`), or null where dpkg does not know it. */
export function packagesOf(paths: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const p of paths) {
    // With merged /usr a file is registered under one of its two names.
    const candidates = [p, p.startsWith('/usr/') ? p.slice(4) : `/usr${p}`, realpathSync(p)];
    out[p] = null;
    for (const c of candidates) {
      const r = spawnSync('dpkg', ['-S', c], { encoding: 'utf8' });
      if (r.status === 0 && r.stdout) {
        out[p] = r.stdout.split(':')[0]!.trim();
        break;
      }
    }
  }
  return out;
}
