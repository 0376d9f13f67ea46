// Spec documents through the API: systems and volumes in a node's database, templates in the catalog.
// Reads of single documents and every write go to CouchDB with the caller's credentials; the document
// is checked against the same schema first so errors come back as 400 with each field named.
import type { DocumentScope } from 'nano';
import { CATALOG_DB, nodeDbName } from '../../ddocs/build.ts';
import { DocError, checkName as baseCheckName, checkSpec, normalizeSpec, type SpecKind } from '../../ddocs/normalize.ts';
import type { Caller } from './caller.ts';
import { ApiError, fromCouch, invalid, notFound } from './errors.ts';

export type { SpecKind };

export interface Where { db: string; kind: SpecKind; label: string }

/** checkName from ddocs/normalize.ts, answering 400 with the field named. */
export function checkName(name: string, what: string): string {
  return asApi(() => baseCheckName(name, what));
}

function asApi<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof DocError) throw invalid(err.message, err.details);
    throw err;
  }
}

export function whereNode(node: string, kind: 'system' | 'volume'): Where {
  checkName(node, 'node');
  return { db: nodeDbName(node), kind, label: `${kind} on node ${node}` };
}
export const whereCatalog: Where = { db: CATALOG_DB, kind: 'template', label: 'template' };

/** Makes a full document from an API body: fills `_id`, `type`, `name`; refuses contradictions. */
export function normalize(where: Where, body: unknown, name?: string): Record<string, unknown> {
  return asApi(() => normalizeSpec(where.kind, body, name));
}

export function validateOrThrow(doc: Record<string, unknown>): void {
  asApi(() => checkSpec(doc));
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
