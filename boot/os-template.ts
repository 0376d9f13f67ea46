// Real OS templates (`anybios template import`): a Debian root file system made by mmdebstrap from
// Debian's archive as apt reaches it (minbase + systemd, so an os system boots the distribution's own
// init), or an existing rootfs tarball; written as a tar template (sha256) or a dir template.
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync, copyFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { BootError } from './debs.ts';
import type { TemplateDoc } from '../ddocs/schemas/types.ts';

export const DEBIAN_SUITES = ['bookworm', 'trixie', 'bullseye', 'sid', 'stable', 'testing', 'oldstable', 'unstable'];
/**
 * What an os system needs on top of minbase: the init, the bus its tools talk over, and udev (unused in
 * a container, where systemd skips it; needed when the PE switches a machine to the system, else
 * systemd waits 90 s for /dev/ttyS0 and the other devices to be announced).
 */
export const OS_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'udev'];

/** File name of a cached `debian:SUITE` import with the default packages (changes when they do). */
export function debianCacheName(suite: string): string {
  return `debian-${suite}-${createHash('sha256').update(OS_PACKAGES.join(',')).digest('hex').slice(0, 8)}.tar`;
}
/** Paths one of which a template must hold to boot as an os system (tar member names). */
const INITS = ['sbin/init', 'usr/sbin/init', 'lib/systemd/systemd', 'usr/lib/systemd/systemd'];

export interface ImportOptions {
  /** `debian:SUITE`, or null with `from`. */
  source: string | null;
  from?: string;
  /** A `.tar` file (tar template) or a directory (dir template; it must not exist yet). */
  out: string;
  name?: string;
  include?: string[];
  mirror?: string;
  log?: (line: string) => void;
}

export async function sha256Of(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const isTar = (p: string) => /\.tar$/.test(p);

/** Member names of a tarball, without a leading `./`. */
function tarMembers(file: string): string[] {
  const r = spawnSync('tar', ['-tf', file], { encoding: 'utf8', maxBuffer: 512 << 20 });
  if (r.status !== 0) throw new BootError('TEMPLATE_INVALID', `${file} is not a readable tarball: ${r.stderr.trim()}`);
  return r.stdout.split('\n').map((l) => l.replace(/^\.\//, '').replace(/\/$/, '')).filter(Boolean);
}

/** Runs mmdebstrap, its progress lines to `log`. */
function mmdebstrap(args: string[], log: (l: string) => void): Promise<void> {
  if (spawnSync('sh', ['-c', 'command -v mmdebstrap']).status !== 0) throw new BootError('TOOL_MISSING', 'mmdebstrap not found (apt-get install mmdebstrap)');
  return new Promise((resolve, reject) => {
    const p = spawn('mmdebstrap', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail: string[] = [];
    const take = (b: Buffer) => {
      for (const line of b.toString().split('\n').filter(Boolean)) {
        tail = [...tail.slice(-9), line];
        log(`mmdebstrap: ${line}`);
      }
    };
    p.stdout.on('data', take);
    p.stderr.on('data', take);
    p.on('error', (e) => reject(new BootError('TOOL_MISSING', `mmdebstrap: ${e.message}`)));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new BootError('IMPORT_FAILED', `mmdebstrap exited with ${code}:\n${tail.join('\n')}`))));
  });
}

/** Imports the template and returns its document (print it, apply it, or pass it to `anybios run --template`). */
export async function importTemplate(o: ImportOptions): Promise<TemplateDoc> {
  const log = o.log ?? (() => {});
  const out = path.resolve(o.out);
  if (existsSync(out)) throw new BootError('EXISTS', `${out} exists already; remove it or choose another --out`);
  mkdirSync(path.dirname(out), { recursive: true });
  let description: string;
  let name = o.name;
  // Work on a temporary name beside the result: an interrupted import leaves no half template at --out.
  // (It keeps the .tar ending: mmdebstrap picks its output format by the target's name.)
  const partial = path.join(path.dirname(out), `.${path.basename(out)}.partial-${process.pid}${isTar(out) ? '.tar' : ''}`);
  try {
    if (o.from) {
      const from = path.resolve(o.from);
      if (!existsSync(from) || !statSync(from).isFile()) throw new BootError('NOT_FOUND', `--from ${o.from}: no such file`);
      const members = new Set(tarMembers(from));
      if (!INITS.some((i) => members.has(i))) throw new BootError('TEMPLATE_INVALID', `${o.from} holds no init (none of /${INITS.join(', /')}): an os system could not boot from it`);
      description = `imported from ${path.basename(from)}`;
      name ??= path.basename(from).replace(/\.tar(\.\w+)?$/, '').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+/, '').slice(0, 63) || 'imported';
      if (isTar(out)) copyFileSync(from, partial);
      else {
        mkdirSync(partial);
        const r = spawnSync('tar', ['-xpf', from, '-C', partial, '--numeric-owner'], { encoding: 'utf8' });
        if (r.status !== 0) throw new BootError('IMPORT_FAILED', `unpacking ${o.from}: ${r.stderr.trim()}`);
      }
    } else {
      const m = /^debian:([a-z]+)$/.exec(o.source ?? '');
      if (!m) throw new BootError('USAGE', `unknown source "${o.source}": debian:SUITE (e.g. debian:bookworm) or --from rootfs.tar`);
      const suite = m[1]!;
      if (!DEBIAN_SUITES.includes(suite)) throw new BootError('USAGE', `unknown Debian suite "${suite}" (one of ${DEBIAN_SUITES.join(', ')})`);
      const include = [...OS_PACKAGES, ...(o.include ?? [])];
      description = `Debian ${suite} (mmdebstrap minbase + ${include.join(', ')})`;
      name ??= `debian-${suite}`;
      // mmdebstrap writes a tarball when the target ends in .tar, a directory otherwise.
      log(`building ${description} into ${out}`);
      await mmdebstrap(['--variant=minbase', `--include=${include.join(',')}`, suite, partial, ...(o.mirror ? [o.mirror] : [])], log);
    }
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name!)) throw new BootError('INVALID_NAME', `template name "${name}": a-z, 0-9 and -, at most 63`);
    renameSync(partial, out);
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    throw e;
  }
  const doc: TemplateDoc = isTar(out)
    ? { _id: `template:${name}`, type: 'template', name, description, source: 'tar', sha256: await sha256Of(out) }
    : { _id: `template:${name}`, type: 'template', name, description, source: 'dir', path: out };
  return doc;
}
