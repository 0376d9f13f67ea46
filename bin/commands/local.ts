// `anybios local …`: edit and inspect this device's systems through its agent's loopback API, with or
// without the server. Changes land in the agent's local database and replicate when the link is up.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CliError, type Command } from '../command.ts';
import { Api, ApiFailure, path } from '../lib/api.ts';
import { parseCommand, printJson, usageError } from '../lib/args.ts';
import { table } from '../lib/table.ts';

const usage = `usage: anybios local ls [--json]                   systems on this device with their status
       anybios local get NAME [--json]
       anybios local apply -f FILE                  create or update systems/volumes (JSON or YAML)
       anybios local rm NAME
       anybios local start|stop NAME
       anybios local status                         the agent's sync state
options:
  --data DIR   the agent's data dir (default ./.anybios-node; env ANYBIOS_NODE_DATA; for \`anybios up\`: ./.anybios)

Works offline: the agent keeps reconciling from its local copy and syncs when the server is back.`;

function localApi(dataDir: string): Api {
  const info = join(dataDir, 'agent', 'local.json');
  if (!existsSync(info)) throw new CliError('AGENT_NOT_RUNNING', `no agent API described in ${info}: is \`anybios agent --data ${dataDir}\` running?`);
  const { url, token } = JSON.parse(readFileSync(info, 'utf8')) as { url: string; token: string };
  return new Api({ url, user: 'local', password: '' }, { base: url, authorization: `Bearer ${token}` });
}

function readDocs(file: string): Record<string, unknown>[] {
  const text = readFileSync(file === '-' ? 0 : file, 'utf8');
  let docs: unknown[];
  try {
    docs = text.trimStart().startsWith('{') || text.trimStart().startsWith('[') ? [JSON.parse(text)] : parseAllDocuments(text).map((d) => d.toJS());
  } catch (err) {
    throw new CliError('FILE_INVALID', `${file}: ${(err as Error).message}`);
  }
  return docs.flat().filter((d): d is Record<string, unknown> => d !== null && typeof d === 'object');
}

export const command: Command = {
  name: 'local',
  summary: "edit this device's systems through its agent, online or offline",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { data: { type: 'string' }, json: { type: 'boolean' }, file: { type: 'string', short: 'f' } }, usage);
    const [sub, name, ...extra] = positionals;
    if (extra.length) throw usageError(`unexpected arguments: ${extra.join(' ')}`, usage);
    const dataDir = resolve(values.data ?? process.env.ANYBIOS_NODE_DATA ?? '.anybios-node');
    const api = localApi(dataDir);
    switch (sub) {
      case 'status':
        printJson(await api.get('/status'));
        return 0;
      case 'ls': {
        const rows = await api.get<{ spec: Record<string, string>; status: Record<string, unknown> | null }[]>('/systems');
        if (values.json) printJson(rows);
        else console.log(table(['NAME', 'KIND', 'STATE', 'PHASE', 'CURRENT', 'PID'], rows.map(({ spec, status }) => [spec.name, spec.kind, spec.state, String(status?.phase ?? '-'), status ? String(status.observedRev === spec._rev) : '-', String(status?.pid ?? '-')])));
        return 0;
      }
      case 'get':
        if (!name) throw usageError('get needs NAME', usage);
        printJson(await api.get(path('systems', name)));
        return 0;
      case 'rm':
        if (!name) throw usageError('rm needs NAME', usage);
        await api.delete(path('systems', name));
        console.log(`system ${name}: removed (the agent stops it and removes its layer)`);
        return 0;
      case 'start':
      case 'stop':
        if (!name) throw usageError(`${sub} needs NAME`, usage);
        await api.post(path('systems', name, sub));
        console.log(`system ${name}: ${sub === 'start' ? 'running' : 'stopped'} (desired)`);
        return 0;
      case 'apply': {
        if (!values.file) throw usageError('apply needs -f FILE', usage);
        for (const raw of readDocs(values.file)) {
          const type = String(raw.type ?? String(raw._id ?? '').split(':')[0]);
          if (type !== 'system' && type !== 'volume') throw new CliError('USAGE', `${values.file}: only system and volume documents can be applied locally (got "${type}")`, 2);
          const coll = `${type}s`;
          const docName = String(raw.name ?? String(raw._id ?? '').split(':')[1] ?? '');
          const { node: _node, ...doc } = raw;
          let current: Record<string, unknown> | null = null;
          try {
            const got = await api.get<Record<string, unknown>>(path(coll, docName));
            current = (type === 'system' ? (got as { spec: Record<string, unknown> }).spec : got) ?? null;
          } catch (err) {
            if (!(err instanceof ApiFailure && err.status === 404)) throw err;
          }
          await api.put(path(coll, docName), current ? { ...doc, _rev: current._rev } : doc);
          console.log(`${type} ${docName}: ${current ? 'updated' : 'created'} locally`);
        }
        return 0;
      }
      default:
        throw usageError(sub ? `unknown subcommand ${sub}` : 'a subcommand is needed', usage);
    }
  },
};

