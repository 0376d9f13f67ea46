// `anybios node add|rm|ls`: enrol a node (its database, _security, design doc and CouchDB user).
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../command.ts';
import { addNode, listNodes, NodeError, removeNode } from '../../server/nodes.ts';
import { credentialStates } from '../../server/node-credentials.ts';
import { CREDENTIAL_USAGE, credentialCommand, printAgentConfig } from './node-credentials.ts';
import { CONNECTION_USAGE, connectionOptions, couchOf, explainHttpError, resolveConnection } from '../lib/connection.ts';

const usage = `usage: anybios node add ID [--json]   create node ID; prints its credentials and agent config once
       anybios node rm ID             remove node ID's database and user
       anybios node ls [--json]       list enrolled nodes and their credential (active, rotation pending, revoked)
${CREDENTIAL_USAGE}

${CONNECTION_USAGE}`;

export const command: Command = {
  name: 'node',
  summary: 'enrol (add), remove (rm), list (ls) nodes; rotate, revoke, restore their credentials — admin',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: { ...connectionOptions, json: { type: 'boolean' }, wait: { type: 'string' }, now: { type: 'boolean' }, server: { type: 'string', multiple: true } }, allowPositionals: true, strict: true });
    const [sub, id, ...extra] = positionals;
    if (extra.length) throw new CliError('USAGE', `unexpected arguments: ${extra.join(' ')}\n\n${usage}`, 2);
    const conn = resolveConnection(values);
    const couch = couchOf(conn);
    try {
      if (sub === 'add' && id) {
        const cred = await addNode(couch, id);
        printAgentConfig(conn, cred, values.json, `Node ${id} enrolled: database ${cred.db}, user ${cred.user}.`, values.server);
        return 0;
      }
      if ((sub === 'rotate' || sub === 'revoke' || sub === 'restore') && id) return await credentialCommand(sub, id, couch, conn, values);
      if (sub === 'rm' && id) {
        await removeNode(couch, id);
        console.log(`Node ${id} removed (database and user).`);
        return 0;
      }
      if (sub === 'ls' && !id) {
        const nodes = await listNodes(couch);
        const states = await credentialStates(couch, nodes);
        console.log(values.json ? JSON.stringify(nodes) : nodes.map((n) => `${n}  ${states.get(n)}`).join('\n') || '(no nodes)');
        return 0;
      }
      throw new CliError('USAGE', usage, 2);
    } catch (err) {
      if (err instanceof NodeError) throw new CliError(err.code, err.message);
      if (err instanceof CliError) throw err;
      explainHttpError(err, conn);
    }
  },
};
