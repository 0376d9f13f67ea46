// A node's credential over its life (docs/security.md): rotate (a new password the agent picks up and
// switches to itself), revoke (a stolen device: the user is disabled, its database and history stay),
// restore (a revoked node back, with a new password). All of it is the node user's `_users` document,
// which replicates to every linked site, so the fleet follows.
// Who can read a pending rotation's password: the `_users` document is readable by its own user and
// by admins only (CouchDB's rule, and the embedded one's), i.e. the node and the people who could
// reset its password anyway.
import { randomBytes } from 'node:crypto';
import type { ServerScope } from 'nano';
import { nodeDbName, nodeUserName } from '../ddocs/build.ts';
import { checkNodeId, NodeError, type NodeCredentials } from './nodes.ts';

export interface NodeUserDoc {
  _id: string;
  _rev: string;
  name: string;
  roles: string[];
  derived_key?: string;
  /** Set by `node rotate`, removed by the agent when it has switched to `password`. */
  rotation?: { password: string; requested: string };
  /** Set by `node revoke`: when the node was cut off. */
  revoked?: string;
  [k: string]: unknown;
}

export class CredentialError extends Error {
  constructor(readonly code: 'NODE_REVOKED' | 'NODE_NOT_REVOKED', message: string) {
    super(message);
  }
}

const newPassword = () => randomBytes(24).toString('base64url');

export async function nodeUser(couch: ServerScope, id: string): Promise<NodeUserDoc> {
  checkNodeId(id);
  try {
    return (await couch.use('_users').get(`org.couchdb.user:${nodeUserName(id)}`)) as unknown as NodeUserDoc;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) throw new NodeError('NODE_NOT_FOUND', `node ${id} has no user (enrol it with \`anybios node add ${id}\`)`);
    throw err;
  }
}

const put = (couch: ServerScope, doc: Record<string, unknown>) => couch.use('_users').insert(doc as never);

/**
 * Offers the node a new password in its user document. The old one keeps working until the agent has
 * switched (it changes its own password, so there is no moment when neither works); `now` sets it at
 * once instead (for a node that is away: it then needs the new config).
 */
export async function rotateNode(couch: ServerScope, id: string, opts: { now?: boolean } = {}): Promise<{ password: string; before: string | undefined }> {
  const doc = await nodeUser(couch, id);
  if (doc.revoked) throw new CredentialError('NODE_REVOKED', `node ${id} is revoked (since ${doc.revoked}); \`anybios node restore ${id}\` gives it a new credential`);
  const password = newPassword();
  const { rotation: _old, ...rest } = doc;
  if (opts.now) await put(couch, { ...rest, password });
  else await put(couch, { ...rest, rotation: { password, requested: new Date().toISOString() } });
  return { password, before: doc.derived_key };
}

/** The agent has switched when its derived key changed and the offer is gone. */
export async function rotationDone(couch: ServerScope, id: string, before: string | undefined): Promise<boolean> {
  const doc = await nodeUser(couch, id);
  return !doc.rotation && doc.derived_key !== before;
}

/**
 * Cuts the node off everywhere its user replicates: an unknown password (so its sessions, signed with
 * the old salt, die too), no roles, and `revoked`. A server ends the node's requests in progress as
 * soon as the document is written there (server/couch/embedded/live-callers.ts). Its database stays.
 */
export async function revokeNode(couch: ServerScope, id: string): Promise<{ revoked: string }> {
  const doc = await nodeUser(couch, id);
  const { rotation: _drop, ...rest } = doc;
  const revoked = doc.revoked ?? new Date().toISOString();
  await put(couch, { ...rest, roles: [], revoked, password: randomBytes(32).toString('base64url') });
  return { revoked };
}

/** Undoes a revocation with a new password (the device's old one stays dead). */
export async function restoreNode(couch: ServerScope, id: string): Promise<NodeCredentials> {
  const doc = await nodeUser(couch, id);
  if (!doc.revoked) throw new CredentialError('NODE_NOT_REVOKED', `node ${id} is not revoked; \`anybios node rotate ${id}\` gives it a new password`);
  const { rotation: _r, revoked: _v, ...rest } = doc;
  const password = newPassword();
  await put(couch, { ...rest, roles: ['node'], password });
  return { node: id, db: nodeDbName(id), user: nodeUserName(id), password };
}

/** Each node's credential state, for `node ls`: active, a rotation offered and not yet taken, or revoked. */
export async function credentialStates(couch: ServerScope, ids: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!ids.length) return out;
  const res = await couch.use('_users').fetch({ keys: ids.map((id) => `org.couchdb.user:${nodeUserName(id)}`) });
  ids.forEach((id, i) => {
    const doc = (res.rows[i] as { doc?: NodeUserDoc | null }).doc;
    out.set(id, !doc ? 'no user' : doc.revoked ? `revoked ${doc.revoked}` : doc.rotation ? `rotation pending since ${doc.rotation.requested}` : 'active');
  });
  return out;
}
