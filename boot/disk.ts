// The data disk the PE boots from (docs/boot.md, "Disk layout"): templates and systems in a directory,
// then an ext4 image made from it with `mkfs.ext4 -d` (no loop device, no mount, no root needed).
//   <disk>/anybios/templates/<template>/      a template's root file system (read-only lower layer)
//   <disk>/anybios/systems/<name>/system.conf template=/anybios/templates/<t> (path on the disk), init=…
//   <disk>/anybios/systems/<name>/upper/ work/  the system's own layer (overlay upper and work dir)
import { existsSync, mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BootError } from './debs.ts';

export const DISK_TEMPLATES = '/anybios/templates';
export const DISK_SYSTEMS = '/anybios/systems';
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface DiskSystem {
  name: string;
  template: string;
  init?: string;
  /** Files of the system's own layer (path in its root → content), e.g. its /etc/hostname. */
  files?: Record<string, string>;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new BootError('TOOL_MISSING', `${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new BootError('DISK_FAILED', `${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
}

/** Puts template `name` (a directory or a rootfs tarball) into the disk directory. */
export function addTemplate(dir: string, name: string, source: string): string {
  if (!NAME_RE.test(name)) throw new BootError('INVALID_NAME', `template name "${name}": a-z, 0-9 and -`);
  const dest = path.join(dir, DISK_TEMPLATES, name);
  if (existsSync(dest)) throw new BootError('DISK_FAILED', `template ${name} is already in ${dir}`);
  mkdirSync(dest, { recursive: true });
  if (/\.tar(\.\w+)?$/.test(source)) run('tar', ['-xpf', source, '-C', dest, '--numeric-owner']);
  else if (existsSync(source)) run('cp', ['-a', `${source}/.`, dest]);
  else throw new BootError('TEMPLATE_NOT_FOUND', `template source ${source}: no such directory or tarball`);
  return dest;
}

/** Adds a system: its system.conf and its layer (with `files`), on template `template` of the disk. */
export function addSystem(dir: string, sys: DiskSystem): string {
  if (!NAME_RE.test(sys.name)) throw new BootError('INVALID_NAME', `system name "${sys.name}": a-z, 0-9 and -`);
  if (!existsSync(path.join(dir, DISK_TEMPLATES, sys.template))) throw new BootError('TEMPLATE_NOT_FOUND', `system ${sys.name}: no template ${sys.template} on the disk (add it first)`);
  const sdir = path.join(dir, DISK_SYSTEMS, sys.name);
  mkdirSync(path.join(sdir, 'upper'), { recursive: true });
  mkdirSync(path.join(sdir, 'work'), { recursive: true });
  writeFileSync(path.join(sdir, 'system.conf'), `template=${DISK_TEMPLATES}/${sys.template}\ninit=${sys.init ?? '/sbin/init'}\n`);
  const files = { '/etc/hostname': `${sys.name}\n`, ...sys.files };
  for (const [p, content] of Object.entries(files)) {
    const f = path.join(sdir, 'upper', p);
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, content);
  }
  return sdir;
}

/** Sum of file sizes under `dir` in bytes (du -sb). */
function sizeOf(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number.parseInt(r.stdout, 10) || 0;
}

/** An ext4 image of `dir` at `image`, labelled `label`; sized to the content plus room to grow. */
export function makeExt4(dir: string, image: string, opts: { label?: string; sizeMiB?: number } = {}): void {
  if (!readdirSync(dir).length) throw new BootError('DISK_FAILED', `${dir} is empty`);
  const need = Math.ceil((sizeOf(dir) * 1.25) / 1048576) + 64;
  const size = Math.max(opts.sizeMiB ?? 0, need);
  run('mkfs.ext4', ['-q', '-F', '-L', opts.label ?? 'anybios', '-E', 'root_owner=0:0', '-d', dir, image, `${size}M`]);
}
