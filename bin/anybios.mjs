#!/usr/bin/env node
// Entry shim. The CLI is TypeScript; to start fast and keep long-running processes (the agent) small,
// it runs from an esbuild build cached in node_modules/.cache/anybios, rebuilt whenever a source file
// or the installed packages change (checked by size and mtime, a few ms). The build is split by
// command (each `bin/commands/*` is its own chunk, loaded on use), so the agent never loads the
// server's packages (express, nano, yaml…). PouchDB and rxjs are bundled in (rxjs tree-shaken) with
// PouchDB's cookie jar left out: `fetch-cookie` → bin/lib/no-cookie-jar.cjs (see there; tough-cookie's
// public-suffix list alone is ~10 MiB of heap), and PouchDB's `level` (only for migrating pre-2014
// PouchDB databases) is loaded on first use instead of at start. Without esbuild, or with
// ANYBIOS_NO_BUNDLE=1, it loads the sources through tsx instead (about 40 MiB more per process).
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// Passwords given on the command line (`https://user:pass@host`, --password, --remote-password) must not
// stay readable by every user in /proc/<pid>/cmdline: the process title (which overwrites the argv memory
// on Linux) is set at once to the same command with them masked. process.argv keeps the real values.
{
  const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^/@\s:]*:)[^/\s]*@/i;
  const args = process.argv.slice(2);
  if (args.some((a, i) => URL_PASSWORD.test(a) || /^--(remote-)?password(=|$)/.test(a) || /^--(remote-)?password$/.test(args[i - 1] ?? ''))) {
    process.title = ['anybios', ...args.map((a, i) => (/^--(remote-)?password$/.test(args[i - 1] ?? '') ? '***' : a.replace(URL_PASSWORD, '$1***@').replace(/^(--(remote-)?password=).*/, '$1***')))].join(' ');
  }
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['bin', 'server', 'agent', 'ddocs', 'boot', 'bundle'];

function fingerprint() {
  const h = createHash('sha256');
  const walk = (dir) => {
    // Sources: .ts, and the .cjs/.mjs of the build itself (this file, bin/lib/*.cjs). Plain code-unit order:
    // localeCompare would load ICU collation data (~3 MiB RSS) into every process.
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') || e.name.endsWith('.cjs') || e.name.endsWith('.mjs')) {
        const st = statSync(p);
        h.update(`${p}:${st.size}:${st.mtimeMs}\n`);
      }
    }
  };
  for (const d of SOURCES) walk(join(root, d));
  // Bundled packages come from node_modules: an install or upgrade changes the lock file.
  for (const f of ['package-lock.json', 'node_modules/.package-lock.json']) {
    try {
      const st = statSync(join(root, f));
      h.update(`${f}:${st.size}:${st.mtimeMs}\n`);
    } catch {
      // not there: nothing to add
    }
  }
  return h.digest('hex').slice(0, 16);
}

/** Packages bundled into the build (with their dependencies); all others stay in node_modules. */
const BUNDLED = new Set(['pouchdb', 'rxjs']);
/** Never bundled: native code found relative to its own files. */
const NATIVE = new Set(['leveldown']);
const modules = join(root, 'node_modules');
const packageOf = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

/** esbuild plugin: which bare imports are bundled, and PouchDB's two substitutions (see the top). */
const packagesPlugin = {
  name: 'anybios-packages',
  setup(build) {
    build.onResolve({ filter: /^fetch-cookie$/ }, () => ({ path: join(root, 'bin', 'lib', 'no-cookie-jar.cjs') }));
    const lazyLevel = join(root, 'bin', 'lib', 'lazy-level.cjs');
    build.onResolve({ filter: /^level$/ }, (args) => {
      if (args.importer === lazyLevel) return { path: 'level', external: true };
      return args.importer.startsWith(join(modules, 'pouchdb') + '/') ? { path: lazyLevel } : undefined;
    });
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:') || args.namespace !== 'file') return undefined;
      const pkg = packageOf(args.path);
      if (NATIVE.has(pkg)) return { path: args.path, external: true };
      // Bundled: esbuild resolves it from the importer (a nested node_modules version stays that version).
      if (BUNDLED.has(pkg) || args.importer.startsWith(modules + '/')) return undefined;
      return { path: args.path, external: true };
    });
  },
};

async function bundled() {
  if (process.env.ANYBIOS_NO_BUNDLE) return null;
  const cache = join(root, 'node_modules', '.cache', 'anybios');
  const outDir = join(cache, `cli-${fingerprint()}`);
  const out = join(outDir, 'anybios.js');
  if (!existsSync(out)) {
    let esbuild;
    try {
      esbuild = await import('esbuild');
    } catch {
      return null;
    }
    mkdirSync(cache, { recursive: true });
    const tmp = `${outDir}.${process.pid}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    await esbuild.build({
      entryPoints: [join(root, 'bin', 'anybios.ts')],
      outdir: tmp,
      bundle: true,
      splitting: true, // one chunk per command, loaded by its dynamic import
      platform: 'node',
      format: 'esm',
      target: 'node20',
      plugins: [packagesPlugin],
      // Bundled CommonJS (PouchDB) calls require() for node built-ins and leveldown.
      banner: { js: "import { createRequire as __anybiosRequire } from 'node:module'; const require = __anybiosRequire(import.meta.url);" },
      logLevel: 'error',
    });
    try {
      renameSync(tmp, outDir); // atomic: concurrent first runs each build, the first rename wins
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(out)) throw err;
    }
    // Older builds go once a day old: a process still running from one may yet load a command's chunk.
    for (const f of readdirSync(cache)) {
      const p = join(cache, f);
      if (!f.startsWith('cli-') || p === outDir) continue;
      try {
        if (Date.now() - statSync(p).mtimeMs > 86_400_000) rmSync(p, { recursive: true, force: true });
      } catch {
        // removed meanwhile by another process
      }
    }
  }
  return out;
}

let entry = null;
try {
  entry = await bundled();
} catch (err) {
  if (process.env.ANYBIOS_DEBUG) console.error('anybios: bundle failed, using tsx:', err);
}
let main;
if (entry) ({ main } = await import(pathToFileURL(entry).href));
else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('./anybios.ts'));
}
process.exitCode = await main(process.argv.slice(2));
