// `anybios ps`: the systems of this machine's data dir, observed (pid + start time, exit code, disk).
import type { Command } from '../command.ts';
import { LOCAL_USAGE, bytes, cliErrors, openRuntime, parseLocal, textTable } from '../lib/runtime-cli.ts';

const usage = `usage: anybios ps [--json] [--data DIR]

Lists the systems in the data directory with their phase, pid 1 (host pid), restarts, exit code,
disk used by their own layer and the spec revision applied.
  --json                 print JSON
${LOCAL_USAGE}`;

export const command: Command = {
  name: 'ps',
  summary: 'list the systems on this machine (local mode)',
  usage,
  async run(argv) {
    const { values } = parseLocal(argv, { json: { type: 'boolean' } }, usage);
    const rt = await openRuntime(values);
    const list = await cliErrors(() => rt.list());
    if (values.json) {
      console.log(JSON.stringify(list, null, 2));
      return 0;
    }
    const rows = list.map((o) => [o.name, o.phase, o.kind, o.template, o.pid, o.restarts, o.exitCode, bytes(o.diskUsed), o.specRev, o.code ? `${o.code}: ${o.message}` : o.message]);
    console.log(textTable(['NAME', 'PHASE', 'KIND', 'TEMPLATE', 'PID', 'RESTARTS', 'EXIT', 'DISK', 'REV', 'MESSAGE'], rows));
    return 0;
  },
};
