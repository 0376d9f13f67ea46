// `anybios agent` alone: the entry of the one-file bundle the boot image carries (boot/agent-bundle.ts),
// so the PE needs no node_modules and none of the other commands' dependencies.
import { command } from './commands/agent.ts';
import { CliError } from './command.ts';

try {
  process.exitCode = await command.run(process.argv.slice(2));
} catch (err) {
  const e = err as { code?: string; message?: string };
  if (err instanceof CliError || (typeof e?.code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(e.code))) {
    console.error(`anybios: ${e.code}: ${e.message}`);
    process.exitCode = err instanceof CliError ? err.exitCode : 1;
  } else {
    console.error('anybios: unexpected error:', err);
    process.exitCode = 1;
  }
}
