// Enrolling and removing nodes from the API (the web console's "Nodes" page), server admins only:
//   POST   /api/nodes {id}   creates the node's database, _security, ddoc and user; answers the agent
//                            config ONCE (the password is not stored anywhere but in _users, hashed)
//   DELETE /api/nodes/:node  removes its database and user
// Both act with the caller's own credentials (server/nodes.ts), so CouchDB has the last word.
import type express from 'express';
import type { Request } from 'express';
import { NodeError, addNode, removeNode } from '../nodes.ts';
import type { Caller } from './caller.ts';
import type { ApiContext } from './context.ts';
import { ApiError, invalid, notFound } from './errors.ts';

const adminOnly = (caller: Caller) => {
  if (!caller.roles.includes('_admin')) throw new ApiError(403, 'forbidden', 'only server admins enrol or remove nodes');
};

const asApi = (err: unknown): never => {
  if (err instanceof NodeError) {
    if (err.code === 'NODE_EXISTS') throw new ApiError(409, 'conflict', err.message);
    if (err.code === 'NODE_NOT_FOUND') throw notFound(err.message.replace(/ does not exist$/, ''));
    throw invalid(err.message, [{ path: '/id', message: 'must be a name: 1-63 of a-z, 0-9 and -, starting with a letter or digit' }]);
  }
  throw err;
};

/** The URL an agent should use: this server as the caller reached it. */
const serverUrl = (req: Request) => `${req.protocol}://${req.get('host') ?? 'localhost'}`;

export function mountEnrolRoutes(router: express.Router, ctx: ApiContext): void {
  const { h, param } = ctx;
  router.post('/nodes', h(async (req, _res, caller) => {
    adminOnly(caller);
    const id = (req.body as { id?: unknown } | undefined)?.id;
    if (typeof id !== 'string') throw invalid('enrol needs {"id": "<node>"}', [{ path: '/id', message: 'is required' }]);
    const cred = await addNode(caller.couch, id).catch(asApi);
    return { ok: true, node: cred.node, db: cred.db, config: { server: serverUrl(req), node: cred.node, user: cred.user, password: cred.password } };
  }, 201));
  router.delete('/nodes/:node', h(async (req, _res, caller) => {
    adminOnly(caller);
    await removeNode(caller.couch, param(req, 'node')).catch(asApi);
    return { ok: true, node: param(req, 'node') };
  }));
}
