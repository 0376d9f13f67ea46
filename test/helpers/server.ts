// Starts a real anybios server process on port 0 for a test file and stops it afterwards. Its stdin is
// a pipe from us: if the test worker dies (timeout, SIGKILL), the server sees EOF and stops itself.
// With COUCH_URL set, the server forwards /db to that Apache CouchDB, and names get a random suffix
// so runs do not collide there; `cleanup` removes what the test created.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { ServerScope } from 'nano';
import { couchClient } from '../../server/couch/client.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(root, 'bin', 'anybios.mjs');

export interface TestServer {
  url: string;
  couchUrl: string;
  adminPassword: string;
  /** Basic-auth header value for the admin. */
  adminAuth: string;
  admin: ServerScope;
  dataDir: string;
  proc: ChildProcess;
  /** Everything the server process printed, for diagnostics. */
  output: () => string;
  alive: () => boolean;
  stop(): Promise<void>;
  /** Restarts on the same data dir and port 0 (a new port). */
  restart(): Promise<TestServer>;
}

export const external = !!process.env.COUCH_URL;
/** A unique name for this run, so tests against an external CouchDB never meet each other's data. */
export const uniq = (base: string) => `${base}-${randomBytes(3).toString('hex')}`;

export const basic = (user: string, password: string) => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');

export async function startServer(opts: { dataDir?: string; env?: Record<string, string>; args?: string[]; command?: 'server' | 'up'; noAdminPassword?: boolean; embedded?: boolean; couchUrl?: string } = {}): Promise<TestServer> {
  // `embedded`: always the embedded CouchDB, even with COUCH_URL set (multi-site tests need one store per site).
  // `couchUrl`: this Apache CouchDB rather than COUCH_URL's (bench/fleet compares several in one run).
  const extUrl = opts.couchUrl ?? (external && !opts.embedded ? process.env.COUCH_URL! : undefined);
  const ext = extUrl !== undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'anybios-test-'));
  let adminPassword = ext ? decodeURIComponent(new URL(extUrl).password) : 'test-admin-password';
  const env: NodeJS.ProcessEnv = { ...process.env, ANYBIOS_ADMIN_PASSWORD: adminPassword, ...opts.env };
  if (opts.noAdminPassword) delete env.ANYBIOS_ADMIN_PASSWORD;
  if (ext) env.COUCH_URL = extUrl;
  else delete env.COUCH_URL;
  const proc = spawn(process.execPath, [CLI, opts.command ?? 'server', '--port', '0', '--data', dataDir, ...(opts.args ?? [])], { env: { ...env, ANYBIOS_STOP_ON_STDIN_EOF: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  let exited = false;
  proc.on('exit', () => (exited = true));
  const url = await new Promise<string>((resolve, reject) => {
    // On a shared Apache CouchDB, setup walks every node database there (a fleet bench's too).
    const startMs = ext ? 90_000 : 30_000;
    const timer = setTimeout(() => reject(new Error(`server did not start in ${startMs / 1000} s:\n${out}`)), startMs);
    const check = () => {
      const m = /anybios ready on (https?:\/\/[^\s]+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it started:\n${out}`));
    });
  });
  const couchUrl = `${url}/db`;
  if (opts.noAdminPassword && !ext) adminPassword = readFileSync(join(dataDir, 'admin-password'), 'utf8').trim();
  const adminUser = ext ? decodeURIComponent(new URL(extUrl).username) : 'admin';
  const server: TestServer = {
    url,
    couchUrl,
    adminPassword,
    adminAuth: basic(adminUser, adminPassword),
    admin: couchClient(couchUrl, adminUser, adminPassword),
    dataDir,
    proc,
    output: () => out,
    alive: () => !exited,
    async stop() {
      if (exited) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(timer);
    },
    async restart() {
      await server.stop();
      return startServer({ ...opts, dataDir });
    },
  };
  return server;
}

/** Removes a data dir made by startServer (never anything else). */
export function removeDataDir(dir: string): void {
  if (dir.startsWith(join(tmpdir(), 'anybios-test-'))) rmSync(dir, { recursive: true, force: true });
}

/** RequestInit with `auth` as the Authorization header and `json` as the body. */
export function requestInit(init: RequestInit & { auth?: string; json?: unknown }): RequestInit {
  const headers = new Headers(init.headers);
  if (init.auth) headers.set('Authorization', init.auth);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(init.json);
  }
  return { ...init, headers, body };
}

/** fetch against the server with optional credentials; returns status, headers and parsed JSON (or text). */
export async function call(base: string, path: string, init: RequestInit & { auth?: string; json?: unknown } = {}): Promise<{ status: number; body: any; headers: Headers; text: string }> {
  const res = await fetch(base + path, requestInit(init));
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, headers: res.headers, text };
}

/**
 * Whether users with `role` read their own `_users` document. Always on the embedded server; on Apache
 * CouchDB 3.x only when `_users/_security` admits the role (its default is admin-only; anybios's setup
 * adds node and operator when `[couchdb] users_db_security_editable = true`).
 */
export async function ownUserDocReadable(server: TestServer, role: string): Promise<boolean> {
  if (!external) return true;
  const sec = await call(server.couchUrl, '/_users/_security', { auth: server.adminAuth });
  const members = sec.body?.members ?? {};
  return (!members.names?.length && !members.roles?.length) || !!members.roles?.includes(role);
}
