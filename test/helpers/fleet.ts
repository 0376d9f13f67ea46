// A small fleet on one real server for API tests: two nodes and an operator, with Basic credentials for
// each, and a stop() that removes what it made (also from a shared external CouchDB).
import { addNode, removeNode } from '../../server/nodes.ts';
import { basic, removeDataDir, startServer, type TestServer } from './server.ts';

export interface FleetNames { a: string; b: string; operator: string }
export interface Fleet {
  server: TestServer;
  auth: { admin: string; a: string; b: string; op: string };
  stop(): Promise<void>;
}

export const OPERATOR_PASSWORD = 'operator-pass';

export async function startFleet(names: FleetNames): Promise<Fleet> {
  const server = await startServer();
  const ca = await addNode(server.admin, names.a);
  const cb = await addNode(server.admin, names.b);
  const users = server.admin.use('_users');
  await users.insert({ _id: `org.couchdb.user:${names.operator}`, type: 'user', name: names.operator, roles: ['operator'], password: OPERATOR_PASSWORD } as never);
  return {
    server,
    auth: { admin: server.adminAuth, a: basic(ca.user, ca.password), b: basic(cb.user, cb.password), op: basic(names.operator, OPERATOR_PASSWORD) },
    async stop() {
      for (const n of [names.a, names.b]) await removeNode(server.admin, n).catch(() => {});
      await users.get(`org.couchdb.user:${names.operator}`).then((d) => users.destroy(d._id, d._rev)).catch(() => {});
      await server.stop();
      removeDataDir(server.dataDir);
    },
  };
}
