// Enrolling and removing nodes: each node gets its own database (the security boundary and the unit of
// replication), a `_security` that admits only its own user and operators, the node design doc, and a
// CouchDB user `node-<id>` with role `node`. Credentials are returned once and never stored here.
import { randomBytes } from 'node:crypto';
import type { ServerScope } from 'nano';
import { NAME_RE } from '../ddocs/schemas/index.ts';
import { nodeDbName, nodeUserName } from '../ddocs/build.ts';
import { ensureDb, pushDesignDoc } from './setup.ts';

export class NodeError extends Error {
  constructor(readonly code: 'NODE_NAME_INVALID' | 'NODE_EXISTS' | 'NODE_NOT_FOUND', message: string) {
    super(message);
  }
}

export interface NodeCredentials { node: string; db: string; user: string; password: string }

export function checkNodeId(id: string): void {
  if (!NAME_RE.test(id)) throw new NodeError('NODE_NAME_INVALID', `node id "${id}" must be 1-63 of a-z, 0-9 and -, starting with a letter or digit`);
}

export function nodeSecurity(id: string) {
  return { admins: { names: [], roles: [] }, members: { names: [nodeUserName(id)], roles: ['operator'] } };
}

export async function addNode(couch: ServerScope, id: string, opts: { password?: string } = {}): Promise<NodeCredentials> {
  checkNodeId(id);
  const db = nodeDbName(id);
  const user = nodeUserName(id);
  if (!(await ensureDb(couch, db))) throw new NodeError('NODE_EXISTS', `node ${id} exists already (database ${db}); remove it first with \`anybios node rm ${id}\``);
  await couch.request({ db, path: '_security', method: 'PUT', body: nodeSecurity(id) });
  await pushDesignDoc(couch, db, 'node');
  const password = opts.password ?? randomBytes(24).toString('base64url');
  const users = couch.use('_users');
  let rev: string | undefined;
  try {
    rev = (await users.get(`org.couchdb.user:${user}`))._rev;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  await users.insert({ _id: `org.couchdb.user:${user}`, ...(rev ? { _rev: rev } : {}), type: 'user', name: user, roles: ['node'], password } as never);
  return { node: id, db, user, password };
}

export async function removeNode(couch: ServerScope, id: string): Promise<void> {
  checkNodeId(id);
  const db = nodeDbName(id);
  let found = false;
  try {
    await couch.db.destroy(db);
    found = true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  const users = couch.use('_users');
  try {
    const doc = await users.get(`org.couchdb.user:${nodeUserName(id)}`);
    await users.destroy(doc._id, doc._rev);
    found = true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  if (!found) throw new NodeError('NODE_NOT_FOUND', `node ${id} does not exist`);
}

export async function listNodes(couch: ServerScope): Promise<string[]> {
  return (await couch.db.list()).filter((d) => d.startsWith('anybios-node-')).map((d) => d.slice('anybios-node-'.length));
}
