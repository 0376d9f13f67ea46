// `anybios site link|ls|unlink`: two-way replication between this server and another anybios server
// (every anybios database, node databases made later included, their _security and the node users).
import type { Command } from '../command.ts';
import { apiOf, path } from '../lib/api.ts';
import { parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { ago, table } from '../lib/table.ts';
import { SITE_TRUST_USAGE, linkConfirmingCertificate, siteTrustOptions } from './site-trust.ts';

const usage = `usage: anybios site link URL --remote-user U [--remote-password P] [--fingerprint FP] [--json]
       anybios site ls [--json]
       anybios site unlink ID|URL

Links this server (--url) with the anybios server at URL, both ways and continuously: the catalog, every
node database (also ones enrolled later, at either site), their _security and the node users, so an
agent can fail over to either site. The link lives on this server (in <data>/sites.json, mode 0600) and
resumes after a restart; the other server needs no link of its own. Admin only, at both sites.

  link URL              URL is the other anybios server (e.g. http://home.example:8080) or a CouchDB
    --remote-user U     an admin of the other site
    --remote-password P its password (env ANYBIOS_REMOTE_PASSWORD; prefer the env: flags show in ps)
${SITE_TRUST_USAGE}
  ls                    ID URL STATE LAST-SYNC PENDING ERROR of each link (--json: the API's status,
                        per-database details included)
  unlink ID|URL         stops replicating with that site (what was copied stays at both sites)

examples:
  ANYBIOS_REMOTE_PASSWORD=… anybios site link http://home.example:8080 --remote-user admin
  anybios site ls
  anybios site unlink 3f9a2c1e

${CONNECTION_USAGE}`;

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
      if (!arg) throw usageError('URL is missing: the other anybios server', usage);
      const user = values['remote-user'];
      if (!user) throw usageError('--remote-user is missing: an admin of the other site', usage);
      const password = values['remote-password'] ?? process.env.ANYBIOS_REMOTE_PASSWORD;
      if (!password) throw usageError('the remote password is missing: set ANYBIOS_REMOTE_PASSWORD or pass --remote-password', usage);
      const insecureHttp = values['remote-insecure-http'] || undefined;
      const s = await linkConfirmingCertificate((t) => api.post<SiteStatus & { ok: true }>('/sites', { url: arg, user, password, ...t, insecureHttp }), values.fingerprint);
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
