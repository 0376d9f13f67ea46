#!/usr/bin/env node
// Entry shim. The CLI is TypeScript; to start fast and keep long-running processes (the agent) small,
// it runs from one esbuild bundle cached in node_modules/.cache/anybios, rebuilt whenever a source file
// changes (checked by size and mtime of every .ts file, a few ms). Without esbuild, or with
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
const SOURCES = ['bin', 'server', 'agent', 'ddocs', 'boot'];

function fingerprint() {
  const h = createHash('sha256');
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const st = statSync(p);
        h.update(`${p}:${st.size}:${st.mtimeMs}\n`);
      }
    }
  };
  for (const d of SOURCES) walk(join(root, d));
  return h.digest('hex').slice(0, 16);
}

async function bundled() {
  if (process.env.ANYBIOS_NO_BUNDLE) return null;
  const cache = join(root, 'node_modules', '.cache', 'anybios');
  const out = join(cache, `cli-${fingerprint()}.mjs`);
  if (!existsSync(out)) {
    let esbuild;
    try {
      esbuild = await import('esbuild');
    } catch {
      return null;
    }
    mkdirSync(cache, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    await esbuild.build({
      entryPoints: [join(root, 'bin', 'anybios.ts')],
      outfile: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'error',
    });
    renameSync(tmp, out); // atomic: concurrent first runs each build, the last rename wins
    for (const f of readdirSync(cache)) if (f.startsWith('cli-') && join(cache, f) !== out && !f.endsWith('.tmp')) rmSync(join(cache, f), { force: true });
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
