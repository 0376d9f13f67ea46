// Argument parsing shared by the fleet commands: strict node:util parseArgs plus the connection flags,
// with every parse failure turned into a usage error (exit code 2).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from '../command.ts';
import { connectionOptions } from './connection.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** A usage error (exit code 2): the message, the synopsis lines of `usage`, and where the rest is. */
export function usageError(message: string, usage: string): CliError {
  const synopsis = usage.slice(0, (usage + '\n\n').indexOf('\n\n'));
  const name = /anybios (\S+)/.exec(synopsis)?.[1] ?? 'COMMAND';
  return new CliError('USAGE', `${message}\n${synopsis}\nRun \`anybios ${name} --help\` for the options and examples.`, 2);
}

/** Parses `argv` with the connection options and `options`; strict, positionals allowed. */
export function parseCommand<O extends Options>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options: { ...connectionOptions, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code?.startsWith('ERR_PARSE_ARGS')) throw usageError(e.message ?? String(err), usage);
    throw err;
  }
}

/** Matches `system`/`systems` style words to one of `kinds` (singular); undefined when it is none. */
export function kindOf<K extends string>(word: string | undefined, kinds: readonly K[]): K | undefined {
  return kinds.find((k) => word === k || word === `${k}s`);
}

/** `[KIND] NAME` positionals: KIND one of `kinds` (singular or plural), `fallback` when only NAME is given. */
export function kindAndName<K extends string>(positionals: string[], kinds: readonly K[], fallback: K, usage: string): { kind: K; name: string } {
  if (positionals.length === 0) throw usageError('NAME is missing', usage);
  if (positionals.length > 2) throw usageError(`unexpected arguments: ${positionals.slice(2).join(' ')}`, usage);
  if (positionals.length === 1) return { kind: fallback, name: positionals[0] };
  const kind = kindOf(positionals[0], kinds);
  if (!kind) throw usageError(`unknown kind "${positionals[0]}": use ${kinds.join(', ')}`, usage);
  return { kind, name: positionals[1] };
}

/** Pretty JSON on stdout, for --json. */
export const printJson = (value: unknown) => console.log(JSON.stringify(value, null, 2));
