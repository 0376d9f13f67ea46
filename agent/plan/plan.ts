// The reconcile core: plan(input) → steps. Pure and synchronous: every fact arrives in `input`
// (desired specs, what the runtime observes, what was applied, back-off), nothing is awaited.
// Creation is a diff against nothing; deletion needs a tombstone, so an empty or lost local database
// never stops a system; terminal errors are recorded once per spec revision, not retried hot.
import type { Backoff, DesiredSystem, PlanInput, Reason, Step } from '../model/types.ts';
import type { Observed } from '../runtime/index.ts';
import { runtimeHash } from './runtime-hash.ts';

/** The default restart policy: an os system is a machine and comes back; an app restarts on failure. */
export function restartPolicy(d: DesiredSystem): 'always' | 'on-failure' | 'never' {
  return d.spec.restart ?? (d.spec.kind === 'os' ? 'always' : 'on-failure');
}

/** Back-off delay after `failures` consecutive failures: 1 s, 2 s, 4 s … capped at 5 minutes. */
export function backoffDelay(failures: number): number {
  return Math.min(1000 * 2 ** Math.max(0, failures - 1), 300_000);
}

const isUp = (o: Observed | undefined) => o?.phase === 'running';

function startOrWait(name: string, d: DesiredSystem, hash: string, reason: Reason, b: Backoff | undefined, now: number, restart = false): Step {
  if (b && b.hash === hash && b.notBefore > now) return { action: 'wait', name, until: b.notBefore, reason };
  return restart ? { action: 'restart', name, desired: d, hash, reason } : { action: 'start', name, desired: d, hash, reason };
}

function planOne(name: string, d: DesiredSystem, o: Observed | undefined, input: PlanInput): Step[] {
  const rev = d.spec._rev;
  const terminal = input.terminal.get(name);
  if (d.specErrors.length) {
    if (terminal?.rev === rev && terminal.code === 'SPEC_INVALID') return [];
    const message = d.specErrors.map((e) => `${e.path} ${e.message}`).join('; ');
    return [{ action: 'fail', name, rev, code: 'SPEC_INVALID', message: `the spec is invalid: ${message}` }];
  }
  if (d.spec.state === 'stopped') {
    if (isUp(o) || o?.phase === 'materializing') return [{ action: 'stop', name, reason: 'desired-stopped' }];
    const applied = input.applied.get(name);
    // Record the stopped revision as applied (and that it is stopped on purpose), so the status is
    // current and a later `running` starts it afresh whatever the restart policy.
    return applied && (applied.rev !== rev || !applied.stopped) ? [{ action: 'adopt', name, rev, hash: applied.hash, stopped: true }] : [];
  }
  if (d.blocked) {
    // Level-triggered: the gate is asked again on every pass, so nothing is recorded as terminal.
    return d.blocked.stop && (isUp(o) || o?.phase === 'materializing') ? [{ action: 'stop', name, reason: 'template-blocked' }] : [];
  }
  if (!d.template) {
    // A running system keeps running while its template document is away (replication lag, catalog edit).
    if (isUp(o)) return [];
    if (terminal?.rev === rev && terminal.code === 'TEMPLATE_MISSING') return [];
    return [{ action: 'fail', name, rev, code: 'TEMPLATE_MISSING', message: `template ${d.spec.template} is not in this node's catalog copy` }];
  }
  const hash = runtimeHash(d.spec, d.template);
  const applied = input.applied.get(name);
  const b = input.backoff.get(name);
  if (isUp(o)) {
    if (applied?.hash === hash) return applied.rev === rev ? [] : [{ action: 'adopt', name, rev, hash }];
    // Our record is gone (agent state lost) but the runtime ran exactly this revision: adopt it.
    if (!applied && o!.specRev === rev) return [{ action: 'adopt', name, rev, hash }];
    // Started at boot by the PE (anybios.boot) before any agent ran, as the disk describes it: the first
    // agent that wants it running takes it as it is (a later edit of the spec restarts it as usual).
    if (!applied && o!.startedBy === 'boot') return [{ action: 'adopt', name, rev, hash }];
    // Same revision, another hash: only the template document can have changed.
    const reason: Reason = applied?.rev === rev ? 'template-changed' : d.spec.restartedAt && applied && o!.specRev !== rev ? 'restart-requested' : 'spec-changed';
    return [startOrWait(name, d, hash, reason, b, input.now, true)];
  }
  // Not running.
  if (!o || o.phase === 'materializing' || !applied || applied.hash !== hash || applied.stopped) {
    const reason: Reason = !o ? 'new' : applied && applied.hash !== hash ? (applied.rev === rev ? 'template-changed' : 'spec-changed') : 'not-started';
    return [startOrWait(name, d, hash, reason, b, input.now)];
  }
  // It ran this very spec and ended: the restart policy decides. A cosmetic edit since is adopted,
  // so the status can say it speaks for the current revision.
  const adopt: Step[] = applied.rev !== rev ? [{ action: 'adopt', name, rev, hash }] : [];
  const policy = restartPolicy(d);
  if (policy === 'never') return adopt;
  if (policy === 'on-failure' && o.exitCode === 0) return adopt;
  return [...adopt, startOrWait(name, d, hash, 'restart-policy', b, input.now)];
}

export function plan(input: PlanInput): Step[] {
  const names = new Set<string>([...input.desired.keys(), ...input.observed.keys(), ...input.statuses]);
  const steps: Step[] = [];
  for (const name of [...names].sort()) {
    const d = input.desired.get(name);
    const o = input.observed.get(name);
    if (d) {
      steps.push(...planOne(name, d, o, input));
      continue;
    }
    // Not desired here. Only a known deletion (tombstone) removes anything: never an absence alone.
    if (!input.tombstones.has(name)) continue;
    if (o) steps.push({ action: 'destroy', name, reason: 'deleted' });
    else if (input.statuses.has(name)) steps.push({ action: 'deleteStatus', name });
  }
  return steps;
}
