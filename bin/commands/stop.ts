// `anybios stop NAME`: SIGTERM to the system's pid 1, SIGKILL after the grace period.
import type { Command } from '../command.ts';
import { CliError } from '../command.ts';
import { LOCAL_USAGE, cliErrors, oneName, openRuntime, parseLocal } from '../lib/runtime-cli.ts';

const usage = `usage: anybios stop NAME [--grace MS] [--data DIR]

Stops system NAME: SIGTERM to its pid 1, SIGKILL after the grace period (default 10000 ms).
Stopping a stopped system is not an error.
  --grace MS             grace period in milliseconds
${LOCAL_USAGE}`;

export const command: Command = {
  name: 'stop',
  summary: 'stop a system (local mode)',
  usage,
  async run(argv) {
    const { values, positionals } = parseLocal(argv, { grace: { type: 'string' } }, usage);
    const name = oneName(positionals, usage);
    const graceMs = values.grace === undefined ? undefined : Number(values.grace);
    if (graceMs !== undefined && !(graceMs >= 0)) throw new CliError('USAGE', `--grace must be a number of milliseconds\n\n${usage}`, 2);
    const rt = await openRuntime(values);
    const o = await cliErrors(() => rt.stop(name, { graceMs }));
    console.log(o ? `${name}: ${o.phase}${o.exitCode !== null ? ` (exit ${o.exitCode})` : ''}` : `${name}: no such system (nothing to stop)`);
    return 0;
  },
};
