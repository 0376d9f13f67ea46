// Executors: one per step action, in a record keyed by action so the compiler reports a missing one.
// Each is idempotent ("already gone" is success) and reports failures into the agent's memory
// (back-off, last error) instead of throwing: one failing system never stops the others.
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import type { Runtime } from '../runtime/index.ts';
import type { Action, Applied, Backoff, StepArgs } from '../model/types.ts';
import { backoffDelay } from '../plan/plan.ts';
import type { LastError } from '../status/status.ts';

/** What the agent remembers between passes (persisted in <data>/agent-state.json). */
export interface AgentMemory {
  applied: Map<string, Applied>;
  backoff: Map<string, Backoff>;
  terminal: Map<string, { rev: string; code: string; message?: string }>;
  lastError: Map<string, LastError>;
}

export interface ExecContext {
  runtime: Runtime;
  memory: AgentMemory;
  /** A `tar` template's `rootfs.tar`: a verified pulled file, or bytes from the local catalog copy. */
  tarballOf(template: TemplateDoc): Promise<Buffer | string | undefined>;
  deleteStatus(name: string): Promise<void>;
  log(msg: string): void;
  now(): number;
}

type Executors = { [K in Action]: (args: StepArgs[K], ctx: ExecContext) => Promise<void> };

function failed(ctx: ExecContext, name: string, hash: string, err: unknown): void {
  const e = err as { code?: string; message?: string };
  const prev = ctx.memory.backoff.get(name);
  const failures = prev && prev.hash === hash ? prev.failures + 1 : 1;
  ctx.memory.backoff.set(name, { hash, failures, notBefore: ctx.now() + backoffDelay(failures) });
  ctx.memory.lastError.set(name, { hash, code: typeof e?.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : 'START_FAILED', message: String(e?.message ?? err).slice(0, 2000), at: ctx.now() });
  ctx.log(`${name}: ${String(e?.message ?? err)}`);
}

async function startSystem(args: StepArgs['start'], ctx: ExecContext): Promise<void> {
  const { name, desired, hash } = args;
  const template = desired.template!;
  try {
    const tarball = template.source === 'tar' ? await ctx.tarballOf(template) : undefined;
    await ctx.runtime.start(desired.spec, template, { specRev: desired.spec._rev, tarball });
    ctx.memory.applied.set(name, { rev: desired.spec._rev, hash });
    ctx.memory.lastError.delete(name);
    ctx.memory.terminal.delete(name);
    // Consecutive restarts by policy grow the back-off; a clean run resets it (see the loop).
    const prev = ctx.memory.backoff.get(name);
    if (args.reason === 'restart-policy') {
      const failures = prev && prev.hash === hash ? prev.failures + 1 : 1;
      ctx.memory.backoff.set(name, { hash, failures, notBefore: ctx.now() + backoffDelay(failures) });
    } else if (prev && prev.hash !== hash) ctx.memory.backoff.delete(name);
    ctx.log(`${name}: started (${args.reason})`);
  } catch (err) {
    failed(ctx, name, hash, err);
  }
}

export const executors: Executors = {
  start: startSystem,
  async restart(args, ctx) {
    try {
      await ctx.runtime.stop(args.name);
    } catch (err) {
      failed(ctx, args.name, args.hash, err);
      return;
    }
    await startSystem(args, ctx);
  },
  async stop(args, ctx) {
    try {
      await ctx.runtime.stop(args.name);
      const a = ctx.memory.applied.get(args.name);
      if (a) ctx.memory.applied.set(args.name, { ...a, stopped: true });
      ctx.log(`${args.name}: stopped (${args.reason})`);
    } catch (err) {
      failed(ctx, args.name, ctx.memory.applied.get(args.name)?.hash ?? '', err);
    }
  },
  async destroy(args, ctx) {
    try {
      await ctx.runtime.destroy(args.name, { volumes: false });
      for (const m of [ctx.memory.applied, ctx.memory.backoff, ctx.memory.terminal, ctx.memory.lastError]) m.delete(args.name);
      await ctx.deleteStatus(args.name);
      ctx.log(`${args.name}: destroyed (${args.reason}); its volumes are kept`);
    } catch (err) {
      failed(ctx, args.name, '', err);
    }
  },
  async adopt(args, ctx) {
    ctx.memory.applied.set(args.name, { rev: args.rev, hash: args.hash, ...(args.stopped ? { stopped: true } : {}) });
  },
  async fail(args, ctx) {
    ctx.memory.terminal.set(args.name, { rev: args.rev, code: args.code, message: args.message });
    ctx.log(`${args.name}: ${args.code}: ${args.message}`);
  },
  async wait() {
    // Nothing now: the loop schedules the next pass for the earliest `until`.
  },
  async deleteStatus(args, ctx) {
    await ctx.deleteStatus(args.name);
  },
};
