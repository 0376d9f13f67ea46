// anybios command line: dispatches to bin/commands/<name>.ts. Errors print as `anybios: CODE: message`.
import { CliError, type Command } from './command.ts';

type Loader = () => Promise<{ command: Command }>;

/** Loads bin/commands/<file>.ts (a template string keeps each command module independent of the others). */
const load = (file: string): Promise<{ command: Command }> => import(`./commands/${file}.ts`);

// Loaded lazily so that `anybios ps` does not pay for the server's dependencies.
const COMMANDS: Record<string, Loader> = {
  server: () => load('server'),
  node: () => load('node'),
  up: () => load('up'),
  agent: () => load('agent'),
  local: () => load('local'),
  // Fleet commands, through the server's REST API.
  apply: () => load('apply'),
  ls: () => load('ls'),
  get: () => load('get'),
  rm: () => load('rm'),
  start: () => load('start'),
  restart: () => load('restart'),
  move: () => load('move'),
  site: () => load('site'),
  conflicts: () => load('conflicts'),
  history: () => load('history'),
  template: () => load('template'),
  // Bundles: a node's database by file, for nodes no network reaches (issue 16).
  export: () => load('export'),
  import: () => load('import'),
};

/**
 * `stop` exists twice: through the server (`anybios stop NAME --node N`) and on this machine's runtime
 * (`anybios stop NAME --local [--data DIR]`, issue 4's local mode). `--local` or `--data` picks the latter.
 */
function pick(name: string, argv: string[]): Loader | undefined {
  if (name === 'stop') {
    const local = argv.includes('--local') || argv.some((a) => a === '--data' || a.startsWith('--data='));
    return local ? () => load('stop') : () => load('stop-system');
  }
  // `template import` (issue 14): its own module, so a later `template` command can take the other verbs.
  if (name === 'template' && argv[0] === 'import') return () => load('template-import');
  return COMMANDS[name];
}

/** Commands added by other parts register here (keeps this file the one list). */
export const LOCAL_RUNTIME_COMMANDS = ['run', 'ps', 'logs', 'enter', 'stop', 'destroy'] as const;
for (const name of LOCAL_RUNTIME_COMMANDS) COMMANDS[name] ??= () => load(name);
// Issue 14: the boot image (PE) and OS template import.
COMMANDS.image ??= () => load('image');
COMMANDS.template ??= () => load('template-import');

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
  const load = pick(name, rest);
  if (!load) {
    console.error(`anybios: unknown command "${name}"\n\n${await help()}`);
    return 2;
  }
  const { command } = await load();
  const args = name === 'stop' ? rest.filter((a) => a !== '--local') : rest;
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(args);
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
