// The kernel modules the PE loads: disk controllers (virtio, SATA, NVMe, SCSI), ext4 and overlayfs, and
// what they depend on, in load order, taken from the kernel's own /lib/modules. Dependencies come from
// each module's .modinfo "depends=" (no depmod or modules.dep needed: a .deb has none).
import { readdirSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/**
 * What a PC disk, a cloud VM and qemu need to reach the data disk and build a system's root. crc32c is
 * ext4's soft dependency (checksums), which "depends=" does not list.
 */
export const PE_MODULES = [
  'virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_console',
  'ahci', 'ata_piix', 'sd_mod', 'nvme', 'xen_blkfront',
  'crc32c_generic', 'crc32c_intel', 'ext4', 'overlay',
];

export const modName = (file: string) => path.basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');

function indexModules(dir: string, into = new Map<string, string>()): Map<string, string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) indexModules(p, into);
    else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) into.set(modName(e.name), p);
  }
  return into;
}

/** A module's bytes, uncompressed (busybox insmod takes plain .ko only). */
export function moduleBytes(file: string): Buffer {
  if (file.endsWith('.xz')) return execFileSync('xz', ['-dc', file], { maxBuffer: 256 << 20 });
  if (file.endsWith('.zst')) return execFileSync('zstd', ['-dcq', file], { maxBuffer: 256 << 20 });
  if (file.endsWith('.gz')) return execFileSync('gzip', ['-dc', file], { maxBuffer: 256 << 20 });
  return readFileSync(file);
}

/** The "depends=" field of a module's .modinfo section (NUL-separated key=value strings). */
export function dependsOf(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const value = ko.subarray(start, ko.indexOf(0, start)).toString('latin1');
  return value.split(',').filter(Boolean).map((n) => n.replace(/-/g, '_'));
}

export interface PeModule { name: string; file: string; data: Buffer }

/**
 * `wanted` and their dependencies, dependencies first. Names not found as modules are either built in
 * (listed in modules.builtin) or absent from this kernel: both reported, neither an error.
 */
export function resolveModules(modulesDir: string, wanted = PE_MODULES): { modules: PeModule[]; builtin: string[]; absent: string[] } {
  const index = indexModules(path.join(modulesDir, 'kernel'));
  let builtinList: Set<string>;
  try {
    builtinList = new Set(readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(modName));
  } catch {
    builtinList = new Set();
  }
  const modules: PeModule[] = [];
  const done = new Set<string>();
  const builtin: string[] = [];
  const absent: string[] = [];
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    const file = index.get(name);
    if (!file) {
      (builtinList.has(name) ? builtin : absent).push(name);
      return;
    }
    const data = moduleBytes(file);
    for (const dep of dependsOf(data)) visit(dep);
    modules.push({ name, file, data });
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'));
  return { modules, builtin, absent };
}
