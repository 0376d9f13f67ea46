// `anybios conflicts`: documents in conflict across the fleet (replication between sites edited apart),
// one document's versions side by side, and their resolution by keeping one version or a merged one.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CliError, type Command } from '../command.ts';
import { apiOf } from '../lib/api.ts';
import { kindAndName, parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { SPEC_KINDS, needNode, specLabel, specPath } from '../lib/specs.ts';
import { table } from '../lib/table.ts';

const usage = `usage: anybios conflicts [--node N] [--json]
       anybios conflicts show [system|volume|template] NAME [--node N] [--json]
       anybios conflicts resolve [system|volume|template] NAME [--node N] (--keep REV | --merged FILE) [--json]

A document edited at two sites while they could not replicate has several versions (CouchDB's
conflicts). Until it is resolved every site uses the same deterministic winner.
  (no subcommand)  lists the documents in conflict that you may read: NODE TYPE NAME WINNER OTHERS
  show             prints each version and how it differs from the winner
  resolve          keeps one version (--keep REV, any of those listed by show) or a merged document
                   (--merged FILE: JSON or YAML, "-" for stdin); the other versions are deleted in the
                   same step, so one version is left and none is lost from the document's history.
                   A version that appeared meanwhile makes it fail (CONFLICT): show again and retry.

options:
  --node N         the node of a system or volume (with no subcommand: only that node)
  --keep REV       the revision to keep
  --merged FILE    the merged document (its _rev, if any, must be the current winner's)
  --json           print the API's answer

examples:
  anybios conflicts
  anybios conflicts show web --node edge-1
  anybios conflicts resolve web --node edge-1 --keep 3-8c1f…
  anybios conflicts show web --node edge-1 --json | jq .winner.doc > web.json && $EDITOR web.json
  anybios conflicts resolve web --node edge-1 --merged web.json

${CONNECTION_USAGE}`;

interface Row { node: string | null; type: string; name: string; winner: string; conflicts: string[] }
interface Change { path: string; kind: string; winner?: unknown; other?: unknown }
interface View { id: string; winner: { rev: string; doc: Record<string, unknown> }; others: { rev: string; doc: Record<string, unknown>; diff: Change[] }[] }
interface Resolved { id: string; rev: string; kept: string | null; merged: boolean; deleted: string[] }

const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));

/** The differences of one version against the winner, one line each. */
export function diffLines(diff: Change[], indent = '  '): string[] {
  if (!diff.length) return [`${indent}(same content as the winner)`];
  return diff.map((d) => `${indent}${d.path || '/'}: ${show(d.winner)} → ${show(d.other)}`);
}

function readMerged(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError('FILE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text);
  } catch (err) {
    throw new CliError('FILE_INVALID', `${file} is neither JSON nor YAML: ${(err as Error).message}`);
  }
}

export const command: Command = {
  name: 'conflicts',
  summary: 'list, show and resolve documents in conflict',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { node: { type: 'string' }, keep: { type: 'string' }, merged: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const [sub, ...rest] = positionals;
    const api = apiOf(values);
    if (sub !== 'resolve' && (values.keep !== undefined || values.merged !== undefined)) throw usageError('--keep and --merged belong to `conflicts resolve`', usage);

    if (sub === undefined) {
      const rows = await api.get<Row[]>(`/conflicts${values.node ? `?node=${encodeURIComponent(values.node)}` : ''}`);
      if (values.json) printJson(rows);
      else if (!rows.length) console.log(`no conflicts${values.node ? ` on node ${values.node}` : ''}`);
      else console.log(table(['NODE', 'TYPE', 'NAME', 'WINNER', 'OTHERS'], rows.map((r) => [r.node ?? '(catalog)', r.type, r.name, r.winner, r.conflicts.join(' ')])));
      return 0;
    }
    if (sub !== 'show' && sub !== 'resolve') throw usageError(`unknown subcommand "${sub}": use show or resolve (or none to list)`, usage);
    const { kind, name } = kindAndName(rest, SPEC_KINDS, 'system', usage);
    const ref = { kind, name, node: needNode(kind, values.node, usage) };
    const base = specPath(ref);

    if (sub === 'show') {
      const v = await api.get<View>(`${base}/conflicts`);
      if (values.json) {
        printJson(v);
        return 0;
      }
      if (!v.others.length) {
        console.log(`${specLabel(ref)} is not in conflict (revision ${v.winner.rev})`);
        return 0;
      }
      const lines = [`${specLabel(ref)}: ${v.others.length + 1} versions in conflict`, `winner  ${v.winner.rev}  (used everywhere until resolved)`];
      for (const o of v.others) lines.push(`other   ${o.rev}  differs from the winner in:`, ...diffLines(o.diff, '          '));
      lines.push('', `resolve: anybios conflicts resolve ${kind === 'system' ? '' : `${kind} `}${name}${ref.node ? ` --node ${ref.node}` : ''} --keep REV   (or --merged FILE)`);
      console.log(lines.join('\n'));
      return 0;
    }

    if ((values.keep === undefined) === (values.merged === undefined)) throw usageError('resolve needs exactly one of --keep REV or --merged FILE', usage);
    const body = values.keep !== undefined ? { keep: values.keep } : { merged: readMerged(values.merged!) };
    const r = await api.post<Resolved>(`${base}/conflicts/resolve`, body);
    if (values.json) printJson(r);
    else {
      const how = r.merged ? 'the merged document' : `revision ${String(r.kept)}`;
      console.log(`${specLabel(ref)}: resolved with ${how}; now revision ${r.rev}; deleted ${r.deleted.join(', ')} (still in its history)`);
    }
    return 0;
  },
};
