// What the planner sees and what it asks for. Observe everything first, then call plan() — it never
// awaits. Steps are a discriminated union derived from one StepArgs record, so the executor record
// keyed by action is checked by the compiler for completeness.
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import type { FieldError } from '../../ddocs/validate.ts';
import type { Observed } from '../runtime/index.ts';

/** One system this node should have, with everything needed to decide about it. */
export interface DesiredSystem {
  spec: SystemDoc & { _rev: string };
  /** The template the spec names, or null when this node does not have it (not replicated yet, or gone). */
  template: TemplateDoc | null;
  /** Schema errors (a spec stored before the rules tightened, or written around the ddoc). */
  specErrors: FieldError[];
  /** CouchDB keeps conflicting revisions: we apply the deterministic winner and say so in the status. */
  conflict: boolean;
  /**
   * The template cannot be used yet or here (rootfs still being pulled, pull refused, host template not
   * allowed, disabled): no start; `stop` also stops a running one. Re-evaluated every pass.
   */
  blocked?: Blocked;
}

/** Why a system cannot start now: `code` null = only waiting (a pull in progress), else a failure. */
export interface Blocked { code: string | null; message: string; stop?: boolean }

/** What the agent last applied to a system: the spec revision and the hash of what matters at run time. */
export interface Applied {
  rev: string;
  hash: string;
  /** Set when we stopped it because the spec said `stopped`: a later `running` starts it afresh. */
  stopped?: boolean;
}

export interface Backoff {
  /** The runtime hash the failures belong to: a changed spec starts afresh. */
  hash: string;
  /** Consecutive failed or exited starts. */
  failures: number;
  /** Epoch ms before which we do not try again. */
  notBefore: number;
}

export interface PlanInput {
  desired: Map<string, DesiredSystem>;
  observed: Map<string, Observed>;
  /** Names whose `system:` document is known deleted here (a tombstone): only these may be destroyed. */
  tombstones: Set<string>;
  /** Names with a `status:` document in the local database. */
  statuses: Set<string>;
  applied: Map<string, Applied>;
  backoff: Map<string, Backoff>;
  /** Terminal failures already recorded for a spec revision (not retried until the spec changes). */
  terminal: Map<string, { rev: string; code: string }>;
  now: number;
}

export type Reason = 'new' | 'spec-changed' | 'template-changed' | 'restart-requested' | 'restart-policy' | 'desired-stopped' | 'deleted' | 'not-started' | 'template-blocked';

export interface StepArgs {
  /** Materialize (if needed) and start. */
  start: { name: string; desired: DesiredSystem; hash: string; reason: Reason };
  /** Stop, then start with the new spec. */
  restart: { name: string; desired: DesiredSystem; hash: string; reason: Reason };
  stop: { name: string; reason: Reason };
  /** Stop, remove the system's layer (never its volumes), forget it. */
  destroy: { name: string; reason: Reason };
  /** The spec changed only in fields that need no restart: record the new revision as applied. */
  adopt: { name: string; rev: string; hash: string; stopped?: boolean };
  /** A terminal error: recorded as failed with a code, not retried until the spec changes. */
  fail: { name: string; rev: string; code: 'SPEC_INVALID' | 'TEMPLATE_MISSING'; message: string };
  /** Back-off: nothing to do before `until`. */
  wait: { name: string; until: number; reason: Reason };
  deleteStatus: { name: string };
}

export type Action = keyof StepArgs;
export type Step = { [K in Action]: { action: K } & StepArgs[K] }[Action];
