// The agent for the boot image (`image build --agent`): bin/agent-main.ts and every package it uses in
// one ES module made by esbuild (a dependency already: the CLI bundles itself the same way), plus the
// native pieces, leveldown's N-API binaries for this machine, beside it. node-gyp-build (which finds
// a binary by scanning directories at run time) is replaced by a require of the file we put there.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { BootError } from './debs.ts';
import { compileSchemasModule, schemasCache } from '../ddocs/build.ts';

export interface AgentBundle {
  /** Files of the agent's directory (paths relative to it): agent.mjs, leveldown-<version>.node, ddocs/, node_modules/. */
  files: { path: string; data: Buffer }[];
  /** The native binaries it carries (their sources). */
  natives: string[];
  bundleBytes: number;
}

/** The design documents' sources (ddocs/**.js): ddocs/build.ts reads them at run time, beside the bundle. */
function ddocSources(root: string): { path: string; data: Buffer }[] {
  const out: { path: string; data: Buffer }[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.name.endsWith('.js')) out.push({ path: r, data: readFileSync(path.join(root, r)) });
    }
  };
  walk('ddocs');
  return out;
}

/** The project's root: above this module, or above the CLI's own bundle (node_modules/.cache/anybios). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(path.join(dir, 'bin', 'agent-main.ts'))) return dir;
    dir = path.dirname(dir);
  }
  throw new BootError('AGENT_BUNDLE_FAILED', `bin/agent-main.ts not found above ${fileURLToPath(import.meta.url)}`);
}

/** A package's prebuilt N-API binary for this platform (glibc: the PE's libc is this machine's). */
export function nativeBinary(pkg: string): string {
  const arch = `${process.platform}-${process.arch}`;
  for (const f of [`prebuilds/${arch}/node.napi.glibc.node`, `prebuilds/${arch}/node.napi.node`, 'build/Release/leveldown.node']) {
    if (existsSync(path.join(pkg, f))) return path.join(pkg, f);
  }
  throw new BootError('AGENT_BUNDLE_FAILED', `${pkg} has no binary for ${arch}`);
}

/** The package directory (with package.json) a file belongs to. */
function packageOf(file: string): { dir: string; name: string; version: string } {
  let dir = path.dirname(file);
  for (let i = 0; i < 8; i++) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      const { name, version } = JSON.parse(readFileSync(pj, 'utf8')) as { name: string; version: string };
      return { dir, name, version };
    }
    dir = path.dirname(dir);
  }
  throw new BootError('AGENT_BUNDLE_FAILED', `no package.json above ${file}`);
}

export async function buildAgentBundle(root = repoRoot()): Promise<AgentBundle> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (e) {
    throw new BootError('TOOL_MISSING', `esbuild (an npm dependency of anybios) is needed for --agent: ${(e as Error).message}`);
  }
  // Each package that finds its binary through node-gyp-build (two leveldown versions: PouchDB's and
  // the one under level) gets its own: <name>-<version>.node beside the bundle.
  const natives = new Map<string, string>();
  const r = await esbuild.build({
    entryPoints: [path.join(root, 'bin', 'agent-main.ts')],
    bundle: true, write: false, platform: 'node', format: 'esm', target: 'node20', minify: true, legalComments: 'none', logLevel: 'silent',
    // CommonJS packages (PouchDB, leveldown) call require() for node's own modules and name __dirname:
    // give the ES module both.
    banner: { js: "import { createRequire as __anybiosRequire } from 'node:module'; import { dirname as __anybiosDirname } from 'node:path'; import { fileURLToPath as __anybiosPath } from 'node:url'; const require = __anybiosRequire(import.meta.url); const __filename = __anybiosPath(import.meta.url); const __dirname = __anybiosDirname(__filename);" },
    plugins: [{
      name: 'native-binaries',
      setup(b) {
        b.onResolve({ filter: /^node-gyp-build$/ }, (a) => {
          const pkg = packageOf(a.importer);
          const file = `${pkg.name.replace(/[^a-z0-9-]/gi, '_')}-${pkg.version}.node`;
          natives.set(file, nativeBinary(pkg.dir));
          return { path: file, namespace: 'anybios-native' };
        });
        b.onLoad({ filter: /.*/, namespace: 'anybios-native' }, (a) => ({ contents: `module.exports = () => require('./${a.path}');`, loader: 'js' }));
        b.onResolve({ filter: /\.node$/ }, (a) => ({ path: a.path, external: true }));
      },
    }],
  }).catch((e: Error) => {
    throw new BootError('AGENT_BUNDLE_FAILED', `esbuild: ${e.message}`);
  });
  const js = Buffer.from(r.outputFiles[0]!.contents);
  // The compiled schemas, where ddocs/build.ts looks for its cache (so the PE needs no ajv): an ajv
  // package.json for require.resolve to find, and the cached module beside it.
  const cache = schemasCache();
  const rel = (p: string) => path.relative(path.join(cache.cacheDir, '..', '..'), p);
  return {
    files: [
      { path: 'agent.mjs', data: js },
      ...[...natives].map(([file, from]) => ({ path: file, data: readFileSync(from) })),
      ...ddocSources(root),
      { path: 'node_modules/ajv/package.json', data: Buffer.from(JSON.stringify({ name: 'ajv', version: cache.ajvVersion, description: 'stand-in: the boot image carries the compiled schemas, not ajv' }) + '\n') },
      { path: path.join('node_modules', rel(cache.cacheFile)), data: Buffer.from(compileSchemasModule()) },
    ],
    natives: [...natives.values()],
    bundleBytes: js.length,
  };
}
