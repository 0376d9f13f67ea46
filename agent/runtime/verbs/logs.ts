// Verbs `logs` and `logTail`: a system's stdout+stderr (../logs.ts keeps the file and its cap).
import type { RuntimeContext } from '../context.ts';
import { RuntimeError } from '../errors.ts';
import { readLog, tailLog } from '../logs.ts';
import { readState } from '../state.ts';

export async function* logs(ctx: RuntimeContext, name: string, opts: { follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
  const paths = ctx.pathsOf(name);
  if (!(await readState(paths))) throw new RuntimeError('NOT_FOUND', `no system ${name} in ${ctx.dataDir}`);
  yield* readLog(paths.log, opts);
}

export async function logTail(ctx: RuntimeContext, name: string, bytes = 4096): Promise<string> {
  return tailLog(ctx.pathsOf(name).log, bytes);
}
