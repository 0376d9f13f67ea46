// `anybios history`: the stored revisions of a spec with what each changed, and `history restore` to bring
// an earlier revision's content back as a new revision.
import type { Command } from '../command.ts';
import { apiOf } from '../lib/api.ts';
import { kindAndName, parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { SPEC_KINDS, needNode, specLabel, specPath } from '../lib/specs.ts';

const usage = `usage: anybios history [system|volume|template] NAME [--node N] [--json]
       anybios history restore [system|volume|template] NAME [--node N] --rev REV [--json]

Lists the revisions CouchDB still holds of a spec, newest first, each with what it changed against the
previous one ("missing" ones were compacted away; their content is gone). \`restore\` writes the content
of revision REV again as a new revision on top of the current one (refused while the spec is in
conflict: resolve it first with \`anybios conflicts\`).

options:
  --node N    the node of a system or volume
  --rev REV   the revision to restore
  --json      print the API's answer (with each revision's document)

examples:
  anybios history web --node edge-1
  anybios history restore web --node edge-1 --rev 2-9a0c…

${CONNECTION_USAGE}`;

interface Change { path: string; kind: string; before?: unknown; after?: unknown }
interface Entry { rev: string; status: 'available' | 'missing' | 'deleted'; changes: Change[] }
interface Restored { rev: string; restored: string; unchanged?: boolean }

const show = (v: unknown) => {
  const s = v === undefined ? '(absent)' : JSON.stringify(v);
  return s.length > 60 ? s.slice(0, 59) + '…' : s;
};

/** One line per revision, then its changes indented. */
export function historyLines(entries: Entry[]): string[] {
  const lines: string[] = [];
  entries.forEach((e, i) => {
    const older = entries.slice(i + 1).some((p) => p.status === 'available');
    lines.push(`${e.rev}  ${e.status}${i === 0 ? '  (current)' : ''}`);
    if (e.status !== 'available') return;
    if (!e.changes.length) lines.push(older || e.rev.startsWith('1-') ? '    (no change of content)' : '    (older revisions compacted: no baseline)');
    for (const c of e.changes) lines.push(`    ${c.path || '/'}: ${c.kind === 'added' ? `added ${show(c.after)}` : c.kind === 'removed' ? `removed (was ${show(c.before)})` : `${show(c.before)} → ${show(c.after)}`}`);
  });
  return lines;
}

export const command: Command = {
  name: 'history',
  summary: 'list the revisions of a spec, or restore an earlier one',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { node: { type: 'string' }, rev: { type: 'string' }, json: { type: 'boolean' } }, usage);
    // `history restore NAME` restores; `history restore` alone is the history of a system named restore.
    const restoring = positionals[0] === 'restore' && positionals.length >= 2;
    const { kind, name } = kindAndName(restoring ? positionals.slice(1) : positionals, SPEC_KINDS, 'system', usage);
    const ref = { kind, name, node: needNode(kind, values.node, usage) };
    const api = apiOf(values);

    if (restoring) {
      if (!values.rev) throw usageError('restore needs --rev REV', usage);
      const r = await api.post<Restored>(`${specPath(ref)}/restore`, { rev: values.rev });
      if (values.json) printJson(r);
      else if (r.unchanged) console.log(`${specLabel(ref)}: revision ${r.rev} has the content of ${values.rev} already`);
      else console.log(`${specLabel(ref)}: content of ${values.rev} restored as revision ${r.rev}`);
      return 0;
    }
    if (values.rev !== undefined) throw usageError('--rev belongs to `history restore`', usage);
    const entries = await api.get<Entry[]>(`${specPath(ref)}/history`);
    if (values.json) printJson(entries);
    else console.log([`# ${specLabel(ref)}: ${entries.length} revisions, newest first`, ...historyLines(entries)].join('\n'));
    return 0;
  },
};
