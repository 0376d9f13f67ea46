// `anybios logs [-f] NAME`: what the system wrote to stdout and stderr.
import type { Command } from '../command.ts';
import { LOCAL_USAGE, cliErrors, oneName, openRuntime, parseLocal } from '../lib/runtime-cli.ts';

const usage = `usage: anybios logs [-f] NAME [--data DIR]

Prints the log of system NAME (stdout and stderr, size-capped and rotated once).
  -f, --follow           keep printing what gets appended (Ctrl-C to stop)
${LOCAL_USAGE}`;

export const command: Command = {
  name: 'logs',
  summary: 'print the log of a system (local mode)',
  usage,
  async run(argv) {
    const { values, positionals } = parseLocal(argv, { follow: { type: 'boolean', short: 'f' } }, usage);
    const name = oneName(positionals, usage);
    const rt = await openRuntime(values);
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await cliErrors(async () => {
        for await (const chunk of rt.logs(name, { follow: values.follow, signal: ac.signal })) process.stdout.write(chunk);
      });
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  },
};
