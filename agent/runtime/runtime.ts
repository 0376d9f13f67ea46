// The runtime: materialize, start, observe, stop, destroy systems on this Linux machine. This file only
// wires the verbs (./verbs/*) to one runtime context (./context.ts); docs/runtime.md has the module map.
//
// Invariants:
// - Every operation on a system holds its lock and is idempotent: "already there / already gone" is
//   success. A start that died halfway (our process SIGKILLed) is adopted if its supervisor runs, and
//   otherwise simply redone: mounts live only in the system's own namespace, so nothing needs undoing.
// - Specs and templates are validated here again (schema through options.checkDoc, names, every path
//   against the layers).
// - We only ever touch <data>/systems/<name>, <volumeRoot>/<volume> named by a spec, <data>/templates,
//   <data>/locks and cgroups named anybios/<tag>-<name>; signals go only to processes identified by
//   pid + start time.
// - Imports point down only: the runtime never imports the agent loop, the CLI, the server or the
//   design-doc builder (ddocs/schemas' types and NAME_RE are data).
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import type { Capabilities } from './capabilities.ts';
import { createContext, type RuntimeOptions } from './context.ts';
import type { Observed } from './observe.ts';
import { enterArgs } from './verbs/enter.ts';
import { logTail, logs } from './verbs/logs.ts';
import { materialize, type StartOptions } from './verbs/materialize.ts';
import { list, observe, wait } from './verbs/observe.ts';
import { start } from './verbs/start.ts';
import { destroy, stop } from './verbs/stop.ts';

export interface Runtime {
  readonly dataDir: string;
  readonly volumeRoot: string;
  capabilities(): Promise<Capabilities>;
  materialize(spec: SystemDoc, template: TemplateDoc, opts?: StartOptions): Promise<Observed>;
  start(spec: SystemDoc, template: TemplateDoc, opts?: StartOptions): Promise<Observed>;
  stop(name: string, opts?: { graceMs?: number }): Promise<Observed | null>;
  destroy(name: string, opts?: { volumes?: boolean; graceMs?: number }): Promise<void>;
  observe(name: string, opts?: { diskUsage?: boolean }): Promise<Observed | null>;
  list(opts?: { diskUsage?: boolean }): Promise<Observed[]>;
  /** Resolves with the exit code once the system is no longer running (null: exit not recorded). */
  wait(name: string, opts?: { timeoutMs?: number }): Promise<number | null>;
  logs(name: string, opts?: { follow?: boolean; signal?: AbortSignal }): AsyncGenerator<Buffer>;
  logTail(name: string, bytes?: number): Promise<string>;
  /** argv (nsenter …) that runs `cmd` inside the running system's namespaces and root. */
  enterArgs(name: string, cmd?: string[]): Promise<string[]>;
}

export async function createRuntime(options: RuntimeOptions): Promise<Runtime> {
  const ctx = await createContext(options);
  return {
    dataDir: ctx.dataDir,
    volumeRoot: ctx.volumeRoot,
    capabilities: ctx.capabilities,
    materialize: (spec, template, opts) => materialize(ctx, spec, template, opts),
    start: (spec, template, opts) => start(ctx, spec, template, opts),
    stop: (name, opts) => stop(ctx, name, opts),
    destroy: (name, opts) => destroy(ctx, name, opts),
    observe: (name, opts) => observe(ctx, name, opts),
    list: (opts) => list(ctx, opts),
    wait: (name, opts) => wait(ctx, name, opts),
    logs: (name, opts) => logs(ctx, name, opts),
    logTail: (name, bytes) => logTail(ctx, name, bytes),
    enterArgs: (name, cmd) => enterArgs(ctx, name, cmd),
  };
}
