// The runtime context: what every verb needs (options, host tools, capabilities, paths, the cgroup tag,
// the log/trace/fault hooks, input checks, the supervisors this process spawned). One plain object per
// createRuntime, passed to the verbs (agent/runtime/verbs/*); nothing here is module-level state.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import { probeCapabilities, type Capabilities } from './capabilities.ts';
import { RuntimeError } from './errors.ts';
import { checkName, inputValidator, type CheckDoc } from './inputs.ts';
import type { Launched } from './launcher.ts';
import { systemPaths, type SystemPaths } from './state.ts';
import { findTools, type Tools } from './tools.ts';

export interface RuntimeOptions {
  dataDir: string;
  /**
   * Schema and naming errors of a document (empty: valid); specs and templates must pass it. The
   * runtime does not build the design-doc rules itself: callers pass `docErrors` (ddocs/validate.ts).
   */
  checkDoc: CheckDoc;
  /** Directories under which `dir` templates may live. */
  templateRoots?: string[];
  /** Default <dataDir>/volumes. */
  volumeRoot?: string;
  log?: (msg: string) => void;
  /**
   * overlay where possible (auto), or force one strategy (copy: a full copy of the template per system;
   * proot: the copy run by proot, no namespaces — what auto picks when neither root nor userns works).
   */
  strategy?: 'auto' | 'overlay' | 'copy' | 'proot';
  /** Log cap before rotation (default 1 MiB). */
  logMaxBytes?: number;
  /** Test hook: called at named points of materialize/start (crash-recovery tests SIGKILL there). */
  faultPoint?: (point: FaultPoint) => void | Promise<void>;
}

export type FaultPoint = 'materialize:begin' | 'materialize:done' | 'start:before-spawn' | 'start:after-spawn' | 'start:after-ready';

/** A supervisor spawned by this process (its exit is seen directly, without polling /proc). */
export type Spawned = Pick<Launched, 'wrapperPid' | 'exited' | 'hold'>;

export interface RuntimeContext {
  /** Real path of the data dir. */
  readonly dataDir: string;
  readonly volumeRoot: string;
  readonly templateRoots: string[];
  readonly tools: Tools;
  /** Hash of the data dir: our cgroups are anybios/<tag>-<name>. */
  readonly tag: string;
  readonly logMaxBytes: number;
  /** Probed once, on first use. */
  capabilities(): Promise<Capabilities>;
  /** Schema, name and spec ↔ template checks of a materialize/start. */
  validateInputs(spec: SystemDoc, template: TemplateDoc): void;
  /** The system's files (checks the name). */
  pathsOf(name: string): SystemPaths;
  say(msg: string): void;
  fault(point: FaultPoint): void | Promise<void>;
  /** ANYBIOS_TRACE=1: the time spent in each step of materialize/start (for bench/start). */
  trace(step: string): void;
  /** Supervisors spawned by this process, by system name. */
  readonly spawned: Map<string, Spawned>;
}

export async function createContext(options: RuntimeOptions): Promise<RuntimeContext> {
  await fsp.mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const dataDir = await fsp.realpath(options.dataDir);
  // It holds every system's layer, env and logs: ours alone.
  const st = await fsp.stat(dataDir);
  if ((st.mode & 0o077) !== 0) {
    (options.log ?? ((m: string) => process.stderr.write(`${m}\n`)))(`warning: data dir ${dataDir} was mode ${(st.mode & 0o777).toString(8)}; made 0700 (it holds the systems' files, env and logs)`);
    await fsp.chmod(dataDir, 0o700);
  }
  if (/[,:\s\\]/.test(dataDir)) throw new RuntimeError('PATH_INVALID', `data dir ${dataDir} must not contain , : \\ or whitespace (overlayfs options)`);
  // Kept as given (not realpath'd): a volume root that is a symlink is refused when a volume is used.
  const volumeRoot = options.volumeRoot ? path.resolve(options.volumeRoot) : `${dataDir}/volumes`;
  let traceT = 0;
  const trace = process.env.ANYBIOS_TRACE
    ? (step: string) => {
        const now = performance.now();
        if (step !== 'begin') process.stderr.write(`trace ${step} ${(now - traceT).toFixed(2)}ms\n`);
        traceT = now;
      }
    : () => {};
  const tag = createHash('sha256').update(dataDir).digest('hex').slice(0, 8);
  await fsp.mkdir(`${dataDir}/systems`, { recursive: true });
  const tools = findTools();
  let caps: Promise<Capabilities> | null = null;
  return {
    dataDir,
    volumeRoot,
    templateRoots: options.templateRoots ?? [],
    tools,
    tag,
    logMaxBytes: options.logMaxBytes ?? 1024 * 1024,
    capabilities: () => (caps ??= probeCapabilities(tools, dataDir, options.strategy ?? 'auto')),
    validateInputs: inputValidator(options.checkDoc),
    pathsOf: (name) => systemPaths(dataDir, checkName(name)),
    say: options.log ?? (() => {}),
    fault: options.faultPoint ?? (() => {}),
    trace,
    spawned: new Map(),
  };
}
