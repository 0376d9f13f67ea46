// Builds the design documents from their source files (one function per file) and the schemas,
// with a content hash so that pushing an unchanged ddoc makes no new revision.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { schemas } from './schemas/index.ts';

/**
 * The ddocs source folder. Usually this module's own folder; when the CLI runs from a bundle (see
 * bin/anybios.mjs) this module lives elsewhere, so walk up to the project's `ddocs/`.
 */
function ddocsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(dir, 'lib', 'rules.js'))) return dir;
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'ddocs', 'lib', 'rules.js'))) return join(dir, 'ddocs');
    dir = dirname(dir);
  }
  throw new Error('cannot find the ddocs source folder (ddocs/lib/rules.js)');
}
const here = ddocsDir();

export const DDOC_ID = '_design/anybios';
export type DbKind = 'catalog' | 'node';

export interface DesignDoc {
  _id: string;
  _rev?: string;
  language: 'javascript';
  validate_doc_update: string;
  views: Record<string, { map: string; reduce?: string }>;
  lib: Record<string, string>;
  anybios: { hash: string };
}

let schemasModule: string | undefined;

/**
 * The schemas compiled to one self-contained ES5 CommonJS module (`module.exports = {system, ...}`).
 * Options keep it free of ajv runtime helpers (no ucs2length, no unicode RegExp flag); a `require`
 * left in the output is a build error, since CouchDB cannot resolve it. The result is cached on disk
 * by the schemas' content, so agents and CLI runs do not load ajv at all once it is built.
 */
/** Where compileSchemasModule keeps its result: `<node_modules>/.cache/anybios/schemas-<key>.js` (the boot image carries one). */
export function schemasCache(): { ajvVersion: string; cacheDir: string; cacheFile: string } {
  const require = createRequire(import.meta.url);
  const ajvVersion = (require('ajv/package.json') as { version: string }).version;
  const key = createHash('sha256').update(JSON.stringify(schemas)).update(ajvVersion).digest('hex').slice(0, 16);
  const cacheDir = join(dirname(require.resolve('ajv/package.json')), '..', '.cache', 'anybios');
  return { ajvVersion, cacheDir, cacheFile: join(cacheDir, `schemas-${key}.js`) };
}

export function compileSchemasModule(): string {
  if (schemasModule) return schemasModule;
  const require = createRequire(import.meta.url);
  const { cacheDir, cacheFile } = schemasCache();
  if (existsSync(cacheFile)) return (schemasModule = readFileSync(cacheFile, 'utf8'));
  const Ajv = require('ajv').default as typeof import('ajv').default;
  const standaloneCode = require('ajv/dist/standalone').default as typeof import('ajv/dist/standalone/index.js').default;
  const ajv = new Ajv({
    allErrors: true,
    strict: true,
    strictRequired: false,
    unicodeRegExp: false,
    code: { source: true, es5: true, lines: false, optimize: true },
    schemas: Object.values(schemas) as object[],
  });
  (ajv.opts as { unicode?: boolean }).unicode = false;
  const refs: Record<string, string> = {};
  for (const type of Object.keys(schemas)) refs[type] = type;
  const code = standaloneCode(ajv, refs);
  if (/\brequire\s*\(/.test(code)) throw new Error('compiled schemas need require(): not self-contained, refusing to build ddocs');
  schemasModule = code.replace(/^"use strict";/, '');
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, schemasModule);
    renameSync(tmp, cacheFile);
  } catch {
    // a read-only install just compiles every time
  }
  return schemasModule;
}

function readFn(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function readViews(dir: string): DesignDoc['views'] {
  const views: DesignDoc['views'] = {};
  if (!existsSync(dir)) return views;
  for (const name of readdirSync(dir).sort()) {
    const map = readFn(join(dir, name, 'map.js'));
    const reducePath = join(dir, name, 'reduce.js');
    views[name] = existsSync(reducePath) ? { map, reduce: readFn(reducePath) } : { map };
  }
  return views;
}

export function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 32);
}

/** The design document for a database kind, as it should be stored. */
export function buildDesignDoc(kind: DbKind): DesignDoc {
  const body = {
    _id: DDOC_ID,
    language: 'javascript' as const,
    validate_doc_update: readFn(join(here, kind, 'validate_doc_update.js')),
    views: readViews(join(here, kind, 'views')),
    lib: { rules: readFileSync(join(here, 'lib', 'rules.js'), 'utf8'), schemas: compileSchemasModule() },
  };
  return { ...body, anybios: { hash: hashOf(body) } };
}

/** `catalog` for the catalog database `anybios`, `node` for `anybios-node-<id>`. */
export function dbKindOf(dbName: string): DbKind | null {
  if (dbName === CATALOG_DB) return 'catalog';
  if (dbName.startsWith(NODE_DB_PREFIX)) return 'node';
  return null;
}

export const CATALOG_DB = 'anybios';
export const NODE_DB_PREFIX = 'anybios-node-';
export const nodeDbName = (nodeId: string) => NODE_DB_PREFIX + nodeId;
export const nodeUserName = (nodeId: string) => 'node-' + nodeId;
