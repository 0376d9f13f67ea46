// `anybios server`: the CouchDB API (embedded or forwarded to COUCH_URL), Fauxton and the API.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import type { Command } from '../command.ts';
import { CliError } from '../command.ts';
import { createServer, type AnybiosServer } from '../../server/app.ts';
import { limitsFrom, resolveLimits, type Limits } from '../../server/limits/config.ts';
import { defaultDataDir } from '../../server/secrets.ts';
import { TlsError } from '../../server/tls/cert.ts';
import { guardProcess } from '../lib/process-guard.ts';
import { stopOnSignals } from '../lib/signals.ts';

export { stopOnSignals };

export const SERVER_USAGE_OPTIONS = `  --port N       port to listen on (default 8080; env PORT)
  --host ADDR    address to bind (default 127.0.0.1; env ANYBIOS_HOST)
  --data DIR     data directory (default ./.anybios; env ANYBIOS_DATA)
  --tls-cert FILE --tls-key FILE  serve HTTPS with this certificate (chain) and key (PEM). Without them a
                 server bound to a non-loopback address serves HTTPS with a self-signed certificate made
                 at first start (<data>/tls/, its SHA-256 fingerprint is printed; agents pin it)
  --insecure-http  serve plain HTTP on a non-loopback address (credentials in clear; said at every start)
  --couch-ca FILE  the CA (PEM) that signed COUCH_URL's https certificate (env ANYBIOS_COUCH_CA)
  --limit NAME=VALUE  a resource limit, repeatable (env ANYBIOS_LIMIT_<NAME>, e.g. ANYBIOS_LIMIT_MAX_BODY=32MiB);
                 names and defaults: docs/couchdb.md "Limits" (sizes take KiB/MiB/GiB, times ms/s/m)
environment:
  COUCH_URL               use this Apache CouchDB (admin credentials in the URL) instead of the embedded one
  ANYBIOS_ADMIN_PASSWORD  the admin password (else generated on first start into <data>/admin-password)
  ANYBIOS_SSE_MAX_QUEUE   events queued for a slow /api/events client before it is dropped (default 1000)`;

export const serverOptions = {
  port: { type: 'string' },
  host: { type: 'string' },
  data: { type: 'string' },
  limit: { type: 'string', multiple: true },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'insecure-http': { type: 'boolean' },
  'couch-ca': { type: 'string' },
} as const;

export async function startServerFromFlags(values: { port?: string; host?: string; data?: string; limit?: string[]; 'tls-cert'?: string; 'tls-key'?: string; 'insecure-http'?: boolean; 'couch-ca'?: string }): Promise<{ server: AnybiosServer; dataDir: string }> {
  const portText = values.port ?? process.env.PORT ?? '8080';
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw new CliError('BAD_PORT', `--port must be 0-65535, not "${portText}"`);
  const dataDir = resolve(values.data ?? defaultDataDir());
  let limits: Partial<Limits>;
  try {
    limits = resolveLimits(limitsFrom(process.env, values.limit ?? []));
  } catch (err) {
    throw new CliError('BAD_LIMIT', (err as Error).message);
  }
  const server = await createServer({
    dataDir,
    port: Number(portText),
    host: values.host ?? process.env.ANYBIOS_HOST ?? '127.0.0.1',
    couchUrl: process.env.COUCH_URL || undefined,
    couchCa: readCouchCa(values['couch-ca'] ?? process.env.ANYBIOS_COUCH_CA),
    limits,
    transport: { tlsCert: values['tls-cert'] && resolve(values['tls-cert']), tlsKey: values['tls-key'] && resolve(values['tls-key']), insecureHttp: values['insecure-http'] },
    eventsMaxQueue: process.env.ANYBIOS_SSE_MAX_QUEUE ? Number(process.env.ANYBIOS_SSE_MAX_QUEUE) : undefined,
    log: (m) => console.log(m),
  }).catch((err: NodeJS.ErrnoException) => {
    if (err instanceof TlsError) throw new CliError(err.code, err.message);
    if (err.code === 'EADDRINUSE') throw new CliError('PORT_IN_USE', `port ${portText} is in use; pick another with --port`);
    throw err;
  });
  return { server, dataDir };
}

function readCouchCa(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const pem = readFileSync(file, 'utf8');
    new X509Certificate(pem);
    return pem;
  } catch (err) {
    throw new CliError('BAD_COUCH_CA', `--couch-ca ${file}: not a readable PEM certificate: ${(err as Error).message}`);
  }
}

export function printAccess(server: AnybiosServer): void {
  console.log(`CouchDB API: ${server.couchUrl}   Fauxton: ${server.couchUrl}/_utils/`);
  if (server.tls) console.log(`TLS certificate SHA-256 fingerprint: ${server.tls.fingerprint}`);
  if (server.passwordGenerated) {
    console.log(`Admin user "admin", password (shown once; kept in ${server.passwordFile}, mode 0600):\n  ${server.adminPassword}`);
  } else if (process.env.COUCH_URL) {
    console.log('Log in as an admin of the CouchDB at COUCH_URL');
  } else {
    console.log(`Log in as "admin"; the password is in ${process.env.ANYBIOS_ADMIN_PASSWORD ? 'ANYBIOS_ADMIN_PASSWORD' : server.passwordFile}`);
  }
}


export const command: Command = {
  name: 'server',
  summary: 'serve the CouchDB API (embedded or COUCH_URL), Fauxton and the REST API',
  usage: `usage: anybios server [--port N] [--host ADDR] [--data DIR] [--tls-cert FILE --tls-key FILE | --insecure-http]\n\n${SERVER_USAGE_OPTIONS}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: serverOptions, strict: true });
    guardProcess('server');
    const { server } = await startServerFromFlags(values);
    printAccess(server);
    console.log(`anybios ready on ${server.url}`);
    stopOnSignals(() => server.close());
    await new Promise(() => {});
    return 0;
  },
};
