// `anybios destroy NAME`: stop the system and remove its layer (its volumes only with --volumes).
import type { Command } from '../command.ts';
import { CliError } from '../command.ts';
import { LOCAL_USAGE, cliErrors, oneName, openRuntime, parseLocal } from '../lib/runtime-cli.ts';

const usage = `usage: anybios destroy NAME [--volumes] [--grace MS] [--data DIR]

Stops system NAME and removes its directory (its own layer, log and state). Volumes stay unless
--volumes is given. Destroying a system that does not exist is not an error.
  --volumes              also remove the volumes the system mounts
  --grace MS             grace period of the stop in milliseconds
${LOCAL_USAGE}`;

export const command: Command = {
  name: 'destroy',
  summary: 'stop a system and remove its layer (local mode)',
  usage,
  async run(argv) {
    const { values, positionals } = parseLocal(argv, { volumes: { type: 'boolean' }, grace: { type: 'string' } }, usage);
    const name = oneName(positionals, usage);
    const graceMs = values.grace === undefined ? undefined : Number(values.grace);
    if (graceMs !== undefined && !(graceMs >= 0)) throw new CliError('USAGE', `--grace must be a number of milliseconds\n\n${usage}`, 2);
    const rt = await openRuntime(values);
    await cliErrors(() => rt.destroy(name, { volumes: values.volumes, graceMs }));
    console.log(`${name}: destroyed${values.volumes ? ' (with its volumes)' : ''}`);
    return 0;
  },
};
