// What an import may write. On the server: exactly what the node's own replication may write — each
// new revision goes through the node database's validate_doc_update with the node's userCtx
// (`node-<id>`, role node), so a bundle can do nothing its node could not do online. On the device:
// only documents of this node (its database's types, `node:<this id>`, valid by the same schemas), and
// templates in the catalog copy; no privileged system (the MAC proves the node's credential made the
// bundle — the server or the device itself — so it cannot prove an admin asked for root of the host).
import { DdocFunction, DdocFunctionError } from '../ddocs/sandbox.ts';
import { docErrors } from '../ddocs/validate.ts';
import { NODE_TYPES, CATALOG_TYPES } from '../ddocs/schemas/index.ts';
import type { DocRecord } from './format.ts';

export interface Refusal { db: DocRecord['db']; id: string; rev: string; reason: string }

const typeOf = (id: string) => (id.indexOf(':') > 0 ? id.slice(0, id.indexOf(':')) : '');

/** The content a schema sees: the document without the bundle's attachment details. */
function forSchema(doc: Record<string, unknown>): Record<string, unknown> {
  const { _revisions, ...rest } = doc;
  void _revisions;
  return rest;
}

export function deviceRefusals(records: DocRecord[], node: string): Refusal[] {
  const out: Refusal[] = [];
  for (const { db, doc } of records) {
    const refuse = (reason: string) => out.push({ db, id: doc._id, rev: doc._rev, reason });
    const type = typeOf(doc._id);
    if (db === 'catalog') {
      if (!(CATALOG_TYPES as readonly string[]).includes(type)) { refuse('the catalog copy holds template:<name> documents only'); continue; }
    } else {
      if (!(NODE_TYPES as readonly string[]).includes(type)) { refuse(`a node database holds system:, volume:, node: and status: documents only`); continue; }
      if (type === 'node' && doc._id !== `node:${node}`) { refuse(`this device is node ${node}: it holds node:${node} only`); continue; }
    }
    if (doc._deleted) continue;
    if (type === 'system' && doc.privileged === true) { refuse('/privileged: a privileged system cannot come by bundle (its MAC cannot prove an admin wrote it); use the live link'); continue; }
    const errs = docErrors(forSchema(doc));
    if (errs.length) refuse(errs.map((e) => `${e.path} ${e.message}`).join('; '));
  }
  return out;
}

/**
 * Runs the node database's own validate_doc_update (from its design document, as CouchDB would) on
 * each document with the node's userCtx. `oldDoc` is null: the anybios rules do not look at it.
 */
export function ddocRefusals(records: DocRecord[], node: string, dbName: string, ddoc: Record<string, unknown> | null, security: unknown): Refusal[] {
  const out: Refusal[] = [];
  const source = ddoc && typeof ddoc.validate_doc_update === 'string' ? ddoc.validate_doc_update : null;
  const fn = source ? new DdocFunction(ddoc!, source) : null;
  const userCtx = { db: dbName, name: `node-${node}`, roles: ['node'] };
  for (const { db, doc } of records) {
    const refuse = (reason: string) => out.push({ db, id: doc._id, rev: doc._rev, reason });
    if (db !== 'node') { refuse('a node bundle carries its node database only'); continue; }
    if (doc._id.startsWith('_design/')) { refuse('only admins write design documents'); continue; }
    if (!fn) continue;
    try {
      fn.run(doc, null, userCtx, security);
    } catch (err) {
      if (!(err instanceof DdocFunctionError)) throw err;
      refuse(err.message);
    }
  }
  return out;
}

export function refusalMessage(refusals: Refusal[]): string {
  const shown = refusals.slice(0, 5).map((r) => `${r.id} ${r.rev}: ${r.reason}`).join('; ');
  return `${refusals.length} document(s) refused, nothing written: ${shown}${refusals.length > 5 ? `; and ${refusals.length - 5} more` : ''}`;
}
