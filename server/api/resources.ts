// Spec documents through the API: systems and volumes in a node's database, templates in the catalog.
// Reads of single documents and every write go to CouchDB with the caller's credentials; the document
// is checked against the same schema first so errors come back as 400 with each field named.
import type { DocumentScope } from 'nano';
import { CATALOG_DB, nodeDbName } from '../../ddocs/build.ts';
import { docErrors } from '../../ddocs/validate.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import type { Caller } from './caller.ts';
import { ApiError, fromCouch, invalid, notFound } from './errors.ts';

export type SpecKind = 'system' | 'volume' | 'template';

export interface Where { db: string; kind: SpecKind; label: string }

export function checkName(name: string, what: string): string {
  if (!NAME_RE.test(name)) throw invalid(`${what} "${name.slice(0, 80)}" is not a valid name`, [{ path: '/name', message: 'must be a name: 1-63 of a-z, 0-9 and -, starting with a letter or digit' }]);
  return name;
}

export function whereNode(node: string, kind: 'system' | 'volume'): Where {
  checkName(node, 'node');
  return { db: nodeDbName(node), kind, label: `${kind} on node ${node}` };
}
export const whereCatalog: Where = { db: CATALOG_DB, kind: 'template', label: 'template' };

/** Makes a full document from an API body: fills `_id`, `type`, `name`; refuses contradictions. */
export function normalize(where: Where, body: unknown, name?: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object', [{ path: '/', message: 'must be an object' }]);
  const b = body as Record<string, unknown>;
  const n = name ?? b.name;
  if (typeof n !== 'string') throw invalid('name is required', [{ path: '/name', message: 'is required' }]);
  checkName(n, where.kind);
  if (b.name !== undefined && b.name !== n) throw invalid(`name in the body (${String(b.name)}) differs from the URL (${n})`, [{ path: '/name', message: 'differs from the URL' }]);
  const id = `${where.kind}:${n}`;
  if (b._id !== undefined && b._id !== id) throw invalid(`_id must be ${id}`, [{ path: '/_id', message: `must be ${id}` }]);
  if (b.type !== undefined && b.type !== where.kind) throw invalid(`type must be ${where.kind}`, [{ path: '/type', message: `must be "${where.kind}"` }]);
  const doc = { ...b, _id: id, type: where.kind, name: n };
  delete (doc as Record<string, unknown>)._conflicts;
  return doc;
}

export function validateOrThrow(doc: Record<string, unknown>): void {
  const errors = docErrors(doc);
  if (errors.length) throw invalid(`invalid ${String(doc.type)}: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, errors);
}

async function dbOf(caller: Caller, where: Where): Promise<DocumentScope<Record<string, unknown>>> {
  return caller.couch.use(where.db);
}

export async function getSpec(caller: Caller, where: Where, name: string): Promise<Record<string, unknown>> {
  checkName(name, where.kind);
  try {
    return (await (await dbOf(caller, where)).get(`${where.kind}:${name}`, { conflicts: true })) as Record<string, unknown>;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) {
      throw (err as { reason?: string }).reason === 'Database does not exist.' || (err as { reason?: string }).reason === 'no_db_file'
        ? notFound(where.label.replace(/^\w+ on /, ''))
        : notFound(`${where.label.split(' ')[0]} ${name}`);
    }
    throw fromCouch(err, `${where.kind} ${name}`);
  }
}

/** Creates (no `_rev`) or updates (with `_rev`) a spec; returns {id, rev}. */
export async function putSpec(caller: Caller, where: Where, doc: Record<string, unknown>, mode: 'create' | 'put'): Promise<{ id: string; rev: string }> {
  if (mode === 'create' && doc._rev !== undefined) throw invalid('a new document has no _rev', [{ path: '/_rev', message: 'must be absent on create' }]);
  validateOrThrow(doc);
  try {
    const r = await (await dbOf(caller, where)).insert(doc);
    return { id: r.id, rev: r.rev };
  } catch (err) {
    const e = err as { statusCode?: number; reason?: string };
    if (e.statusCode === 404) throw notFound(where.label.replace(/^\w+ on /, ''));
    if (e.statusCode === 409 && mode === 'create') throw new ApiError(409, 'conflict', `${where.kind} ${String(doc.name)} exists already`);
    if (e.statusCode === 409 && doc._rev === undefined) throw new ApiError(409, 'conflict', `${where.kind} ${String(doc.name)} exists; send its current _rev (or If-Match) to update it`);
    throw fromCouch(err, `${where.kind} ${String(doc.name)}`);
  }
}

export async function deleteSpec(caller: Caller, where: Where, name: string, rev?: string): Promise<{ rev: string }> {
  const current = rev ?? String((await getSpec(caller, where, name))._rev);
  try {
    const r = await (await dbOf(caller, where)).destroy(`${where.kind}:${name}`, current);
    return { rev: r.rev };
  } catch (err) {
    throw fromCouch(err, `${where.kind} ${name}`);
  }
}

/** The status document of a system, or null (read with the caller's credentials). */
export async function getStatus(caller: Caller, node: string, name: string): Promise<Record<string, unknown> | null> {
  try {
    return (await caller.couch.use(nodeDbName(node)).get(`status:${name}`)) as unknown as Record<string, unknown>;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw fromCouch(err);
  }
}
