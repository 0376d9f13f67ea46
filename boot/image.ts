// `anybios image build`: the PE, a kernel and an initrd made of Debian's packages (the distribution
// kernel and its modules, busybox-static) and our /init. See docs/boot.md.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { initramfs, type CpioEntry } from './cpio.ts';
import { findBusybox, findKernel } from './sources.ts';
import { PE_MODULES, resolveModules } from './modules.ts';
import { buildAgentBundle } from './agent-bundle.ts';
import { packagesOf, sharedLibraries } from './node-libs.ts';

export interface BuildOptions {
  out: string;
  /** vmlinuz or linux-image .deb; default: this machine's /boot, else apt's linux-image-amd64. */
  kernel?: string;
  /** Where downloaded and unpacked packages are kept between builds. */
  cache?: string;
  modules?: string[];
  /** Carry the agent: this node binary (default: the one running the build), its libraries, the agent bundle. */
  agent?: boolean;
  node?: string;
  log?: (msg: string) => void;
}

export interface ImageManifest {
  kernel: { version: string; from: string };
  busybox: string;
  modules: string[];
  builtin: string[];
  absent: string[];
  initrdBytes: number;
  builtAt: string;
  /** With --agent: the node binary, its shared libraries and their Debian packages, the bundle's size. */
  agent?: { node: string; nodeVersion: string; libraries: Record<string, string | null>; bundleBytes: number; natives: string[] };
}

export const DEFAULT_CACHE = '/var/cache/anybios/image';
/** boot/pe/NAME, walking up from here (the CLI runs from a bundle under node_modules/.cache). */
function asset(name: string): Buffer {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    for (const p of [path.join(dir, 'pe', name), path.join(dir, 'boot', 'pe', name)]) if (existsSync(p)) return readFileSync(p);
    dir = path.dirname(dir);
  }
  throw new Error(`boot/pe/${name} not found above ${fileURLToPath(import.meta.url)}`);
}

/** The initrd's files: busybox and its applets, /init, the stop script, console nodes, the modules. */
export function peEntries(busybox: Buffer, applets: string[], modules: { name: string; data: Buffer }[], info: string): CpioEntry[] {
  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'sbin', 'dev', 'proc', 'sys', 'run', 'tmp', 'etc', 'root', 'newroot', 'lib', 'lib/anybios', 'lib/modules', 'lib/modules/anybios']) entries.push({ path: d, type: 'dir' });
  // The kernel opens /dev/console for /init before anything is mounted.
  entries.push({ path: 'dev/console', type: 'char', major: 5, minor: 1 }, { path: 'dev/null', type: 'char', major: 1, minor: 3, mode: 0o666 });
  entries.push({ path: 'bin/busybox', type: 'file', data: busybox, mode: 0o755 });
  for (const a of applets) if (a !== 'busybox' && /^[\w.[-]+$/.test(a)) entries.push({ path: `bin/${a}`, type: 'symlink', target: 'busybox' });
  entries.push({ path: 'sbin/init', type: 'symlink', target: '../bin/busybox' });
  entries.push({ path: 'init', type: 'file', data: asset('init.sh'), mode: 0o755 });
  entries.push({ path: 'lib/anybios/stop.sh', type: 'file', data: asset('stop.sh'), mode: 0o755 });
  entries.push({ path: 'lib/anybios/systems.sh', type: 'file', data: asset('systems.sh') });
  entries.push({ path: 'lib/anybios/start-system', type: 'file', data: asset('start-system.sh'), mode: 0o755 });
  entries.push({ path: 'lib/anybios/stop-system', type: 'file', data: asset('stop-system.sh'), mode: 0o755 });
  entries.push({ path: 'lib/anybios/udhcpc.sh', type: 'file', data: asset('udhcpc.sh'), mode: 0o755 });
  entries.push({ path: 'bin/anybios-enter', type: 'file', data: asset('enter.sh'), mode: 0o755 });
  for (const m of modules) entries.push({ path: `lib/modules/anybios/${m.name}.ko`, type: 'file', data: m.data });
  entries.push({ path: 'lib/modules/anybios/load', type: 'file', data: Buffer.from(modules.map((m) => m.name).join('\n') + '\n') });
  entries.push({ path: 'etc/anybios-image', type: 'file', data: Buffer.from(info) });
  return entries;
}

/** Files at absolute paths of the PE (a leading / or not), with every parent directory entered once first. */
export function withParents(files: { path: string; data: Buffer; mode?: number }[], existing: CpioEntry[]): CpioEntry[] {
  const have = new Set(existing.map((e) => e.path));
  const out: CpioEntry[] = [];
  for (const f of files) {
    const rel = f.path.replace(/^\/+/, '');
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!have.has(d)) {
        have.add(d);
        out.push({ path: d, type: 'dir' });
      }
    }
    out.push({ path: rel, type: 'file', data: f.data, mode: f.mode });
    have.add(rel);
  }
  return out;
}

/**
 * The binary without its symbol tables (binutils `strip`, when there: node's 99 MB become 86, the
 * initrd ~4 MB smaller and quicker to unpack under emulation); as it is otherwise.
 */
function strippedBinary(file: string, log: (m: string) => void): Buffer {
  const dir = mkdtempSync(path.join(tmpdir(), 'anybios-strip-'));
  try {
    const r = spawnSync('strip', ['--strip-all', '-o', path.join(dir, 'out'), file], { encoding: 'utf8' });
    if (r.status === 0) return readFileSync(path.join(dir, 'out'));
    log(`strip ${file}: ${r.error?.message ?? r.stderr.trim()}; taken as it is`);
    return readFileSync(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The agent's part of the initrd: /lib/anybios/agent/{node,agent.mjs,…}, node's libraries, agent.sh. */
async function agentEntries(nodeBin: string, existing: CpioEntry[], log: (m: string) => void): Promise<{ entries: CpioEntry[]; info: NonNullable<ImageManifest['agent']> }> {
  const bundle = await buildAgentBundle();
  log(`agent bundle ${(bundle.bundleBytes / 1024).toFixed(0)} KiB; native: ${bundle.natives.join(', ')}`);
  const libs = sharedLibraries([nodeBin, ...bundle.natives]);
  const packages = packagesOf(libs.map((l) => l.path));
  log(`node ${nodeBin} with ${libs.map((l) => `${path.basename(l.path)} (${packages[l.path] ?? 'no package'})`).join(', ')}`);
  const nodeVersion = execFileSync(nodeBin, ['--version'], { encoding: 'utf8' }).trim();
  const files = [
    { path: 'lib/anybios/agent/node', data: strippedBinary(nodeBin, log), mode: 0o755 },
    ...bundle.files.map((f) => ({ path: `lib/anybios/agent/${f.path}`, data: f.data })),
    { path: 'lib/anybios/agent.sh', data: asset('agent.sh'), mode: 0o755 },
    ...libs.map((l) => ({ path: l.path, data: readFileSync(l.from), mode: 0o755 })),
  ];
  return { entries: withParents(files, existing), info: { node: nodeBin, nodeVersion, libraries: packages, bundleBytes: bundle.bundleBytes, natives: bundle.natives } };
}

export async function buildImage(opts: BuildOptions): Promise<ImageManifest> {
  const log = opts.log ?? (() => {});
  const cache = opts.cache ?? DEFAULT_CACHE;
  const kernel = findKernel({ kernel: opts.kernel, cache, log });
  log(`kernel ${kernel.version} from ${kernel.from}`);
  const busybox = findBusybox({ cache, log });
  log(`busybox from ${busybox.from}`);
  const applets = execFileSync(busybox.file, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const mods = kernel.modules ? resolveModules(kernel.modules, opts.modules ?? PE_MODULES) : { modules: [], builtin: [], absent: [] };
  log(`modules: ${mods.modules.map((m) => m.name).join(' ') || 'none'}${mods.builtin.length ? `; built in: ${mods.builtin.join(' ')}` : ''}${mods.absent.length ? `; not in this kernel: ${mods.absent.join(' ')}` : ''}`);
  const builtAt = new Date().toISOString();
  const info = `kernel=${kernel.version}\nbuilt=${builtAt}\n`;
  const entries = peEntries(readFileSync(busybox.file), applets, mods.modules, info);
  const agent = opts.agent ? await agentEntries(opts.node ?? process.execPath, entries, log) : undefined;
  if (agent) entries.push(...agent.entries);
  const initrd = initramfs(entries);
  mkdirSync(opts.out, { recursive: true });
  copyFileSync(kernel.vmlinuz, path.join(opts.out, 'vmlinuz'));
  writeFileSync(path.join(opts.out, 'initrd.img'), initrd);
  const manifest: ImageManifest = {
    kernel: { version: kernel.version, from: kernel.from },
    busybox: busybox.from,
    modules: mods.modules.map((m) => m.name),
    builtin: mods.builtin,
    absent: mods.absent,
    initrdBytes: initrd.length,
    builtAt,
    ...(agent ? { agent: agent.info } : {}),
  };
  writeFileSync(path.join(opts.out, 'image.json'), JSON.stringify(manifest, null, 2) + '\n');
  log(`wrote ${path.join(opts.out, 'vmlinuz')} (${(statSync(kernel.vmlinuz).size / 1048576).toFixed(1)} MiB) and initrd.img (${(initrd.length / 1048576).toFixed(1)} MiB)`);
  return manifest;
}
