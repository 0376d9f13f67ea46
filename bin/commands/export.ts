// `anybios export`: a node's database in a file, for a node that no network reaches (see docs/bundles.md).
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from '../command.ts';
import { CliError } from '../command.ts';
import { parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE, resolveConnection } from '../lib/connection.ts';
import { deviceExport } from '../lib/device-bundle.ts';
import { CouchHttp } from '../../server/sites/couch-http.ts';
import { BundleError } from '../../bundle/errors.ts';
import { exportNodeBundle } from '../../bundle/server.ts';

const usage = `usage: anybios export --node N [--since CHECKPOINT] -o FILE      on the server: N's desired state
       anybios export --data DIR [--since CHECKPOINT] -o FILE    on the node: its status, heartbeat, edits

A bundle carries a node database's revisions with their history (conflicts and deletions too), and,
from the server, the templates the node's systems use (each attachment once, by sha256), with a MAC
keyed by the node's credential. Import it with \`anybios import FILE\` at the other end.

  --node N             export node N's database from the server (admin credentials: the key comes from _users)
  --data DIR           on the node: its data dir (default ./.anybios-node; env ANYBIOS_NODE_DATA);
                       through the running agent, or its database directly when none runs
  --since CHECKPOINT   only what changed since the export that printed CHECKPOINT
  -o, --output FILE    where to write (written to FILE.part, renamed when complete)
  --json               print the report as JSON

The last line printed is the checkpoint for the next \`--since\`.

${CONNECTION_USAGE}`;

export const command: Command = {
  name: 'export',
  summary: "write a node's desired state (server) or status (node) to a bundle file, for nodes with no network",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { node: { type: 'string' }, since: { type: 'string' }, output: { type: 'string', short: 'o' }, json: { type: 'boolean' } }, usage);
    if (positionals.length) throw usageError(`unexpected arguments: ${positionals.join(' ')}`, usage);
    if (!values.output) throw usageError('-o FILE is missing: where to write the bundle', usage);
    const file = resolve(values.output);
    const part = `${file}.part`;
    const since = values.since ?? null;
    let report: Record<string, unknown>;
    try {
      if (values.node) {
        const c = resolveConnection(values);
        const http = new CouchHttp(`${c.url}/db`, { username: c.user, password: c.password }, 120_000);
        const out = createWriteStream(part, { mode: 0o600 });
        try {
          report = { ...(await exportNodeBundle(http, values.node, out, since)) };
        } finally {
          await new Promise<void>((r) => out.end(() => r()));
        }
      } else if (values.data ?? process.env.ANYBIOS_NODE_DATA) {
        report = await deviceExport(resolve(values.data ?? process.env.ANYBIOS_NODE_DATA!), since, part);
      } else {
        throw usageError('say which side: --node N (on the server) or --data DIR (on the node)', usage);
      }
      renameSync(part, file);
    } catch (err) {
      rmSync(part, { force: true });
      if (err instanceof BundleError) throw new CliError(err.code, err.message);
      throw err;
    }
    if (values.json) printJson({ file, ...report });
    else {
      console.log(`wrote ${file}: node ${String(report.node ?? '')}${report.node ? ', ' : ''}${report.docs} documents, ${report.blobs} blobs, ${report.bytes} bytes`);
      console.log(`checkpoint: ${report.checkpoint}`);
    }
    return 0;
  },
};
