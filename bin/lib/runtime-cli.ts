// Shared by the local-mode CLI commands (bin/commands/{run,ps,logs,enter,stop,destroy}.ts): the data dir
// and template roots, opening the runtime, and turning runtime errors into CLI errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { docErrors } from '../../ddocs/validate.ts';
import { createRuntime, RuntimeError, type Runtime } from '../../agent/runtime/index.ts';
import { CliError } from '../command.ts';

export const LOCAL_OPTIONS = {
  data: { type: 'string' },
  // accepted (and implied) so that `anybios stop NAME --local` reaches this runtime, not the fleet command
  local: { type: 'boolean' },
  'template-root': { type: 'string', multiple: true },
} as const;

export const LOCAL_USAGE = `  --local                act on this machine (implied; needed for stop without --data)
  --data DIR             data directory (default $ANYBIOS_DATA or ./.anybios)
  --template-root DIR    where dir templates may live (repeatable; default $ANYBIOS_TEMPLATE_ROOTS, colon-separated)`;

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseLocal<O extends Options>(argv: string[], options: O, usage: string) {
  try {
    return parseArgs({ args: argv, options: { ...LOCAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code?.startsWith('ERR_PARSE_ARGS')) throw new CliError('USAGE', `${e.message}\n\n${usage}`, 2);
    throw err;
  }
}

export async function openRuntime(values: { data?: string; 'template-root'?: string[] }): Promise<Runtime> {
  const dataDir = values.data ?? process.env.ANYBIOS_DATA ?? './.anybios';
  const templateRoots = values['template-root'] ?? (process.env.ANYBIOS_TEMPLATE_ROOTS ?? '').split(':').filter(Boolean);
  // ANYBIOS_STRATEGY: auto (default), overlay, copy or proot (see `anybios agent --help`).
  const strategy = (process.env.ANYBIOS_STRATEGY ?? 'auto') as 'auto' | 'overlay' | 'copy' | 'proot';
  if (!['auto', 'overlay', 'copy', 'proot'].includes(strategy)) throw new CliError('USAGE', `ANYBIOS_STRATEGY must be auto, overlay, copy or proot (got ${strategy})`, 2);
  return cliErrors(() => createRuntime({ dataDir, templateRoots, checkDoc: docErrors, strategy }));
}

/** Runtime errors become `anybios: CODE: message`. */
export async function cliErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof RuntimeError) throw new CliError(e.code, e.message, 1, { cause: e });
    throw e;
  }
}

export function oneName(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new CliError('USAGE', usage, 2);
  return positionals[0]!;
}

export function textTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const text = rows.map((r) => headers.map((_, i) => (r[i] === null || r[i] === undefined || r[i] === '' ? '-' : String(r[i]))));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...text.map(line)].join('\n');
}

export function bytes(n: number | null): string | null {
  if (n === null) return null;
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)}K`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)}M`;
  return `${(n / 1024 ** 3).toFixed(1)}G`;
}
