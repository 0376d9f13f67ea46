// `anybios import FILE`: a bundle made by `anybios export` at the other end. Which end this is follows
// from the bundle: a server's bundle is imported on its node (--data), a node's on the server.
import { closeSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from '../command.ts';
import { CliError } from '../command.ts';
import { parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE, resolveConnection } from '../lib/connection.ts';
import { deviceImport } from '../lib/device-bundle.ts';
import { CouchHttp } from '../../server/sites/couch-http.ts';
import { BundleError } from '../../bundle/errors.ts';
import { MAGIC } from '../../bundle/format.ts';
import { importNodeBundle } from '../../bundle/server.ts';

const usage = `usage: anybios import FILE [--data DIR]     on the node: a server's bundle (desired state, templates)
       anybios import FILE [--url URL]      on the server: a node's bundle (status, heartbeat, edits)

The whole file is verified first (its MAC with the node's credential, every record, every blob's
sha256), then each revision is checked by the same rules as replication, then what is new is written
as a replication writes it: importing a bundle twice, or an older one after a newer one, changes
nothing. A bundle for another node, altered, or cut short is refused and nothing is written.

  --data DIR   on the node: its data dir (default ./.anybios-node; env ANYBIOS_NODE_DATA); through the
               running agent's loopback API, or the database directly when no agent runs
  --json       print the report as JSON

${CONNECTION_USAGE}`;

/** The bundle's origin from its header line (null when the file does not look like a bundle: the import then says why). */
function originOf(file: string): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw new CliError('FILE_NOT_FOUND', `${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(70_000);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('utf8');
    if (!text.startsWith(MAGIC)) return null;
    const line = text.slice(MAGIC.length, text.indexOf('\n', MAGIC.length));
    return (JSON.parse(line) as { origin?: string }).origin ?? null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

export const command: Command = {
  name: 'import',
  summary: "read a bundle file: a node's desired state (on the node) or its status (on the server)",
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { json: { type: 'boolean' } }, usage);
    if (positionals.length !== 1) throw usageError(positionals.length ? `unexpected arguments: ${positionals.slice(1).join(' ')}` : 'FILE is missing', usage);
    const file = resolve(positionals[0]);
    const origin = originOf(file);
    const dataDir = values.data ?? process.env.ANYBIOS_NODE_DATA;
    const onNode = origin === 'server' || (origin === null && dataDir !== undefined && values.url === undefined);
    let report: Record<string, unknown>;
    try {
      if (onNode) report = await deviceImport(resolve(dataDir ?? '.anybios-node'), file);
      else {
        const c = resolveConnection(values);
        report = { ...(await importNodeBundle(new CouchHttp(`${c.url}/db`, { username: c.user, password: c.password }, 120_000), file)) };
      }
    } catch (err) {
      if (err instanceof BundleError) throw new CliError(err.code, err.message);
      throw err;
    }
    if (values.json) printJson({ file, ...report });
    else {
      console.log(`imported ${file} into node ${String(report.node)}: ${report.written} new revisions written, ${report.present} already there, ${report.blobs} blobs`);
      if (!onNode && report.imported) console.log(`the node has imported the server's bundles up to: ${report.imported}\nnext: anybios export --node ${String(report.node)} --since ${report.imported} -o FILE`);
    }
    return 0;
  },
};
