// `anybios site link|ls|unlink`: two-way replication between this server and another anybios server
// (every anybios database, node databases made later included, their _security and the node users).
import { readFileSync } from 'node:fs';
import type { Command } from '../command.ts';
import { apiOf, path } from '../lib/api.ts';
import { parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { ago, table } from '../lib/table.ts';
import { SITE_TRUST_USAGE, linkConfirmingCertificate, siteTrustOptions } from './site-trust.ts';

const usage = `usage: anybios site link URL [--remote-user U] [--remote-password P] [--fingerprint FP] [--json]
       anybios site ls [--json]
       anybios site unlink ID|URL

Links this server (--url) with the anybios server at URL, both ways and continuously: the catalog, every
node database (also ones enrolled later, at either site), their _security and the node users, so an
agent can fail over to either site. The link lives on this server (in <data>/sites.json, mode 0600) and
resumes after a restart; the other server needs no link of its own. Admin only, at both sites.

  link URL              URL is the other anybios server (e.g. http://home.example:8080) or a CouchDB;
                        it may carry the admin's credentials, as CouchDB's replicator and nano take them:
                        https://USER:PASSWORD@host (percent-encoded); \`-\` reads URL from stdin, and env
                        ANYBIOS_REMOTE_URL stands for it. A password typed in the URL or a flag is masked
                        in this process's command line at once (ps shows ***); stdin or env never show.
    --remote-user U     an admin of the other site (wins over the URL's)
    --remote-password P its password (env ANYBIOS_REMOTE_PASSWORD)
${SITE_TRUST_USAGE}
  ls                    ID URL STATE LAST-SYNC PENDING ERROR of each link (--json: the API's status,
                        per-database details included)
  unlink ID|URL         stops replicating with that site (what was copied stays at both sites)

examples:
  ANYBIOS_REMOTE_PASSWORD=… anybios site link http://home.example:8080 --remote-user admin
  anybios site link https://admin:s3cret@home.example:8080
  echo "$REMOTE_URL" | anybios site link -
  anybios site ls
  anybios site unlink 3f9a2c1e

${CONNECTION_USAGE}`;

/** `https://user:pass@host` → the URL without them, and them percent-decoded (as nano and CouchDB's replicator read them). */
export function splitCredentials(raw: string, usage: string): { url: string; user?: string; password?: string } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw usageError(`URL "${raw.replace(/\/\/[^/@]*@/, '//***@').slice(0, 200)}" is not a URL`, usage);
  }
  const decode = (v: string, what: string) => {
    try {
      return decodeURIComponent(v);
    } catch {
      throw usageError(`the ${what} in the URL is not valid percent-encoding`, usage);
    }
  };
  const user = u.username ? decode(u.username, 'user') : undefined;
  const password = u.password ? decode(u.password, 'password') : undefined;
  u.username = '';
  u.password = '';
  return { url: u.toString().replace(/\/+$/, ''), user, password };
}

interface SiteStatus {
  id: string; url: string; state: string; lastSync: string | null; pending: number | null; lastError: string | null;
  databases: { db: string; state: string; pending: number | null; lastError: string | null }[];
}

export const command: Command = {
  name: 'site',
  summary: 'link this server with another site (two-way replication), list or remove links — admin',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, {
      'remote-user': { type: 'string' }, 'remote-password': { type: 'string' }, json: { type: 'boolean' }, ...siteTrustOptions,
    }, usage);
    const [sub, arg, ...extra] = positionals;
    if (extra.length) throw usageError(`unexpected arguments: ${extra.join(' ')}`, usage);
    if (!['link', 'ls', 'unlink'].includes(sub ?? '')) throw usageError(sub ? `unknown subcommand "${sub}": use link, ls or unlink` : 'a subcommand is missing: link, ls or unlink', usage);
    const api = apiOf(values);
    if (sub === 'link') {
      const given = arg === '-' ? readFileSync(0, 'utf8').trim() : arg ?? process.env.ANYBIOS_REMOTE_URL;
      if (!given) throw usageError('URL is missing: the other anybios server (or `-` to read it from stdin, or env ANYBIOS_REMOTE_URL)', usage);
      const { url, user: urlUser, password: urlPassword } = splitCredentials(given, usage);
      const user = values['remote-user'] ?? urlUser;
      if (!user) throw usageError('the remote user is missing: pass --remote-user or put it in the URL (https://USER:PASSWORD@host)', usage);
      const password = values['remote-password'] ?? process.env.ANYBIOS_REMOTE_PASSWORD ?? urlPassword;
      if (!password) throw usageError('the remote password is missing: put it in the URL, set ANYBIOS_REMOTE_PASSWORD or pass --remote-password', usage);
      // The URL goes to the server without credentials: they travel as fields, never in a URL it might log.
      const insecureHttp = values['remote-insecure-http'] || undefined;
      const s = await linkConfirmingCertificate((t) => api.post<SiteStatus & { ok: true }>('/sites', { url, user, password, ...t, insecureHttp }), values.fingerprint);
      if (values.json) printJson(s);
      else console.log(`Linked with ${s.url} (site ${s.id}). Replication runs both ways; see \`anybios site ls\`.`);
      return 0;
    }
    if (sub === 'ls') {
      if (arg) throw usageError(`unexpected arguments: ${arg}`, usage);
      const list = await api.get<SiteStatus[]>('/sites');
      if (values.json) printJson(list);
      else if (!list.length) console.log('no site links (make one with `anybios site link URL --remote-user U`)');
      else console.log(table(['ID', 'URL', 'STATE', 'LAST-SYNC', 'PENDING', 'DBS', 'ERROR'], list.map((s) => [
        s.id, s.url, s.state, ago(s.lastSync), s.pending, s.databases.length, s.lastError,
      ])));
      return 0;
    }
    if (sub === 'unlink') {
      if (!arg) throw usageError('ID or URL is missing (see `anybios site ls`)', usage);
      const r = await api.delete<{ id: string; url: string }>(path('sites', arg));
      console.log(`Unlinked ${r.url} (site ${r.id}); what was replicated stays at both sites.`);
      return 0;
    }
    return 2;
  },
};
