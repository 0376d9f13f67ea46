// Bundles on a device from the command line: through the running agent's loopback API when there is
// one (it holds the local database open), else on the local database directly.
import http from 'node:http';
import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import PouchDB from 'pouchdb';
import { CATALOG_DB, nodeDbName } from '../../ddocs/build.ts';
import { BundleError } from '../../bundle/errors.ts';
import { exportFromDevice, importOnDevice, type DeviceBundleContext } from '../../bundle/device.ts';
import { CliError } from '../command.ts';
import { readCredentials } from '../commands/agent.ts';

interface LocalInfo { url: string; token: string }

function agentInfo(dataDir: string): LocalInfo | null {
  const file = join(dataDir, 'agent', 'local.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LocalInfo;
  } catch {
    return null;
  }
}

/** One request to the agent's /bundle; null when no agent answers (then the caller works directly). */
function agentRequest(info: LocalInfo, method: 'GET' | 'POST', path: string, body: string | null, sink: Writable | null): Promise<{ status: number; json?: Record<string, unknown> } | null> {
  return new Promise((resolve, reject) => {
    const req = http.request(info.url + path, { method, headers: { Authorization: `Bearer ${info.token}`, ...(body ? { 'Content-Type': 'application/octet-stream' } : {}) } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status === 200 && sink) {
        pipeline(res, sink).then(() => resolve({ status }), reject);
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (text.length < 4_000_000) text += d; });
      res.on('end', () => {
        try {
          resolve({ status, json: JSON.parse(text) });
        } catch {
          resolve({ status, json: { error: 'bad_response', reason: text.slice(0, 300) } });
        }
      });
      res.on('error', reject);
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? resolve(null) : reject(err)));
    if (body) pipeline(createReadStream(body), req).catch(reject);
    else req.end();
  });
}

function fail(json: Record<string, unknown> | undefined, status: number): never {
  const code = typeof json?.error === 'string' && /^[A-Z_]+$/.test(json.error) ? json.error : `HTTP_${status}`;
  throw new CliError(code, String(json?.reason ?? 'the agent refused the bundle'));
}

/** Runs `fn` on the device's databases opened here (no agent running). */
async function direct<T>(dataDir: string, fn: (c: DeviceBundleContext) => Promise<T>): Promise<T> {
  const credFile = join(dataDir, 'agent', 'credentials.json');
  if (!existsSync(credFile)) throw new CliError('NO_CREDENTIALS', `${credFile} is missing: is ${dataDir} a node's data dir (\`anybios agent --config FILE --data ${dataDir}\` makes it)?`);
  const cred = readCredentials(credFile);
  // A node prepared before its agent ever ran has no database yet: made here as the agent makes it.
  mkdirSync(join(dataDir, 'agent', 'db'), { recursive: true, mode: 0o700 });
  const Local = (PouchDB as unknown as { defaults(x: object): PouchDB.Static }).defaults({ prefix: join(dataDir, 'agent', 'db') + '/' });
  const db = new Local(nodeDbName(cred.node));
  const catalog = new Local(CATALOG_DB);
  try {
    await Promise.all([db.info(), catalog.info()]).catch((err: Error) => {
      throw new CliError('AGENT_DB_LOCKED', `the node's database in ${dataDir} cannot be opened (${err.message}): if its agent runs, it did not answer on its loopback API (${join(dataDir, 'agent', 'local.json')}); retry, or stop the agent`);
    });
    return await fn({ node: cred.node, password: cred.password, db, catalog, statePath: join(dataDir, 'agent', 'bundle.json') });
  } finally {
    await db.close().catch(() => {});
    await catalog.close().catch(() => {});
  }
}

const asCli = (err: unknown): never => {
  if (err instanceof BundleError) throw new CliError(err.code, err.message);
  throw err;
};

export async function deviceImport(dataDir: string, file: string): Promise<Record<string, unknown>> {
  const info = agentInfo(dataDir);
  if (info) {
    const r = await agentRequest(info, 'POST', '/bundle', file, null);
    if (r) {
      if (r.status !== 200) fail(r.json, r.status);
      return { ...r.json, via: 'agent' };
    }
  }
  return { ...(await direct(dataDir, (c) => importOnDevice(c, file)).catch(asCli)), via: 'database' };
}

export async function deviceExport(dataDir: string, since: string | null, part: string): Promise<Record<string, unknown>> {
  const info = agentInfo(dataDir);
  if (info) {
    const r = await agentRequest(info, 'GET', `/bundle${since ? `?since=${encodeURIComponent(since)}` : ''}`, null, createWriteStream(part, { mode: 0o600 }));
    if (r) {
      if (r.status !== 200) fail(r.json, r.status);
      // The checkpoint is in the file's end record; read it back from there (small: the last lines).
      return { ...trailerOf(part), via: 'agent' };
    }
  }
  const out = createWriteStream(part, { mode: 0o600 });
  try {
    const rep = await direct(dataDir, (c) => exportFromDevice(c, out, since)).catch(asCli);
    return { ...rep, via: 'database' };
  } finally {
    await new Promise<void>((resolve) => out.end(() => resolve()));
  }
}

/** The end record of a bundle file just written (its last 64 KiB). */
function trailerOf(file: string): Record<string, unknown> {
  const size = statSync(file).size;
  const buf = Buffer.alloc(Math.min(size, 70_000));
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, size - buf.length);
  } finally {
    closeSync(fd);
  }
  const tail = buf.toString('utf8').split('\n').filter(Boolean);
  const end = tail.reverse().find((l) => l.startsWith('{"t":"end"'));
  if (!end) throw new CliError('BUNDLE_TRUNCATED', `${file}: the agent's answer ended without the bundle's end record`);
  const e = JSON.parse(end) as { docs: number; blobs: number; checkpoint: string };
  return { docs: e.docs, blobs: e.blobs, bytes: size, checkpoint: e.checkpoint };
}
