// anybios command line: dispatches to bin/commands/<name>.ts. Errors print as `anybios: CODE: message`.
import { CliError, type Command } from './command.ts';

type Loader = () => Promise<{ command: Command }>;

// Loaded lazily so that `anybios ps` does not pay for the server's dependencies.
const COMMANDS: Record<string, Loader> = {
  server: () => import('./commands/server.ts'),
  node: () => import('./commands/node.ts'),
  up: () => import('./commands/up.ts'),
};

/** Commands added by other parts register here (keeps this file the one list). */
export const LOCAL_RUNTIME_COMMANDS = ['run', 'ps', 'logs', 'enter', 'stop', 'destroy'] as const;
for (const name of LOCAL_RUNTIME_COMMANDS) COMMANDS[name] ??= () => import(`./commands/${name}.ts`);

async function help(): Promise<string> {
  const lines = ['usage: anybios COMMAND [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    try {
      const { command } = await load();
      lines.push(`  ${name.padEnd(10)} ${command.summary}`);
    } catch {
      // a command whose module is not there yet is simply not listed
    }
  }
  lines.push('', 'Run `anybios COMMAND --help` for the options of one command.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0] && COMMANDS[rest[0]]) {
      console.log((await COMMANDS[rest[0]]()).command.usage);
      return 0;
    }
    console.log(await help());
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`anybios: unknown command "${name}"\n\n${await help()}`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof CliError) {
      console.error(`anybios: ${err.code}: ${err.message}`);
      return err.exitCode;
    }
    const e = err as { code?: string; message?: string };
    if (e && typeof e.code === 'string' && typeof e.message === 'string' && /^[A-Z][A-Z0-9_]+$/.test(e.code)) {
      console.error(`anybios: ${e.code}: ${e.message}`);
      return 1;
    }
    console.error('anybios: unexpected error:', err);
    return 1;
  }
}
