// The data disk the PE boots from (docs/boot.md, "Disk layout"): templates and systems in a directory,
// then an ext4 image made from it with `mkfs.ext4 -d` (no loop device, no mount, no root needed).
//   <disk>/anybios/templates/<template>/      a template's root file system (read-only lower layer)
//   <disk>/anybios/systems/<name>/system.conf template=/anybios/templates/<t> (path on the disk), init=…
//   <disk>/anybios/systems/<name>/upper/ work/  the system's own layer (overlay upper and work dir)
//   <disk>/anybios/node/                      the PE agent's data dir: agent/credentials.json (0600),
//                                             its local database (agent/db), kept across boots
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BootError } from './debs.ts';

export const DISK_TEMPLATES = '/anybios/templates';
export const DISK_SYSTEMS = '/anybios/systems';
export const DISK_NODE = '/anybios/node';
export const DISK_CREDENTIALS = `${DISK_NODE}/agent/credentials.json`;
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

/** A node credential file (`anybios node add ID --json`), its fields checked as the agent checks them. */
export function readNodeCredential(file: string): Record<string, unknown> {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BootError('CONFIG_INVALID', `--node ${file}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new BootError('CONFIG_INVALID', `--node ${file}: expected a JSON object`);
  for (const k of ['node', 'user', 'password']) if (typeof raw[k] !== 'string' || !raw[k]) throw new BootError('CONFIG_INVALID', `--node ${file}: "${k}" is missing`);
  const sv = raw.server;
  if (!(typeof sv === 'string' && sv) && !(Array.isArray(sv) && sv.length && sv.every((u) => typeof u === 'string' && u))) throw new BootError('CONFIG_INVALID', `--node ${file}: "server" must be a URL or a list of URLs`);
  return raw;
}

/**
 * The node's credential for the PE's agent (what `anybios node add ID --json` prints: server, node, user,
 * password, and for https the fingerprint): the agent's own credentials.json in its data dir on the disk,
 * 0600 in a 0700 directory (mkfs.ext4 -d keeps modes).
 */
export function addNodeCredential(dir: string, credential: object): string {
  const file = path.join(dir, DISK_CREDENTIALS);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(path.join(dir, DISK_NODE), 0o700);
  chmodSync(path.dirname(file), 0o700);
  writeFileSync(file, JSON.stringify(credential, null, 2) + '\n', { mode: 0o600 });
  return file;
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
