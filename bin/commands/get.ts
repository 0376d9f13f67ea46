// `anybios get [system|volume|template|node] NAME`: one document (and a system's status), readable or as JSON/YAML.
import { stringify } from 'yaml';
import type { Command } from '../command.ts';
import { apiOf, path } from '../lib/api.ts';
import { kindAndName, parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { SPEC_KINDS, needNode, specLabel, specPath } from '../lib/specs.ts';
import { ago } from '../lib/table.ts';

const usage = `usage: anybios get [system|volume|template|node] NAME [--node N] [--json|--yaml]

Prints one document (default kind: system). For a system, a summary of its status comes first
(as YAML comments) and then its spec as YAML, which \`anybios apply -f\` takes back after an edit.

options:
  --node N   the node of a system or volume
  --json     print what the API returns: {spec, status} for a system, the document otherwise
  --yaml     the same as YAML

examples:
  anybios get web --node edge-1
  anybios get web --node edge-1 --json | jq .status.phase
  anybios get template base
  anybios get node edge-1
  anybios get web --node edge-1 > web.yaml && $EDITOR web.yaml && anybios apply -f web.yaml --node edge-1

${CONNECTION_USAGE}`;

const KINDS = [...SPEC_KINDS, 'node'] as const;

type Doc = Record<string, unknown>;
interface SystemView { spec: Doc; status: Doc | null }

/** The status of a system in a few comment lines. */
function statusLines(spec: Doc, status: Doc | null): string[] {
  if (!status) return ['# status: none yet (the node\'s agent has not reported on this system)'];
  const current = status.observedRev === spec._rev ? 'current spec' : `spec ${String(status.observedRev ?? '?')}, not the current ${String(spec._rev)}`;
  const lines = [`# status: ${String(status.phase)} (${current}), updated ${String(status.updated)} (${ago(status.updated as string)})`];
  const more = [['pid', status.pid], ['exit code', status.exitCode], ['restarts', status.restarts], ['code', status.code], ['message', status.message]] as const;
  for (const [k, v] of more) if (v !== null && v !== undefined && v !== '') lines.push(`# ${k}: ${String(v).replace(/\n/g, '\n#   ')}`);
  if (status.conflict || (spec._conflicts as unknown[] | undefined)?.length) lines.push('# conflict: the spec has conflicting revisions');
  // The phase transitions the node kept (also those of a time offline), newest last.
  const history = Array.isArray(status.history) ? (status.history as Doc[]).slice(-10) : [];
  if (history.length) lines.push('# history:', ...history.map((h) => `#   ${String(h.at)} ${String(h.phase)}${h.code ? ` ${String(h.code)}` : ''}${h.exitCode !== null && h.exitCode !== undefined ? ` (exit ${String(h.exitCode)})` : ''}${h.message ? `: ${String(h.message).replace(/\n/g, ' ')}` : ''}`));
  return lines;
}

/** The spec as YAML without CouchDB's bookkeeping (which `apply` fills in itself). */
function specYaml(spec: Doc): string {
  const { _rev, _conflicts, ...rest } = spec;
  return stringify(rest).trimEnd();
}

export const command: Command = {
  name: 'get',
  summary: 'print a system (with status), volume, template or node',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { node: { type: 'string' }, json: { type: 'boolean' }, yaml: { type: 'boolean' } }, usage);
    if (values.json && values.yaml) throw usageError('--json and --yaml exclude each other', usage);
    const { kind, name } = kindAndName(positionals, KINDS, 'system', usage);
    const api = apiOf(values);

    if (kind === 'node') {
      const row = await api.get<Doc>(path('nodes', name));
      if (values.json) printJson(row);
      else if (values.yaml) console.log(stringify(row).trimEnd());
      else console.log(Object.entries(row).map(([k, v]) => `${k}: ${k === 'heartbeat' && v ? `${String(v)} (${ago(v as string)})` : JSON.stringify(v)}`).join('\n'));
      return 0;
    }
    const ref = { kind, name, node: needNode(kind, values.node, usage) };
    const got = await api.get<Doc | SystemView>(specPath(ref));
    if (values.json) printJson(got);
    else if (values.yaml) console.log(stringify(got).trimEnd());
    else if (kind === 'system') {
      const { spec, status } = got as SystemView;
      console.log([`# ${specLabel(ref)}, revision ${String(spec._rev)}`, ...statusLines(spec, status), specYaml(spec)].join('\n'));
    } else console.log([`# ${specLabel(ref)}, revision ${String((got as Doc)._rev)}`, specYaml(got as Doc)].join('\n'));
    return 0;
  },
};
