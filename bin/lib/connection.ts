// How the CLI reaches a server: flags, then env (ANYBIOS_URL, ANYBIOS_USER, ANYBIOS_PASSWORD), then the
// config file (~/.config/anybios/config.json or ANYBIOS_CONFIG), then the local data dir's admin password.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ServerScope } from 'nano';
import { couchClient } from '../../server/couch/client.ts';
import { defaultDataDir } from '../../server/secrets.ts';
import { CliError } from '../command.ts';
import { dispatcherFor, resolveTrust, TLS_USAGE, tlsFailureHint, tlsOptions, type CliTrust } from './tls.ts';

export interface Connection {
  url: string;
  user: string;
  password: string;
  /** How https to `url` is verified (bin/lib/tls.ts); a fetch dispatcher that does it, when needed. */
  trust?: CliTrust;
  dispatcher?: object;
}

export const CONNECTION_USAGE = `connection:
  --url URL          server URL (env ANYBIOS_URL; default http://127.0.0.1:8080)
  --user NAME        user name (env ANYBIOS_USER; default admin)
  --password PW      password (env ANYBIOS_PASSWORD; default: <data>/admin-password when present)
  --data DIR         local data dir for that default (env ANYBIOS_DATA; default ./.anybios)
${TLS_USAGE}
  config file: ANYBIOS_CONFIG or ~/.config/anybios/config.json with {"url","user","password"[,"ca","fingerprint"]}`;

export const connectionOptions = {
  url: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  data: { type: 'string' },
  ...tlsOptions,
} as const;

export function resolveConnection(flags: { url?: string; user?: string; password?: string; data?: string; ca?: string; pin?: string; 'insecure-http'?: boolean }, env = process.env): Connection {
  const cfgPath = env.ANYBIOS_CONFIG ?? join(homedir(), '.config', 'anybios', 'config.json');
  let cfg: Partial<Connection> & { ca?: string; fingerprint?: string } = {};
  if (existsSync(cfgPath)) {
    try {
      cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    } catch (err) {
      throw new CliError('CONFIG_INVALID', `${cfgPath} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const url = (flags.url ?? env.ANYBIOS_URL ?? cfg.url ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const user = flags.user ?? env.ANYBIOS_USER ?? cfg.user ?? 'admin';
  let password = flags.password ?? env.ANYBIOS_PASSWORD ?? cfg.password;
  if (password === undefined && user === 'admin') {
    const file = join(flags.data ?? defaultDataDir(env), 'admin-password');
    if (existsSync(file)) password = readFileSync(file, 'utf8').trim();
    else if (env.ANYBIOS_ADMIN_PASSWORD) password = env.ANYBIOS_ADMIN_PASSWORD;
  }
  if (password === undefined) throw new CliError('NO_CREDENTIALS', `no password for ${user}: pass --password, set ANYBIOS_PASSWORD, or write ${cfgPath}`);
  let trust: CliTrust;
  try {
    trust = resolveTrust(url, flags, cfg, flags.data ?? defaultDataDir(env), env);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('BAD_URL', `${url}: ${(err as Error).message}`);
  }
  return { url, user, password, trust, dispatcher: dispatcherFor(trust) };
}

/** nano on the server's CouchDB API with the connection's credentials. */
export function couchOf(c: Connection): ServerScope {
  return couchClient(c.url + '/db', c.user, c.password, c.dispatcher);
}

/** Turns nano/HTTP failures into CLI errors that say what happened. */
export function explainHttpError(err: unknown, c: Connection): never {
  const e = err as { statusCode?: number; code?: string; reason?: string; message?: string; error?: string };
  const hint = e.statusCode ? null : tlsFailureHint(err, c.url);
  if (hint) throw new CliError('TLS', hint);
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'ECONNRESET') throw new CliError('SERVER_UNREACHABLE', `cannot reach ${c.url}: ${e.code} (is \`anybios server\` running?)`);
  if (e.statusCode === 401) throw new CliError('UNAUTHORIZED', `${c.url} refused the credentials of ${c.user}: ${e.reason ?? e.message}`);
  if (e.statusCode === 403) throw new CliError('FORBIDDEN', `${c.user} may not do that: ${e.reason ?? e.message}`);
  if (e.statusCode) throw new CliError(`HTTP_${e.statusCode}`, `${e.error ?? 'error'}: ${e.reason ?? e.message}`);
  throw err;
}
