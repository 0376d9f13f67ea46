// The Linux runtime of anybios: the public surface (see docs/runtime.md).
export { createRuntime } from './runtime.ts';
export type { Runtime } from './runtime.ts';
export type { RuntimeOptions, FaultPoint } from './context.ts';
export type { StartOptions } from './verbs/materialize.ts';
export { checkName } from './inputs.ts';
export type { CheckDoc } from './inputs.ts';
export type { Observed, ObservedPhase } from './observe.ts';
export type { Capabilities } from './capabilities.ts';
export type { CgroupSupport } from './cgroups.ts';
export { RuntimeError, RUNTIME_ERRORS, isRuntimeError } from './errors.ts';
export type { RuntimeErrorCode } from './errors.ts';
