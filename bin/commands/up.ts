// `anybios up`: the whole thing on one machine — server on the embedded default, demo fixtures seeded on
// first run, and (once the agent exists) a local agent enrolled for this machine.
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { seedDemo } from '../../server/seed.ts';
import { createAgent, type Agent } from '../../agent/agent.ts';
import { guardProcess } from '../lib/process-guard.ts';
import { SERVER_USAGE_OPTIONS, printAccess, serverOptions, startServerFromFlags, stopOnSignals } from './server.ts';

export const command: Command = {
  name: 'up',
  summary: 'server + demo node seeded on first run + a local agent (what `npm start` runs)',
  usage: `usage: anybios up [--port N] [--host ADDR] [--data DIR] [--no-agent]\n\n${SERVER_USAGE_OPTIONS}\n  --no-agent     do not start the local agent`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { ...serverOptions, 'no-agent': { type: 'boolean' } }, strict: true });
    guardProcess('anybios');
    const { server, dataDir } = await startServerFromFlags(values);
    const seed = await seedDemo(server.admin, dataDir);
    if (seed.seeded) console.log(`Seeded demo node "${seed.nodeId}" (systems system0, hello); its credentials are in ${dataDir}/nodes/${seed.nodeId}.json`);
    // The local agent: this machine is the demo node. Its runtime data dir is the server's data dir,
    // so the host template hides all of it (secrets included) from the systems.
    let agent: Agent | undefined;
    if (!values['no-agent']) {
      const cred = JSON.parse(readFileSync(join(dataDir, 'nodes', `${seed.nodeId}.json`), 'utf8')) as { user: string; password: string };
      // Under TLS the local agent uses the server's loopback listener (server.internalUrl).
      agent = await createAgent({ server: server.internalUrl, node: seed.nodeId, user: cred.user, password: cred.password, dataDir });
    }
    printAccess(server);
    console.log(`Web: ${server.url}/   REST API: ${server.url}/api   CLI: npx anybios ls   Node: ${seed.nodeId}${agent ? ' (agent running)' : ' (no agent)'}`);
    console.log(`anybios ready on ${server.url}`);
    stopOnSignals(async () => {
      await agent?.stop();
      await server.close();
    });
    await new Promise(() => {});
    return 0;
  },
};
