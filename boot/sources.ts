// Where the PE's kernel and busybox come from: a file given, this machine's own, or Debian's packages.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { BootError, resolveDepends, unpackedPackage } from './debs.ts';

export interface Kernel {
  vmlinuz: string;
  /** /lib/modules/<version> of this kernel, or null (then its drivers must be built in). */
  modules: string | null;
  version: string;
  from: string;
}

/** `vmlinuz-6.1.0-50-amd64` → `6.1.0-50-amd64`. */
const versionOf = (file: string) => path.basename(file).replace(/^vmlinuz-?/, '');

function kernelIn(root: string, from: string): Kernel | null {
  const boot = path.join(root, 'boot');
  if (!existsSync(boot)) return null;
  const found = readdirSync(boot).filter((f) => /^vmlinuz-/.test(f)).sort().reverse();
  for (const f of found) {
    const version = versionOf(f);
    const modules = path.join(root, 'lib/modules', version);
    if (existsSync(modules)) return { vmlinuz: path.join(boot, f), modules, version, from };
  }
  return null;
}

/**
 * The kernel: `--kernel FILE` (a vmlinuz, its modules looked up in /lib/modules/<version> by its
 * name; or a linux-image .deb), else this machine's /boot (with its modules), else the distribution
 * kernel from apt (linux-image-amd64, unpacked in the cache).
 */
export function findKernel(opts: { kernel?: string; cache: string; log: (m: string) => void }): Kernel {
  if (opts.kernel) {
    const file = path.resolve(opts.kernel);
    if (!existsSync(file) || !statSync(file).isFile()) throw new BootError('KERNEL_NOT_FOUND', `--kernel ${opts.kernel}: no such file`);
    if (file.endsWith('.deb')) {
      const k = kernelIn(unpackFile(file, opts.cache, opts.log), file);
      if (!k) throw new BootError('KERNEL_NOT_FOUND', `--kernel ${opts.kernel}: no /boot/vmlinuz-* with its /lib/modules in the package`);
      return k;
    }
    const version = versionOf(file);
    const modules = version && existsSync(`/lib/modules/${version}`) ? `/lib/modules/${version}` : null;
    if (!modules) opts.log(`no /lib/modules/${version || '?'} for ${file}: no modules in the initrd, the kernel must have virtio/disk, ext4 and overlay built in`);
    return { vmlinuz: file, modules, version, from: file };
  }
  const host = kernelIn('/', 'this machine (/boot)');
  if (host) return host;
  const pkg = resolveDepends(process.env.ANYBIOS_KERNEL_PACKAGE ?? 'linux-image-amd64', 'linux-image-');
  const k = kernelIn(unpackedPackage(pkg, opts.cache, opts.log), `Debian package ${pkg}`);
  if (!k) throw new BootError('KERNEL_NOT_FOUND', `package ${pkg} holds no /boot/vmlinuz-* with modules`);
  return k;
}

/** A linux-image .deb given by path: put beside apt's downloads in the cache and unpacked like them. */
function unpackFile(deb: string, cache: string, log: (m: string) => void): string {
  const debs = path.join(cache, 'debs');
  mkdirSync(debs, { recursive: true });
  const copy = path.join(debs, path.basename(deb));
  if (!existsSync(copy)) copyFileSync(deb, copy);
  return unpackedPackage(path.basename(deb).split('_')[0]!, cache, log);
}

/** True for an ELF file with no program interpreter (statically linked). */
export function isStaticElf(file: string): boolean {
  const b = readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false; // ELF64 only
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) return false;
  return true;
}

/** A static busybox: this machine's if it is one (busybox-static), else from the busybox-static package. */
export function findBusybox(opts: { cache: string; log: (m: string) => void }): { file: string; from: string } {
  for (const f of ['/bin/busybox', '/usr/bin/busybox']) {
    if (existsSync(f) && isStaticElf(f)) return { file: f, from: f };
  }
  const dir = unpackedPackage('busybox-static', opts.cache, opts.log);
  for (const f of ['bin/busybox', 'usr/bin/busybox']) if (existsSync(path.join(dir, f))) return { file: path.join(dir, f), from: 'Debian package busybox-static' };
  throw new BootError('BUSYBOX_NOT_FOUND', 'busybox-static holds no bin/busybox');
}
