// `anybios agent`: run the node agent. Enrolment output of `anybios node add` is its --config; the
// credentials are then kept in <data>/agent/credentials.json (mode 0600) so later starts need no file.
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CliError, type Command } from '../command.ts';
import { createAgent, type AgentConfig } from '../../agent/agent.ts';
import { stopOnSignals } from '../lib/signals.ts';
import { guardProcess } from '../lib/process-guard.ts';
import { checkTrustConfig } from './node-trust.ts';

const usage = `usage: anybios agent --config FILE [--data DIR]
       anybios agent --server URL --node ID [--data DIR]     (credentials from <data>/agent/credentials.json or env ANYBIOS_NODE_PASSWORD)

options:
  --config FILE        agent config printed by \`anybios node add ID\`: {"server","node","user","password"} and,
                       for https, "fingerprint" (the server certificate's SHA-256, pinned; or {"URL": FP, …}
                       per server for linked sites) and/or "ca" (PEM);
                       "insecureHttp": true allows credentials over plain http:// off loopback
  --server URL         server base URL (e.g. http://127.0.0.1:8080); repeat it for linked sites, in order of
                       preference: the agent fails over to the next one that answers
  --node ID            this node's id
  --data DIR           node data dir: systems, volumes and the agent's local database (default ./.anybios-node; env ANYBIOS_NODE_DATA)
  --template-root DIR  a directory under which \`dir\` templates may live (repeatable)
  --strategy S         how systems run: auto (default: crun containers as root or in a user namespace,
                       proot where neither works), overlay, copy, or proot (no isolation; a phone without root);
                       pe: inside the anybios boot image (PE), the data disk's systems (docs/boot.md)
  --full-pass SECONDS  periodic full reconcile pass (default 30)
  --heartbeat SECONDS  node heartbeat interval (default 30)
  --watchdog SECONDS   restart a replication that makes no progress for this long (default 15)
  --host-template allow|deny   whether systems may use this machine's own root as their template
                       (default: allow when running as root); node:<id> reports it as capabilities.hostTemplate
  --template-grace SECONDS     how long a template no system uses stays on disk (default 3600)
  --disk-reserve MB    a template pull that would leave less free on the data dir is refused (default 256)
  --status-history N   phase transitions kept in each status document (default 20, 0-100)`;

export interface Credentials extends AgentConfig {
  /** SHA-256 of passwords rotated away: a --config still holding one of them does not win over this file. */
  rotatedFrom?: string[];
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function readCredentials(file: string): Credentials {
  let raw: Partial<Credentials>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError('CONFIG_INVALID', `${file}: ${(err as Error).message}`);
  }
  for (const k of ['node', 'user', 'password'] as const) if (typeof raw[k] !== 'string' || !raw[k]) throw new CliError('CONFIG_INVALID', `${file}: "${k}" is missing`);
  const sv = raw.server;
  if (!(typeof sv === 'string' && sv) && !(Array.isArray(sv) && sv.length && sv.every((u) => typeof u === 'string' && u))) throw new CliError('CONFIG_INVALID', `${file}: "server" must be a URL or a list of URLs`);
  checkTrustConfig(file, raw);
  return raw as Credentials;
}

export function storeCredentials(dataDir: string, c: Credentials): void {
  const dir = join(dataDir, 'agent');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, 'credentials.json'), JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
}

const seconds = (v: string | undefined, name: string, def: number) => {
  if (v === undefined) return def * 1000;
  if (!/^\d+(\.\d+)?$/.test(v) || Number(v) <= 0) throw new CliError('USAGE', `--${name} must be a positive number of seconds`, 2);
  return Number(v) * 1000;
};

export const command: Command = {
  name: 'agent',
  summary: 'run the node agent: sync this node\'s database, reconcile systems, report status',
  usage,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' }, server: { type: 'string', multiple: true }, node: { type: 'string' }, data: { type: 'string' },
        'template-root': { type: 'string', multiple: true }, strategy: { type: 'string' }, 'full-pass': { type: 'string' }, heartbeat: { type: 'string' }, watchdog: { type: 'string' },
        'host-template': { type: 'string' }, 'template-grace': { type: 'string' }, 'disk-reserve': { type: 'string' },
        'status-history': { type: 'string' },
      },
      strict: true,
    });
    const dataDir = resolve(values.data ?? process.env.ANYBIOS_NODE_DATA ?? '.anybios-node');
    const stored = join(dataDir, 'agent', 'credentials.json');
    let cred: Credentials;
    if (values.config) {
      cred = readCredentials(values.config);
      if (values.server?.length) cred.server = values.server;
      const kept = existsSync(stored) ? readCredentials(stored) : null;
      if (kept && kept.node === cred.node && kept.rotatedFrom?.includes(sha256(cred.password))) {
        console.log(`agent ${cred.node}: the password in ${values.config} was rotated since; using the one in ${stored}`);
        cred = { ...cred, password: kept.password, nextPassword: kept.nextPassword, rotatedFrom: kept.rotatedFrom };
      }
      storeCredentials(dataDir, cred);
    } else if (existsSync(stored)) {
      cred = readCredentials(stored);
      if (values.server?.length) cred.server = values.server;
      if (values.node && values.node !== cred.node) throw new CliError('NODE_MISMATCH', `${stored} belongs to node ${cred.node}, not ${values.node}`);
    } else if (values.server?.length && values.node && process.env.ANYBIOS_NODE_PASSWORD) {
      cred = { server: values.server, node: values.node, user: `node-${values.node}`, password: process.env.ANYBIOS_NODE_PASSWORD };
      storeCredentials(dataDir, cred);
    } else {
      throw new CliError('NO_CREDENTIALS', `no agent credentials: pass --config FILE (from \`anybios node add ID\`) or keep them in ${stored}\n\n${usage}`, 2);
    }
    const strategy = values.strategy ?? 'auto';
    if (!['auto', 'overlay', 'copy', 'proot', 'pe'].includes(strategy)) throw new CliError('USAGE', `--strategy must be auto, overlay, copy, proot or pe (got ${strategy})`, 2);
    const hostTemplate = values['host-template'];
    if (hostTemplate !== undefined && hostTemplate !== 'allow' && hostTemplate !== 'deny') throw new CliError('USAGE', `--host-template must be allow or deny, not ${JSON.stringify(hostTemplate)}`, 2);
    const reserve = values['disk-reserve'];
    if (reserve !== undefined && !/^\d+$/.test(reserve)) throw new CliError('USAGE', '--disk-reserve must be a whole number of megabytes (0 or more)', 2);
    const history = values['status-history'];
    if (history !== undefined && !(/^\d+$/.test(history) && Number(history) <= 100)) throw new CliError('USAGE', `--status-history must be a whole number from 0 to 100 (got ${history})`, 2);
    guardProcess(`agent ${cred.node}`);
    const agent = await createAgent({
      ...cred, dataDir,
      // A rotation (`anybios node rotate`) changes the password: kept in credentials.json, 0600.
      persistCredentials: (c) => {
        const rotatedFrom = c.password !== cred.password ? [...(cred.rotatedFrom ?? []), sha256(cred.password)].slice(-8) : cred.rotatedFrom;
        cred = { ...cred, password: c.password, nextPassword: c.next, rotatedFrom };
        if (!c.next) delete cred.nextPassword;
        storeCredentials(dataDir, cred);
      }, templateRoots: values['template-root'] ?? [], strategy: strategy as 'auto' | 'overlay' | 'copy' | 'proot' | 'pe',
      fullPassMs: seconds(values['full-pass'], 'full-pass', 30), heartbeatMs: seconds(values.heartbeat, 'heartbeat', 30), watchdogMs: seconds(values.watchdog, 'watchdog', 15),
      ...(hostTemplate ? { hostTemplate: hostTemplate === 'allow' } : {}),
      templateGraceMs: seconds(values['template-grace'], 'template-grace', 3600),
      ...(reserve !== undefined ? { diskReserveBytes: Number(reserve) * 1024 * 1024 } : {}),
      ...(history !== undefined ? { statusHistory: Number(history) } : {}),
    });
    console.log(`anybios agent ready: node ${cred.node}, server ${[cred.server].flat().join(', ')}`);
    stopOnSignals(() => agent.stop());
    await new Promise(() => {});
    return 0;
  },
};
