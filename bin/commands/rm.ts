// `anybios rm [system|volume|template] NAME [--node N]`: deletes one spec document through the API.
import type { Command } from '../command.ts';
import { apiOf } from '../lib/api.ts';
import { kindAndName, parseCommand, printJson } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { SPEC_KINDS, needNode, specLabel, specPath } from '../lib/specs.ts';

const usage = `usage: anybios rm [system|volume|template] NAME [--node N] [--json]

Deletes a system or volume from a node's database, or a template from the catalog (default kind:
system). The node's agent stops and removes a deleted system. Nodes: \`anybios node rm\`.

options:
  --node N   the node of a system or volume
  --json     print {kind, name, node, result, rev}

examples:
  anybios rm web --node edge-1
  anybios rm volume data --node edge-1
  anybios rm template base

${CONNECTION_USAGE}`;

export const command: Command = {
  name: 'rm',
  summary: 'delete a system, volume or template',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { node: { type: 'string' }, json: { type: 'boolean' } }, usage);
    const { kind, name } = kindAndName(positionals, SPEC_KINDS, 'system', usage);
    const ref = { kind, name, node: needNode(kind, values.node, usage) };
    const r = await apiOf(values).delete<{ rev: string }>(specPath(ref));
    if (values.json) printJson({ ...ref, result: 'deleted', rev: r.rev });
    else console.log(`${specLabel(ref)}: deleted`);
    return 0;
  },
};
