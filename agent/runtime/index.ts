// The Linux runtime of anybios: wiring and the public surface (see docs/runtime.md).
export { createRuntime, checkName, validateInputs } from './runtime.ts';
export type { Runtime, RuntimeOptions, StartOptions, FaultPoint } from './runtime.ts';
export type { Observed, ObservedPhase } from './observe.ts';
export type { Capabilities } from './capabilities.ts';
export type { CgroupSupport } from './cgroups.ts';
export { RuntimeError, RUNTIME_ERRORS, isRuntimeError } from './errors.ts';
export type { RuntimeErrorCode } from './errors.ts';
