// `anybios node add|rm|ls`: enrol a node (its database, _security, design doc and CouchDB user).
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../command.ts';
import { addNode, listNodes, NodeError, removeNode } from '../../server/nodes.ts';
import { agentTrust } from './node-trust.ts';
import { CONNECTION_USAGE, connectionOptions, couchOf, explainHttpError, resolveConnection } from '../lib/connection.ts';

const usage = `usage: anybios node add ID [--json]   create node ID; prints its credentials and agent config once
       anybios node rm ID             remove node ID's database and user
       anybios node ls [--json]       list enrolled nodes

${CONNECTION_USAGE}`;

export const command: Command = {
  name: 'node',
  summary: 'enrol (add), remove (rm) or list (ls) nodes — admin',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: { ...connectionOptions, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
    const [sub, id, ...extra] = positionals;
    if (extra.length) throw new CliError('USAGE', `unexpected arguments: ${extra.join(' ')}\n\n${usage}`, 2);
    const conn = resolveConnection(values);
    const couch = couchOf(conn);
    try {
      if (sub === 'add' && id) {
        const cred = await addNode(couch, id);
        const config = { server: conn.url, node: cred.node, user: cred.user, password: cred.password, ...agentTrust(conn.url, conn.trust) };
        if (values.json) console.log(JSON.stringify(config, null, 2));
        else {
          console.log(`Node ${id} enrolled: database ${cred.db}, user ${cred.user}.`);
          console.log('Agent config (shown once; save it as the agent\'s --config file, mode 0600):');
          console.log(JSON.stringify(config, null, 2));
        }
        return 0;
      }
      if (sub === 'rm' && id) {
        await removeNode(couch, id);
        console.log(`Node ${id} removed (database and user).`);
        return 0;
      }
      if (sub === 'ls' && !id) {
        const nodes = await listNodes(couch);
        console.log(values.json ? JSON.stringify(nodes) : nodes.join('\n') || '(no nodes)');
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
