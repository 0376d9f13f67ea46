// The `_replicator` database's own rules, CouchDB 3.5's (couch_replicator_docs before_doc_update /
// after_doc_read) with two additions for the reach rule (endpoint.ts):
// - on write: the `owner` of a document is its writer (set when missing; `null` becomes the writer when a
//   server admin writes); a document whose owner is another user is refused ("Can't update replication
//   documents from other users.") — unless a SERVER admin writes it (CouchDB lets any database admin
//   do so; here only a server admin may, because a server admin's documents may reach loopback); the
//   document must be a valid replication (else 403 forbidden with the reason), and for an owner who is
//   not a server admin its endpoints may not name a loopback, link-local or unspecified host;
//   `new_edits=false` writes (replication INTO `_replicator`) need a server admin here, since they would
//   carry an `owner` nobody checked (CouchDB skips its checks for them);
// - on read: whoever is not a database admin and not the owner gets the document without credentials
//   (user:password in URLs, `headers` and `auth` of object endpoints) and under a made-up revision, so
//   it cannot be written back as is. Every other read path of `_replicator` (`_all_docs`, `_changes`,
//   `_bulk_get`, `open_revs`, views, Mango, attachments) is for database admins only (CouchDB: server
//   admins only for `_all_docs` and `_changes`), so no path shows another user's credentials.
import { createHash } from 'node:crypto';
import { CouchError, forbidden } from '../../errors.ts';
import { isObject } from '../../http.ts';
import type { UserCtx } from '../auth.ts';
import { forbiddenHost } from './endpoint.ts';
import { parseRepSpec } from './spec.ts';

export { REPLICATOR_DB } from './report.ts';

const isServerAdmin = (u: UserCtx) => u.roles.includes('_admin');

/** Checks (and completes) a document written to `_replicator` by `user`. */
export function admitReplicatorDoc(doc: Record<string, unknown>, user: UserCtx, newEdits: boolean): Record<string, unknown> {
  const id = String(doc._id ?? '');
  if (id.startsWith('_design/') || id.startsWith('_local/')) return doc;
  if (!newEdits) {
    if (!isServerAdmin(user)) throw forbidden('only a server admin may replicate into _replicator (new_edits=false)');
    return doc;
  }
  let out = doc;
  const owner = doc.owner;
  if (owner === undefined || (owner === null && isServerAdmin(user))) out = { ...doc, owner: user.name };
  else if (owner !== user.name && !isServerAdmin(user)) throw forbidden("Can't update replication documents from other users.");
  if (out._deleted === true || out._replication_state === 'failed') return out;
  let spec;
  try {
    spec = parseRepSpec(out);
  } catch (err) {
    if (err instanceof CouchError) throw forbidden(err.reason);
    throw err;
  }
  if (!isServerAdmin(user)) {
    const host = forbiddenHost(spec.source) ?? forbiddenHost(spec.target);
    if (host) throw forbidden(`${host}: a replication not owned by a server admin may not reach loopback, link-local or unspecified addresses`);
  }
  return out;
}

/** Strips credentials from an endpoint (CouchDB's strip_credentials, plus user:password in an object's url). */
function strip(e: unknown): unknown {
  if (typeof e === 'string') return e.replace(/^(https?:\/\/)[^@/?#]*@/i, '$1');
  if (isObject(e)) {
    const { headers: _h, auth: _a, ...rest } = e;
    if (typeof rest.url === 'string') rest.url = strip(rest.url);
    return rest;
  }
  return e;
}

/** What `reader` may see of a stored `_replicator` document (see the header). */
export function redactReplicatorDoc(doc: Record<string, unknown>, reader: UserCtx, isDbAdmin: boolean): Record<string, unknown> {
  const id = String(doc._id ?? '');
  if (id.startsWith('_design/') || isDbAdmin) return doc;
  if (reader.name !== null && doc.owner === reader.name) return doc;
  const out: Record<string, unknown> = { ...doc, source: strip(doc.source), target: strip(doc.target) };
  if (doc.source === undefined) delete out.source;
  if (doc.target === undefined) delete out.target;
  if (typeof doc._rev === 'string') {
    const pos = doc._rev.split('-')[0];
    out._rev = `${pos}-${createHash('md5').update(JSON.stringify(out)).digest('hex')}`;
  }
  delete out._revisions;
  return out;
}
