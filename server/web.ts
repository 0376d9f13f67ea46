// The web console: web/src/*.ts bundled by esbuild when the server starts (minified, gzipped once, cached
// on disk by content), plus the static files beside it (index.html, style.css, favicon.svg). Nothing is fetched from
// elsewhere at run time. The bundle carries ddocs/lib/rules.js with the schemas compiled by ajv to
// standalone code (the very module the design documents run), so the form's errors are CouchDB's.
// Every answer has a strict Content-Security-Policy: scripts and styles from this origin only.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { compileSchemasModule } from '../ddocs/build.ts';

export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export interface ConsoleBundle { js: Buffer; gzip: Buffer; etag: string; ms: number; cached: boolean }

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/**
 * Bundles `<web>/src/main.ts` (and rules.js with the compiled schemas) into one minified ES module.
 * The result is cached on disk by the content of everything that goes in (like the CLI bundle), so a
 * server start normally reads one file and runs no esbuild at all.
 */
export async function buildConsole(web: string, rulesPath: string): Promise<ConsoleBundle> {
  const t0 = performance.now();
  const require = createRequire(import.meta.url);
  const esbuildVersion = (require('esbuild/package.json') as { version: string }).version;
  const schemas = compileSchemasModule();
  const h = createHash('sha256').update(esbuildVersion).update(schemas).update(readFileSync(rulesPath));
  for (const f of filesUnder(join(web, 'src'))) h.update(f.slice(web.length)).update(readFileSync(f));
  for (const f of ['system.ts', 'common.ts']) h.update(readFileSync(join(dirname(rulesPath), '..', 'schemas', f)));
  const key = h.digest('hex').slice(0, 20);
  const cacheDir = join(dirname(require.resolve('esbuild/package.json')), '..', '.cache', 'anybios');
  const cacheFile = join(cacheDir, `console-${key}.js`);
  const done = (js: Buffer, cached: boolean): ConsoleBundle => ({ js, gzip: gzipSync(js, { level: 9 }), etag: `"${key}"`, ms: performance.now() - t0, cached });
  if (existsSync(cacheFile)) return done(readFileSync(cacheFile), true);

  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [join(web, 'src', 'main.ts')],
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [{
      name: 'anybios-rules',
      setup(b) {
        // rules.js as the ddocs hold it; its `require('lib/schemas')` is the ajv-compiled standalone module.
        b.onResolve({ filter: /^anybios:rules$/ }, () => ({ path: rulesPath }));
        b.onResolve({ filter: /^lib\/schemas$/ }, () => ({ path: 'schemas', namespace: 'anybios-schemas' }));
        b.onLoad({ filter: /.*/, namespace: 'anybios-schemas' }, () => ({ contents: schemas, loader: 'js' }));
      },
    }],
  });
  await esbuild.stop(); // no esbuild service process left beside a long-running server
  const js = Buffer.from(out.outputFiles[0].contents);
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, js);
    renameSync(tmp, cacheFile); // atomic: concurrent starts each build, the last rename wins
    for (const f of readdirSync(cacheDir)) if (f.startsWith('console-') && f.endsWith('.js') && join(cacheDir, f) !== cacheFile) rmSync(join(cacheDir, f), { force: true });
  } catch {
    // a read-only install bundles at every start
  }
  return done(js, false);
}

/** Express middleware serving the console from `web` (the folder holding index.html, style.css, src/). */
export function webConsole(web: string, rulesPath: string, log: (m: string) => void = () => {}): express.Handler {
  let bundle: Promise<ConsoleBundle> | undefined;
  const get = () => {
    bundle ??= buildConsole(web, rulesPath).then((b) => {
      log(`web console: ${b.cached ? 'cached bundle read' : 'bundled'} in ${b.ms.toFixed(0)} ms, ${b.js.length} bytes (${b.gzip.length} gzipped)`);
      return b;
    }, (err) => {
      bundle = undefined; // try again on the next request
      throw err;
    });
    return bundle;
  };
  if (existsSync(join(web, 'src', 'main.ts'))) get().catch((err) => log(`web console: bundling failed: ${(err as Error).message}`));
  const files = express.static(web, { index: 'index.html', fallthrough: true, dotfiles: 'ignore' });
  // Only these files are served from web/ (not its sources, not its tsconfig).
  const PUBLIC = new Set(['/', '/index.html', '/style.css', '/favicon.svg']);
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'same-origin');
    if (req.path === '/favicon.ico') return res.redirect(301, '/favicon.svg');
    if (req.path !== '/app.js') {
      if (!PUBLIC.has(req.path)) return next();
      res.setHeader('Cache-Control', 'no-cache');
      return files(req, res, next);
    }
    get().then((b) => {
      res.setHeader('Content-Type', 'text/javascript; charset=utf-8');
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('ETag', b.etag);
      res.setHeader('Vary', 'Accept-Encoding');
      if (req.headers['if-none-match'] === b.etag) return void res.status(304).end();
      const gz = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      if (gz) res.setHeader('Content-Encoding', 'gzip');
      const body = gz ? b.gzip : b.js;
      res.setHeader('Content-Length', String(body.length));
      res.end(req.method === 'HEAD' ? undefined : body);
    }, next);
  };
}
