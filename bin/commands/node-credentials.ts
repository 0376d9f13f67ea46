// `anybios node rotate|revoke|restore ID` (docs/security.md), and the agent config `node add` and
// `node restore` print.
import type { ServerScope } from 'nano';
import { CliError } from '../command.ts';
import type { Connection } from '../lib/connection.ts';
import type { NodeCredentials } from '../../server/nodes.ts';
import { CredentialError, restoreNode, revokeNode, rotateNode, rotationDone } from '../../server/node-credentials.ts';
import { agentTrust } from './node-trust.ts';

export const CREDENTIAL_USAGE = `       anybios node rotate ID [--wait SECONDS | --now]   a new password: the agent picks it up and switches
                                      (waits up to --wait, default 60, for it); --now sets it at once (the node
                                      then needs the printed config)
       anybios node revoke ID         cut a node off (a stolen device): its user is disabled at every linked
                                      site, its sessions and live replications end; its database stays
       anybios node restore ID        undo revoke with a new credential; prints the agent config
  --server URL   (add, restore, rotate --now; repeatable) the server URL(s) put in the agent config; default
                 --url (e.g. --url https://127.0.0.1:8080 on the server, --server https://203.0.113.7:8080)`;

/**
 * `servers`: the URLs the agent uses (--server, repeatable; default the CLI's --url). The trust is the
 * one the CLI verified this server with: the same certificate whatever name reaches it.
 */
export function printAgentConfig(conn: Connection, cred: NodeCredentials, json: boolean | undefined, heading: string, servers: string[] = []): void {
  const server = servers.length > 1 ? servers : servers[0] ?? conn.url;
  const config = { server, node: cred.node, user: cred.user, password: cred.password, ...agentTrust([server].flat()[0], conn.trust) };
  if (json) {
    console.log(JSON.stringify(config, null, 2));
    return;
  }
  console.log(heading);
  console.log('Agent config (shown once; save it as the agent\'s --config file, mode 0600):');
  console.log(JSON.stringify(config, null, 2));
}

export async function credentialCommand(sub: string, id: string, couch: ServerScope, conn: Connection, o: { json?: boolean; wait?: string; now?: boolean; server?: string[] }): Promise<number> {
  try {
    if (sub === 'revoke') {
      const r = await revokeNode(couch, id);
      console.log(`Node ${id} revoked (since ${r.revoked}): its user can no longer log in here or at linked sites once replicated; its sessions and live replications ended. Its database and history are kept; \`anybios node restore ${id}\` undoes it.`);
      return 0;
    }
    if (sub === 'restore') {
      const cred = await restoreNode(couch, id);
      printAgentConfig(conn, cred, o.json, `Node ${id} restored with a new password; start its agent with this config.`, o.server);
      return 0;
    }
    // rotate
    if (o.now && o.wait !== undefined) throw new CliError('USAGE', '--now and --wait do not go together', 2);
    const waitS = o.wait === undefined ? 60 : Number(o.wait);
    if (!/^\d+$/.test(o.wait ?? '60') || waitS > 3600) throw new CliError('USAGE', '--wait must be 0-3600 seconds', 2);
    const r = await rotateNode(couch, id, { now: o.now });
    if (o.now) {
      printAgentConfig(conn, { node: id, db: `anybios-node-${id}`, user: `node-${id}`, password: r.password }, o.json, `Node ${id}: new password set now; the old one no longer works. Give its agent this config.`, o.server);
      return 0;
    }
    const end = Date.now() + waitS * 1000;
    while (Date.now() < end) {
      if (await rotationDone(couch, id, r.before)) {
        console.log(`Node ${id} switched to its new password; the old one no longer works.`);
        return 0;
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    console.log(`Node ${id} has not picked up its new password yet (is its agent offline?). The offer stays: the agent switches when it next reaches a server; until then the old password works. \`anybios node rotate ${id} --now\` forces it, \`anybios node revoke ${id}\` cuts it off.`);
    return 3;
  } catch (err) {
    if (err instanceof CredentialError) throw new CliError(err.code, err.message);
    throw err;
  }
}
