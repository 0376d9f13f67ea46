// `anybios up`: the whole thing on one machine — server on the embedded default, demo fixtures seeded on
// first run, and (once the agent exists) a local agent enrolled for this machine.
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { seedDemo } from '../../server/seed.ts';
import { SERVER_USAGE_OPTIONS, printAccess, serverOptions, startServerFromFlags, stopOnSignals } from './server.ts';

export const command: Command = {
  name: 'up',
  summary: 'start the server, seed the demo node on first run (what `npm start` runs)',
  usage: `usage: anybios up [--port N] [--host ADDR] [--data DIR]\n\n${SERVER_USAGE_OPTIONS}`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: serverOptions, strict: true });
    const { server, dataDir } = await startServerFromFlags(values);
    const seed = await seedDemo(server.admin, dataDir);
    if (seed.seeded) console.log(`Seeded demo node "${seed.nodeId}" (systems system0, hello); its credentials are in ${dataDir}/nodes/${seed.nodeId}.json`);
    printAccess(server);
    console.log(`anybios ready on ${server.url}`);
    stopOnSignals(() => server.close());
    await new Promise(() => {});
    return 0;
  },
};
