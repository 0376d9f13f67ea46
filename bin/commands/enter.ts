// `anybios enter NAME [-- CMD…]`: run a command (default /bin/sh) inside a running system with nsenter.
import { spawn } from 'node:child_process';
import type { Command } from '../command.ts';
import { CliError } from '../command.ts';
import { LOCAL_USAGE, cliErrors, openRuntime, parseLocal } from '../lib/runtime-cli.ts';

const usage = `usage: anybios enter NAME [--data DIR] [-- CMD [ARG…]]

Runs CMD (default /bin/sh) in the namespaces and root of the running system NAME (nsenter).
${LOCAL_USAGE}`;

export const command: Command = {
  name: 'enter',
  summary: 'run a shell or command inside a running system (local mode)',
  usage,
  async run(argv) {
    const dash = argv.indexOf('--');
    const own = dash >= 0 ? argv.slice(0, dash) : argv;
    const cmd = dash >= 0 ? argv.slice(dash + 1) : [];
    const { values, positionals } = parseLocal(own, {}, usage);
    if (positionals.length !== 1) throw new CliError('USAGE', usage, 2);
    const rt = await openRuntime(values);
    const args = await cliErrors(() => rt.enterArgs(positionals[0]!, cmd.length ? cmd : undefined));
    const env = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', TERM: process.env.TERM ?? 'xterm' };
    return new Promise<number>((resolve, reject) => {
      const child = spawn(args[0]!, args.slice(1), { stdio: 'inherit', env });
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  },
};
