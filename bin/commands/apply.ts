// `anybios apply -f FILE`: creates or updates systems, volumes and templates from JSON or YAML documents.
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { CliError, type Command } from '../command.ts';
import { apiOf, type Api } from '../lib/api.ts';
import { parseCommand, printJson, usageError } from '../lib/args.ts';
import { CONNECTION_USAGE } from '../lib/connection.ts';
import { SPEC_KINDS, onNode, specLabel, specPath, type SpecKind, type SpecRef } from '../lib/specs.ts';

const usage = `usage: anybios apply -f FILE [-f FILE…] [--node N] [--json]

Creates each document that does not exist yet and updates each that differs; unchanged documents
are left alone. FILE is JSON or YAML (\`-\` reads stdin): one document, an array of documents, or a
YAML stream of documents separated by \`---\`.

A document's kind comes from \`type\` (system, volume, template) or from its \`_id\` prefix
(\`system:web\`). Systems and volumes go to a node: \`--node N\`, or a \`node\` field in the document
(not stored). Templates go to the catalog. A \`_rev\` in a document must be the current revision
(an update on top of anything newer fails). \`restartedAt\` and attachments already on a document are
kept when the file does not mention them.

Documents are applied in order, each checked by the server; the first failure stops the run with
its reason, after the lines for what was already applied.

options:
  -f, --file FILE   the documents (repeatable)
  --node N          node for systems and volumes without a \`node\` field
  --json            print [{kind, name, node, result, rev}] instead of lines

examples:
  anybios apply -f web.yaml --node edge-1
  anybios apply -f fleet.yaml          # each document names its node
  anybios get web --node edge-1 | sed 's/stopped/running/' | anybios apply -f - --node edge-1

${CONNECTION_USAGE}`;

type Doc = Record<string, unknown>;

interface Item { ref: SpecRef; doc: Doc }
type Result = 'created' | 'updated' | 'unchanged';

const fail = (where: string, message: string) => new CliError('INVALID_DOCUMENT', `${where}: ${message}`);

async function readSource(file: string): Promise<string> {
  try {
    if (file !== '-') return await readFile(file, 'utf8');
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    throw new CliError('FILE_UNREADABLE', `cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Every document in a file, arrays flattened. JSON files are parsed as JSON, the rest as YAML. */
function documentsOf(file: string, text: string): unknown[] {
  const name = file === '-' ? 'stdin' : file;
  if (file.endsWith('.json')) {
    try {
      return [JSON.parse(text)].flat();
    } catch (err) {
      throw new CliError('INVALID_FILE', `${name} is not valid JSON: ${(err as Error).message}`);
    }
  }
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new CliError('INVALID_FILE', `${name} is not valid YAML: ${doc.errors[0].message.trimEnd()}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value); // an empty document, as after a trailing ---
  }
  return out.flat();
}

/** The kind, name and node of a document; the document without `node`. */
function itemOf(raw: unknown, where: string, defaultNode: string | undefined): Item {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw fail(where, 'is not an object (a mapping of fields)');
  const { node, ...doc } = raw as Doc;
  const idParts = typeof doc._id === 'string' && doc._id.includes(':') ? [doc._id.slice(0, doc._id.indexOf(':')), doc._id.slice(doc._id.indexOf(':') + 1)] : [];
  const type = doc.type ?? idParts[0];
  if (type === undefined) throw fail(where, 'has no `type` (system, volume or template) and no `_id` such as system:NAME');
  if (doc.type !== undefined && idParts[0] !== undefined && doc.type !== idParts[0]) throw fail(where, `type ${String(doc.type)} contradicts _id ${String(doc._id)}`);
  const kind = SPEC_KINDS.find((k) => k === type);
  if (!kind) throw fail(where, `type "${String(type)}" cannot be applied: use system, volume or template`);
  const name = doc.name ?? idParts[1];
  if (typeof name !== 'string' || !name) throw fail(where, 'has no `name`');
  if (node !== undefined && (typeof node !== 'string' || !onNode(kind))) throw fail(where, onNode(kind) ? '`node` must be a string' : 'templates live in the catalog: remove `node`');
  if (node !== undefined && defaultNode !== undefined && node !== defaultNode) throw fail(where, `node ${node} contradicts --node ${defaultNode}`);
  const target = onNode(kind) ? ((node as string | undefined) ?? defaultNode) : undefined;
  if (onNode(kind) && !target) throw usageError(`${where} (${kind} ${name}) needs a node: pass --node N or set \`node\` in the document`, usage);
  const ref: SpecRef = { kind, name, node: target };
  return { ref, doc };
}

/** JSON with sorted keys, for comparing documents. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Doc)[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
const content = ({ _rev, _conflicts, ...rest }: Doc) => canonical(rest);

/** Fields the server or other commands manage, kept from the current document when the file omits them. */
const KEPT = ['_attachments', 'restartedAt'];

async function applyOne(api: Api, { ref, doc }: Item): Promise<{ result: Result; rev: string }> {
  const p = specPath(ref);
  const found = await api.find<Doc>(p);
  const current = (ref.kind === 'system' ? found?.spec : found) as Doc | undefined;
  if (!current) {
    const { _rev, ...fresh } = doc; // a revision from elsewhere (another node, a deleted document) means nothing here
    return { result: 'created', rev: (await api.put<{ rev: string }>(p, fresh)).rev };
  }
  const desired: Doc = { _id: `${ref.kind}:${ref.name}`, type: ref.kind, name: ref.name, ...doc };
  for (const k of KEPT) if (!(k in desired) && k in current) desired[k] = current[k];
  if (content(desired) === content(current)) return { result: 'unchanged', rev: String(current._rev) };
  return { result: 'updated', rev: (await api.put<{ rev: string }>(p, { ...desired, _rev: doc._rev ?? current._rev })).rev };
}

export const command: Command = {
  name: 'apply',
  summary: 'create or update systems, volumes and templates from JSON/YAML files',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { file: { type: 'string', short: 'f', multiple: true }, node: { type: 'string' }, json: { type: 'boolean' } }, usage);
    if (positionals.length) throw usageError(`unexpected arguments: ${positionals.join(' ')} (files go after -f)`, usage);
    if (!values.file?.length) throw usageError('-f FILE is required', usage);
    if (values.file.filter((f) => f === '-').length > 1) throw usageError('stdin (-f -) can be read once', usage);

    // Every document is read and named before anything is written: a malformed file changes nothing.
    const items: Item[] = [];
    for (const file of values.file) {
      const docs = documentsOf(file, await readSource(file));
      docs.forEach((d, i) => items.push(itemOf(d, `${file === '-' ? 'stdin' : file}${docs.length > 1 ? ` document ${i + 1}` : ''}`, values.node)));
    }
    if (!items.length) throw new CliError('INVALID_FILE', `no documents in ${values.file.join(', ')}`);

    const api = apiOf(values);
    const done: (SpecRef & { result: Result; rev: string })[] = [];
    for (const item of items) {
      try {
        const r = await applyOne(api, item);
        done.push({ ...item.ref, ...r });
        if (!values.json) console.log(`${specLabel(item.ref)}: ${r.result}`);
      } catch (err) {
        if (values.json) printJson(done);
        if (!(err instanceof CliError)) throw err;
        const rest = items.length - done.length - 1;
        throw new CliError(err.code, `${specLabel(item.ref)}: ${err.message}${rest ? `\n(stopped: ${rest} later document${rest > 1 ? 's were' : ' was'} not applied)` : ''}`, err.exitCode, { cause: err });
      }
    }
    if (values.json) printJson(done);
    return 0;
  },
};
