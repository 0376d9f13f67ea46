// The planner over every combination issue 5 names. The core table is a cross product generated here
// (desired state × observed phase × what was applied × restart policy × back-off); each cell is checked
// against the expectation tables below, written from the intent, not from plan.ts. Special
// cases (spec and template changes field by field, deletion, terminal errors, state loss, conflicts,
// determinism) have their own named tests.
import test from 'ava';
import type { SystemDoc } from '../../../ddocs/schemas/types.ts';
import type { Applied, Backoff, DesiredSystem, PlanInput, Reason, Step } from '../../../agent/model/types.ts';
import type { Observed } from '../../../agent/runtime/index.ts';
import { backoffDelay, plan, restartPolicy } from '../../../agent/plan/plan.ts';
import { NOW, desired, hashOf, input, observed, spec, template } from './fixtures.ts';

const CUR = '2-cur';
const OLD = '1-old';
const STALE_HASH = 'ffffffffffffffffffffffff';

// ---------------------------------------------------------------------------------------------------
// Axes of the core table.

const STATES = ['running', 'stopped'] as const;
type DesiredState = (typeof STATES)[number];

/** Observed phases: absent, running, ended with 0, ended non-zero (stopped by a signal or failed), lost (no exit code), interrupted materialize. */
const PHASES = ['absent', 'running', 'stopped-0', 'stopped-143', 'failed-1', 'failed-null', 'materializing'] as const;
type PhaseCase = (typeof PHASES)[number];

/**
 * What the agent recorded as applied, against the current spec (rev 2-cur):
 * match: this revision and its hash; cosmetic: an older revision with the same runtime hash (labels changed);
 * stale: an older revision with another hash (command changed); lost-same-rev / lost-old-rev: no record at all
 * (agent state lost), the runtime ran the current / an older revision; stopped-by-us: an older revision that
 * we stopped because the spec said `stopped` (Applied.stopped), same hash.
 */
const APPLIED = ['match', 'cosmetic', 'stale', 'lost-same-rev', 'lost-old-rev', 'stopped-by-us'] as const;
type AppliedCase = (typeof APPLIED)[number];

const POLICIES = ['always', 'on-failure', 'never', 'default-os', 'default-app'] as const;
type PolicyCase = (typeof POLICIES)[number];

/** none; active-same: failures of this very hash, not yet due; expired-same: due exactly now; active-other: failures of an older hash. */
const BACKOFFS = ['none', 'active-same', 'expired-same', 'active-other'] as const;
type BackoffCase = (typeof BACKOFFS)[number];

// ---------------------------------------------------------------------------------------------------
// Expectations, written out.

type Outcome = 'none' | 'stop' | 'adopt' | 'adopt-stopped' | 'policy' | { start: Reason } | { restart: Reason };

/** Desired running: what to do per observed phase and applied record (before policy and back-off). */
const WHEN_RUNNING: Record<PhaseCase, Record<AppliedCase, Outcome>> = {
  absent: {
    match: { start: 'new' },
    cosmetic: { start: 'new' },
    stale: { start: 'new' },
    'lost-same-rev': { start: 'new' },
    'lost-old-rev': { start: 'new' },
    'stopped-by-us': { start: 'new' },
  },
  running: {
    match: 'none',
    cosmetic: 'adopt',
    stale: { restart: 'spec-changed' },
    'lost-same-rev': 'adopt',
    'lost-old-rev': { restart: 'spec-changed' },
    // Up although we stopped it (started by hand, or the stop failed): it runs this hash, adopt it.
    'stopped-by-us': 'adopt',
  },
  'stopped-0': {
    match: 'policy',
    cosmetic: 'policy',
    stale: { start: 'spec-changed' },
    'lost-same-rev': { start: 'not-started' },
    'lost-old-rev': { start: 'not-started' },
    // Stopped on purpose, now wanted running: start it, whatever the policy and the exit code.
    'stopped-by-us': { start: 'not-started' },
  },
  'stopped-143': {
    match: 'policy',
    cosmetic: 'policy',
    stale: { start: 'spec-changed' },
    'lost-same-rev': { start: 'not-started' },
    'lost-old-rev': { start: 'not-started' },
    // Stopped on purpose, now wanted running: start it, whatever the policy and the exit code.
    'stopped-by-us': { start: 'not-started' },
  },
  'failed-1': {
    match: 'policy',
    cosmetic: 'policy',
    stale: { start: 'spec-changed' },
    'lost-same-rev': { start: 'not-started' },
    'lost-old-rev': { start: 'not-started' },
    // Stopped on purpose, now wanted running: start it, whatever the policy and the exit code.
    'stopped-by-us': { start: 'not-started' },
  },
  'failed-null': {
    match: 'policy',
    cosmetic: 'policy',
    stale: { start: 'spec-changed' },
    'lost-same-rev': { start: 'not-started' },
    'lost-old-rev': { start: 'not-started' },
    // Stopped on purpose, now wanted running: start it, whatever the policy and the exit code.
    'stopped-by-us': { start: 'not-started' },
  },
  materializing: {
    match: { start: 'not-started' },
    cosmetic: { start: 'not-started' },
    stale: { start: 'spec-changed' },
    'lost-same-rev': { start: 'not-started' },
    'lost-old-rev': { start: 'not-started' },
    // Stopped on purpose, now wanted running: start it, whatever the policy and the exit code.
    'stopped-by-us': { start: 'not-started' },
  },
};

/**
 * Desired stopped: only something up (or half-made) is stopped, whatever was applied, the policy or back-off.
 * Once we stopped it, a newer stopped revision is recorded as applied (still marked stopped) so the status
 * can say it is current; nothing else is recorded.
 */
const stoppedRow = (other: Outcome, ourStop: Outcome): Record<AppliedCase, Outcome> => ({
  match: other,
  cosmetic: other,
  stale: other,
  'lost-same-rev': other,
  'lost-old-rev': other,
  'stopped-by-us': ourStop,
});
/**
 * Not up and desired stopped: whatever we had applied is recorded as the stopped revision (marked
 * stopped), so the status is current and a later `running` starts afresh; with no record, nothing.
 */
const notUpStopped: Record<AppliedCase, Outcome> = {
  match: 'adopt-stopped',
  cosmetic: 'adopt-stopped',
  stale: 'adopt-stopped',
  'lost-same-rev': 'none',
  'lost-old-rev': 'none',
  'stopped-by-us': 'adopt-stopped',
};
const WHEN_STOPPED: Record<PhaseCase, Record<AppliedCase, Outcome>> = {
  absent: notUpStopped,
  running: stoppedRow('stop', 'stop'),
  'stopped-0': notUpStopped,
  'stopped-143': notUpStopped,
  'failed-1': notUpStopped,
  'failed-null': notUpStopped,
  materializing: stoppedRow('stop', 'stop'),
};

/** The restart policy, for a system that ended while running exactly the applied spec: start it again? */
const RESTARTS: Record<'stopped-0' | 'stopped-143' | 'failed-1' | 'failed-null', Record<PolicyCase, boolean>> = {
  'stopped-0': { always: true, 'on-failure': false, never: false, 'default-os': true, 'default-app': false },
  'stopped-143': { always: true, 'on-failure': true, never: false, 'default-os': true, 'default-app': true },
  'failed-1': { always: true, 'on-failure': true, never: false, 'default-os': true, 'default-app': true },
  'failed-null': { always: true, 'on-failure': true, never: false, 'default-os': true, 'default-app': true },
};

/** Back-off holds a start or restart only when it belongs to the hash being started and is not yet due. */
const HOLDS: Record<BackoffCase, boolean> = { none: false, 'active-same': true, 'expired-same': false, 'active-other': false };

// ---------------------------------------------------------------------------------------------------
// Building one cell.

interface Cell {
  state: DesiredState;
  phase: PhaseCase;
  applied: AppliedCase;
  policy: PolicyCase;
  backoff: BackoffCase;
}

function buildCell(c: Cell, conflict = false): { input: PlanInput; d: DesiredSystem; hash: string } {
  const name = 'sys';
  const over: Partial<SystemDoc> = { state: c.state };
  if (c.policy === 'default-os') over.kind = 'os';
  else if (c.policy === 'default-app') over.kind = 'app';
  else if (c.policy === 'always') Object.assign(over, { kind: 'app', restart: 'always' });
  // Explicit policies that differ from the os default are set on os systems: the explicit one must win.
  else Object.assign(over, { kind: 'os', restart: c.policy });
  const d = desired(spec(name, over), { conflict });
  const hash = hashOf(d);

  const applied: Record<string, Applied> = {};
  let specRev: string = CUR;
  if (c.applied === 'match') applied[name] = { rev: CUR, hash };
  if (c.applied === 'cosmetic') (applied[name] = { rev: OLD, hash }), (specRev = OLD);
  if (c.applied === 'stale') (applied[name] = { rev: OLD, hash: STALE_HASH }), (specRev = OLD);
  if (c.applied === 'lost-old-rev') specRev = OLD;
  if (c.applied === 'stopped-by-us') (applied[name] = { rev: OLD, hash, stopped: true }), (specRev = OLD);

  const obs: Observed[] = [];
  const kind = d.spec.kind;
  if (c.phase === 'running') obs.push(observed(name, 'running', { specRev, kind }));
  if (c.phase === 'stopped-0') obs.push(observed(name, 'stopped', { specRev, kind, exitCode: 0, message: 'exited with code 0' }));
  if (c.phase === 'stopped-143') obs.push(observed(name, 'stopped', { specRev, kind, exitCode: 143, message: 'stopped' }));
  if (c.phase === 'failed-1') obs.push(observed(name, 'failed', { specRev, kind, exitCode: 1, code: 'SYSTEM_EXITED', message: 'exited with code 1' }));
  if (c.phase === 'failed-null') obs.push(observed(name, 'failed', { specRev, kind, exitCode: null, code: 'SYSTEM_LOST', message: 'gone' }));
  if (c.phase === 'materializing') obs.push(observed(name, 'materializing', { specRev, kind }));

  const backoff: Record<string, Backoff> = {};
  if (c.backoff === 'active-same') backoff[name] = { hash, failures: 3, notBefore: NOW + 4000 };
  if (c.backoff === 'expired-same') backoff[name] = { hash, failures: 3, notBefore: NOW };
  if (c.backoff === 'active-other') backoff[name] = { hash: STALE_HASH, failures: 3, notBefore: NOW + 4000 };

  return { input: input({ desired: [d], observed: obs, applied, backoff, statuses: c.phase === 'absent' ? [] : [name] }), d, hash };
}

function expectedSteps(c: Cell, d: DesiredSystem, hash: string, appliedHash?: string): Step[] {
  const name = d.spec.name;
  let out: Outcome = c.state === 'stopped' ? WHEN_STOPPED[c.phase][c.applied] : WHEN_RUNNING[c.phase][c.applied];
  // It ended while running this hash under an older (cosmetic) revision: that revision is adopted first.
  const pre: Step[] = [];
  if (out === 'policy') {
    if (c.applied === 'cosmetic') pre.push({ action: 'adopt', name, rev: CUR, hash });
    const restarts = RESTARTS[c.phase as keyof typeof RESTARTS][c.policy];
    out = restarts ? { start: 'restart-policy' } : 'none';
  }
  if (out === 'none') return pre;
  if (out === 'stop') return [{ action: 'stop', name, reason: 'desired-stopped' }];
  if (out === 'adopt') return [{ action: 'adopt', name, rev: CUR, hash }];
  if (out === 'adopt-stopped') return [{ action: 'adopt', name, rev: CUR, hash: appliedHash ?? hash, stopped: true }];
  const action = 'start' in out ? 'start' : 'restart';
  const reason = 'start' in out ? out.start : out.restart;
  if (HOLDS[c.backoff]) return [...pre, { action: 'wait', name, until: NOW + 4000, reason }];
  return [...pre, { action, name, desired: d, hash, reason }];
}

const cells: Cell[] = [];
for (const state of STATES)
  for (const phase of PHASES)
    for (const applied of APPLIED)
      for (const policy of POLICIES)
        for (const backoff of BACKOFFS) cells.push({ state, phase, applied, policy, backoff });

for (const c of cells) {
  test(`core: desired ${c.state} · observed ${c.phase} · applied ${c.applied} · policy ${c.policy} · backoff ${c.backoff}`, (t) => {
    const { input: inp, d, hash } = buildCell(c);
    t.deepEqual(plan(inp), expectedSteps(c, d, hash, inp.applied.get('sys')?.hash));
    // A conflict is reported in the status; it never changes what is done.
    const withConflict = buildCell(c, true);
    t.deepEqual(plan(withConflict.input), expectedSteps(c, withConflict.d, withConflict.hash, withConflict.input.applied.get('sys')?.hash));
  });
}

test('core table covers the whole cross product', (t) => {
  t.is(cells.length, STATES.length * PHASES.length * APPLIED.length * POLICIES.length * BACKOFFS.length);
  t.is(cells.length, 1680);
});

// ---------------------------------------------------------------------------------------------------
// Changed spec, field by field: a running system that applied the previous revision.

function runningWithPrevious(prev: Partial<SystemDoc>, next: Partial<SystemDoc>, prevTemplate = template(), nextTemplate = template()) {
  const before = desired(spec('web', { _rev: OLD, ...prev }), { template: prevTemplate });
  const after = desired(spec('web', { _rev: CUR, ...next }), { template: nextTemplate });
  const inp = input({
    desired: [after],
    observed: [observed('web', 'running', { specRev: OLD })],
    applied: { web: { rev: OLD, hash: hashOf(before) } },
    statuses: ['web'],
  });
  return { inp, after, hash: hashOf(after) };
}

const RUNTIME_CHANGES: [string, Partial<SystemDoc>][] = [
  ['command', { command: ['/bin/sh', '-c', 'exec sleep 1000'] }],
  ['env value', { env: { A: '2' } }],
  ['env added', { env: { A: '1', B: '2' } }],
  ['mounts', { mounts: [{ volume: 'data', target: '/data' }] }],
  ['mount made read-only', { mounts: [{ volume: 'data', target: '/data', readOnly: true }] }],
  ['template name', { template: 'alpine' }],
  ['init', { init: ['/sbin/init'] }],
  ['workdir', { workdir: '/srv' }],
  ['hostname', { hostname: 'box' }],
  ['network', { network: 'host' }],
  ['resources', { resources: { memory: 64 * 1024 * 1024 } }],
  ['kind', { kind: 'os' }],
];

for (const [what, change] of RUNTIME_CHANGES) {
  test(`changed spec: ${what} → restart with the new spec`, (t) => {
    const prev: Partial<SystemDoc> = what === 'mount made read-only' ? { mounts: [{ volume: 'data', target: '/data' }] } : {};
    const nextTpl = change.template ? template({ _id: `template:${change.template}`, name: change.template }) : template();
    const { inp, after, hash } = runningWithPrevious(prev, change, template(), nextTpl);
    t.deepEqual(plan(inp), [{ action: 'restart', name: 'web', desired: after, hash, reason: 'spec-changed' }]);
  });
}

const COSMETIC_CHANGES: [string, Partial<SystemDoc>][] = [
  ['labels', { labels: { team: 'blue' } }],
  ['description', { description: 'the web server' }],
  ['restart policy', { restart: 'never' }],
  ['env key order', { env: { A: '1' } }],
];

for (const [what, change] of COSMETIC_CHANGES) {
  test(`changed spec: ${what} only → adopt the new revision, no restart`, (t) => {
    const { inp, hash } = runningWithPrevious({}, change);
    t.deepEqual(plan(inp), [{ action: 'adopt', name: 'web', rev: CUR, hash }]);
  });
}

test('changed spec: env with the same pairs in another key order hashes equal', (t) => {
  const { inp, hash } = runningWithPrevious({ env: { A: '1', B: '2' } }, { env: { B: '2', A: '1' } });
  t.deepEqual(plan(inp), [{ action: 'adopt', name: 'web', rev: CUR, hash }]);
});

test('changed spec: restartedAt set → restart, reason restart-requested', (t) => {
  const { inp, after, hash } = runningWithPrevious({}, { restartedAt: '2024-05-01T10:00:00.000Z' });
  t.deepEqual(plan(inp), [{ action: 'restart', name: 'web', desired: after, hash, reason: 'restart-requested' }]);
});

test('changed spec: restartedAt bumped again → restart again', (t) => {
  const { inp, after, hash } = runningWithPrevious({ restartedAt: '2024-05-01T10:00:00.000Z' }, { restartedAt: '2024-05-01T11:00:00.000Z' });
  t.deepEqual(plan(inp), [{ action: 'restart', name: 'web', desired: after, hash, reason: 'restart-requested' }]);
});

test('changed spec: restartedAt on an app that exited 0 (on-failure) starts it', (t) => {
  const before = desired(spec('job', { _rev: OLD }));
  const after = desired(spec('job', { restartedAt: '2024-05-01T10:00:00.000Z' }));
  const inp = input({
    desired: [after],
    observed: [observed('job', 'stopped', { specRev: OLD, exitCode: 0 })],
    applied: { job: { rev: OLD, hash: hashOf(before) } },
  });
  t.deepEqual(plan(inp), [{ action: 'start', name: 'job', desired: after, hash: hashOf(after), reason: 'spec-changed' }]);
});

test('changed spec: state running → stopped with a new command stops (no restart first)', (t) => {
  const { inp } = runningWithPrevious({}, { state: 'stopped', command: ['/bin/true'] });
  t.deepEqual(plan(inp), [{ action: 'stop', name: 'web', reason: 'desired-stopped' }]);
});

// ---------------------------------------------------------------------------------------------------
// Changed template document (same spec revision).

const TEMPLATE_CONTENT_CHANGES: [string, Parameters<typeof template>[0]][] = [
  ['sha256', { _rev: '2-t', sha256: 'b'.repeat(64) }],
  ['path', { _rev: '2-t', path: '/srv/templates/debian-12' }],
  ['source', { _rev: '2-t', source: 'tar' }],
];

for (const [what, change] of TEMPLATE_CONTENT_CHANGES) {
  test(`changed template: ${what} → restart, reason template-changed`, (t) => {
    const s = spec('web');
    const oldTpl = desired(s, { template: template() });
    const d = desired(s, { template: template(change) });
    const hash = hashOf(d);
    t.not(hash, hashOf(oldTpl));
    const inp = input({ desired: [d], observed: [observed('web', 'running')], applied: { web: { rev: CUR, hash: hashOf(oldTpl) } } });
    t.deepEqual(plan(inp), [{ action: 'restart', name: 'web', desired: d, hash, reason: 'template-changed' }]);
  });
}

test('changed template: an exited system (on-failure, exit 0) is started on the new template', (t) => {
  const s = spec('job');
  const oldTpl = desired(s);
  const d = desired(s, { template: template({ sha256: 'c'.repeat(64) }) });
  const inp = input({ desired: [d], observed: [observed('job', 'stopped', { exitCode: 0 })], applied: { job: { rev: CUR, hash: hashOf(oldTpl) } } });
  t.deepEqual(plan(inp), [{ action: 'start', name: 'job', desired: d, hash: hashOf(d), reason: 'template-changed' }]);
});

test('changed template: description or labels of the template only → nothing', (t) => {
  const s = spec('web');
  const d0 = desired(s);
  const d = desired(s, { template: template({ _rev: '3-t', description: 'Debian 12', labels: { os: 'debian' } }) });
  t.is(hashOf(d), hashOf(d0));
  const inp = input({ desired: [d], observed: [observed('web', 'running')], applied: { web: { rev: CUR, hash: hashOf(d0) } } });
  t.deepEqual(plan(inp), []);
});

test('changed template: back-off for the new hash holds the restart', (t) => {
  const s = spec('web');
  const d0 = desired(s);
  const d = desired(s, { template: template({ sha256: 'd'.repeat(64) }) });
  const inp = input({
    desired: [d],
    observed: [observed('web', 'running')],
    applied: { web: { rev: CUR, hash: hashOf(d0) } },
    backoff: { web: { hash: hashOf(d), failures: 1, notBefore: NOW + 1000 } },
  });
  t.deepEqual(plan(inp), [{ action: 'wait', name: 'web', until: NOW + 1000, reason: 'template-changed' }]);
});

// ---------------------------------------------------------------------------------------------------
// Deletion and reassignment: only a tombstone removes anything.

const GONE_OBSERVED: [string, Observed][] = [
  ['running', observed('old', 'running')],
  ['stopped', observed('old', 'stopped', { exitCode: 0 })],
  ['failed', observed('old', 'failed', { exitCode: 1, code: 'SYSTEM_EXITED' })],
  ['materializing', observed('old', 'materializing')],
];

for (const [phase, o] of GONE_OBSERVED) {
  test(`deleted (tombstone) and observed ${phase} → destroy`, (t) => {
    t.deepEqual(plan(input({ observed: [o], tombstones: ['old'], statuses: ['old'] })), [{ action: 'destroy', name: 'old', reason: 'deleted' }]);
    t.deepEqual(plan(input({ observed: [o], tombstones: ['old'] })), [{ action: 'destroy', name: 'old', reason: 'deleted' }]);
  });
  test(`no tombstone and observed ${phase}, nothing desired → never destroyed`, (t) => {
    t.deepEqual(plan(input({ observed: [o], statuses: ['old'] })), []);
    t.deepEqual(plan(input({ observed: [o] })), []);
  });
}

test('deleted (tombstone), nothing observed, a status remains → deleteStatus', (t) => {
  t.deepEqual(plan(input({ tombstones: ['old'], statuses: ['old'] })), [{ action: 'deleteStatus', name: 'old' }]);
});

test('deleted (tombstone), nothing observed, no status → nothing', (t) => {
  t.deepEqual(plan(input({ tombstones: ['old'] })), []);
});

test('no tombstone, only a status → the status stays', (t) => {
  t.deepEqual(plan(input({ statuses: ['old'] })), []);
});

test('reassigned to another node: gone from this node with a tombstone → destroyed here, the rest untouched', (t) => {
  const stay = desired(spec('stay'));
  const inp = input({
    desired: [stay],
    observed: [observed('moved', 'running'), observed('stay', 'running')],
    applied: { stay: { rev: CUR, hash: hashOf(stay) } },
    tombstones: ['moved'],
    statuses: ['moved', 'stay'],
  });
  t.deepEqual(plan(inp), [{ action: 'destroy', name: 'moved', reason: 'deleted' }]);
});

test('a tombstone with the system desired again (recreated) → the desired spec wins', (t) => {
  const d = desired(spec('back'));
  const inp = input({ desired: [d], observed: [observed('back', 'running')], applied: { back: { rev: CUR, hash: hashOf(d) } }, tombstones: ['back'] });
  t.deepEqual(plan(inp), []);
});

test('an empty or lost local database stops nothing', (t) => {
  const obs = ['a', 'b', 'c', 'd'].map((n, i) => observed(n, (['running', 'stopped', 'failed', 'materializing'] as const)[i]!));
  t.deepEqual(plan(input({ observed: obs, statuses: ['a', 'b', 'c', 'd', 'e'] })), []);
  t.deepEqual(plan(input({ observed: obs, applied: { a: { rev: CUR, hash: 'x' } }, backoff: { b: { hash: 'y', failures: 1, notBefore: 0 } } })), []);
});

// ---------------------------------------------------------------------------------------------------
// Terminal errors.

const INVALID = [{ path: '/command', message: 'must be array' }, { path: '/env/A', message: 'must be string' }];

for (const phase of ['absent', 'running', 'stopped', 'failed', 'materializing'] as const) {
  test(`invalid spec, observed ${phase} → fail SPEC_INVALID once per revision`, (t) => {
    const d = desired(spec('bad'), { specErrors: INVALID });
    const obs = phase === 'absent' ? [] : [observed('bad', phase)];
    const steps = plan(input({ desired: [d], observed: obs }));
    t.is(steps.length, 1);
    const s = steps[0]!;
    t.like(s, { action: 'fail', name: 'bad', rev: CUR, code: 'SPEC_INVALID' });
    if (s.action === 'fail') {
      t.true(s.message.includes('/command must be array'));
      t.true(s.message.includes('/env/A must be string'));
    }
    // Recorded for this revision: not again.
    t.deepEqual(plan(input({ desired: [d], observed: obs, terminal: { bad: { rev: CUR, code: 'SPEC_INVALID' } } })), []);
    // Recorded for an older revision: this one is judged afresh.
    t.like(plan(input({ desired: [d], observed: obs, terminal: { bad: { rev: OLD, code: 'SPEC_INVALID' } } }))[0], { action: 'fail', code: 'SPEC_INVALID', rev: CUR });
  });
}

test('invalid spec is not started even with no back-off and no template', (t) => {
  const d = desired(spec('bad'), { specErrors: INVALID, template: null });
  t.like(plan(input({ desired: [d] }))[0], { action: 'fail', code: 'SPEC_INVALID' });
});

test('a spec fixed after SPEC_INVALID is started', (t) => {
  const d = desired(spec('bad', { _rev: '3-fixed' }));
  t.deepEqual(plan(input({ desired: [d], terminal: { bad: { rev: CUR, code: 'SPEC_INVALID' } } })), [
    { action: 'start', name: 'bad', desired: d, hash: hashOf(d), reason: 'new' },
  ]);
});

for (const phase of ['absent', 'stopped', 'failed', 'materializing'] as const) {
  test(`missing template, observed ${phase} → fail TEMPLATE_MISSING once per revision`, (t) => {
    const d = desired(spec('nt', { template: 'ghost' }), { template: null });
    const obs = phase === 'absent' ? [] : [observed('nt', phase, { exitCode: phase === 'failed' ? 1 : null })];
    const steps = plan(input({ desired: [d], observed: obs }));
    t.is(steps.length, 1);
    t.like(steps[0], { action: 'fail', name: 'nt', rev: CUR, code: 'TEMPLATE_MISSING' });
    if (steps[0]!.action === 'fail') t.true(steps[0]!.message.includes('ghost'));
    t.deepEqual(plan(input({ desired: [d], observed: obs, terminal: { nt: { rev: CUR, code: 'TEMPLATE_MISSING' } } })), []);
    t.like(plan(input({ desired: [d], observed: obs, terminal: { nt: { rev: OLD, code: 'TEMPLATE_MISSING' } } }))[0], { action: 'fail', code: 'TEMPLATE_MISSING' });
    // A terminal record of another kind for this revision does not silence this one.
    t.like(plan(input({ desired: [d], observed: obs, terminal: { nt: { rev: CUR, code: 'SPEC_INVALID' } } }))[0], { action: 'fail', code: 'TEMPLATE_MISSING' });
  });
}

test('missing template while the system runs → left alone (even when the spec changed)', (t) => {
  const d = desired(spec('nt'), { template: null });
  t.deepEqual(plan(input({ desired: [d], observed: [observed('nt', 'running')], applied: { nt: { rev: CUR, hash: 'whatever' } } })), []);
  t.deepEqual(plan(input({ desired: [d], observed: [observed('nt', 'running', { specRev: OLD })], applied: { nt: { rev: OLD, hash: STALE_HASH } } })), []);
  t.deepEqual(plan(input({ desired: [d], observed: [observed('nt', 'running')] })), []);
});

test('missing template with state stopped: a running system is still stopped; nothing else happens', (t) => {
  const d = desired(spec('nt', { state: 'stopped' }), { template: null });
  t.deepEqual(plan(input({ desired: [d], observed: [observed('nt', 'running')] })), [{ action: 'stop', name: 'nt', reason: 'desired-stopped' }]);
  t.deepEqual(plan(input({ desired: [d], observed: [observed('nt', 'stopped', { exitCode: 0 })] })), []);
  t.deepEqual(plan(input({ desired: [d] })), []);
});

test('the template arrives after TEMPLATE_MISSING (same revision) → started', (t) => {
  const d = desired(spec('nt'));
  t.deepEqual(plan(input({ desired: [d], terminal: { nt: { rev: CUR, code: 'TEMPLATE_MISSING' } } })), [
    { action: 'start', name: 'nt', desired: d, hash: hashOf(d), reason: 'new' },
  ]);
});

// ---------------------------------------------------------------------------------------------------
// Agent state loss (no `applied` record).

test('state loss: running this very revision → adopt, not restart', (t) => {
  const d = desired(spec('web'));
  t.deepEqual(plan(input({ desired: [d], observed: [observed('web', 'running', { specRev: CUR })] })), [{ action: 'adopt', name: 'web', rev: CUR, hash: hashOf(d) }]);
});

test('state loss: running an older revision → restart', (t) => {
  const d = desired(spec('web'));
  t.deepEqual(plan(input({ desired: [d], observed: [observed('web', 'running', { specRev: OLD })] })), [
    { action: 'restart', name: 'web', desired: d, hash: hashOf(d), reason: 'spec-changed' },
  ]);
});

test('state loss: running with no recorded revision → restart', (t) => {
  const d = desired(spec('web'));
  t.like(plan(input({ desired: [d], observed: [observed('web', 'running', { specRev: null })] }))[0], { action: 'restart', name: 'web' });
});

test('started by the PE at boot (anybios.boot), no record of ours → adopt, not restart', (t) => {
  const d = desired(spec('web'));
  t.deepEqual(plan(input({ desired: [d], observed: [observed('web', 'running', { specRev: null, startedBy: 'boot' })] })), [{ action: 'adopt', name: 'web', rev: CUR, hash: hashOf(d) }]);
});

test('started by the PE at boot, then the spec changed after we applied it → restart as usual', (t) => {
  const d = desired(spec('web'));
  const applied = { web: { rev: OLD, hash: 'another-hash' } };
  t.like(plan(input({ desired: [d], observed: [observed('web', 'running', { specRev: null, startedBy: 'boot' })], applied }))[0], { action: 'restart', name: 'web', reason: 'spec-changed' });
});

test('state loss: running a since-restarted revision (restartedAt) → restart', (t) => {
  const d = desired(spec('web', { restartedAt: '2024-05-01T10:00:00.000Z' }));
  t.like(plan(input({ desired: [d], observed: [observed('web', 'running', { specRev: OLD })] }))[0], { action: 'restart', name: 'web' });
});

// ---------------------------------------------------------------------------------------------------
// Back-off.

function failedWithBackoff(b: Backoff | undefined, dOver: Partial<SystemDoc> = {}) {
  const d = desired(spec('app', dOver));
  const inp = input({
    desired: [d],
    observed: [observed('app', 'failed', { exitCode: 2, code: 'SYSTEM_EXITED' })],
    applied: { app: { rev: CUR, hash: hashOf(d) } },
    backoff: b ? { app: b } : {},
  });
  return { d, inp };
}

test('back-off: wait until notBefore for the same hash', (t) => {
  const d = desired(spec('app'));
  const { inp } = failedWithBackoff({ hash: hashOf(d), failures: 2, notBefore: NOW + 1 });
  t.deepEqual(plan(inp), [{ action: 'wait', name: 'app', until: NOW + 1, reason: 'restart-policy' }]);
});

test('back-off: due at exactly now → start', (t) => {
  const d = desired(spec('app'));
  const { inp } = failedWithBackoff({ hash: hashOf(d), failures: 2, notBefore: NOW });
  t.like(plan(inp)[0], { action: 'start', reason: 'restart-policy' });
});

test('back-off: past due → start', (t) => {
  const d = desired(spec('app'));
  const { inp } = failedWithBackoff({ hash: hashOf(d), failures: 9, notBefore: NOW - 60_000 });
  t.like(plan(inp)[0], { action: 'start', reason: 'restart-policy' });
});

test('back-off: a changed spec ignores the old back-off', (t) => {
  const before = desired(spec('app', { _rev: OLD }));
  const d = desired(spec('app', { command: ['/bin/fixed'] }));
  const inp = input({
    desired: [d],
    observed: [observed('app', 'failed', { exitCode: 2, specRev: OLD })],
    applied: { app: { rev: OLD, hash: hashOf(before) } },
    backoff: { app: { hash: hashOf(before), failures: 8, notBefore: NOW + 300_000 } },
  });
  t.deepEqual(plan(inp), [{ action: 'start', name: 'app', desired: d, hash: hashOf(d), reason: 'spec-changed' }]);
});

test('back-off: a cosmetic change keeps the back-off (same hash)', (t) => {
  const before = desired(spec('app', { _rev: OLD }));
  const d = desired(spec('app', { labels: { x: 'y' } }));
  t.is(hashOf(d), hashOf(before));
  const inp = input({
    desired: [d],
    observed: [observed('app', 'failed', { exitCode: 2, specRev: OLD })],
    applied: { app: { rev: OLD, hash: hashOf(before) } },
    backoff: { app: { hash: hashOf(before), failures: 8, notBefore: NOW + 300_000 } },
  });
  t.deepEqual(plan(inp), [
    { action: 'adopt', name: 'app', rev: CUR, hash: hashOf(d) },
    { action: 'wait', name: 'app', until: NOW + 300_000, reason: 'restart-policy' },
  ]);
});

test('back-off: a running system with a pending back-off is left alone', (t) => {
  const d = desired(spec('app'));
  const inp = input({
    desired: [d],
    observed: [observed('app', 'running')],
    applied: { app: { rev: CUR, hash: hashOf(d) } },
    backoff: { app: { hash: hashOf(d), failures: 1, notBefore: NOW + 1000 } },
  });
  t.deepEqual(plan(inp), []);
});

test('back-off: never policy does not wait either', (t) => {
  const d = desired(spec('app', { restart: 'never' }));
  const { inp } = failedWithBackoff({ hash: hashOf(d), failures: 2, notBefore: NOW + 1000 }, { restart: 'never' });
  t.deepEqual(plan(inp), []);
});

test('backoffDelay: 1 s, 2 s, 4 s … capped at 5 minutes', (t) => {
  t.is(backoffDelay(0), 1000);
  t.is(backoffDelay(1), 1000);
  t.is(backoffDelay(2), 2000);
  t.is(backoffDelay(3), 4000);
  t.is(backoffDelay(4), 8000);
  t.is(backoffDelay(9), 256_000);
  t.is(backoffDelay(10), 300_000);
  t.is(backoffDelay(11), 300_000);
  t.is(backoffDelay(1000), 300_000);
  t.is(backoffDelay(-3), 1000);
  let prev = 0;
  for (let f = 0; f <= 64; f++) {
    const v = backoffDelay(f);
    t.true(Number.isFinite(v) && v >= prev && v <= 300_000, `failures ${f}: ${v}`);
    prev = v;
  }
});

test('restartPolicy: explicit wins; os → always, app → on-failure by default', (t) => {
  t.is(restartPolicy(desired(spec('a', { kind: 'os' }))), 'always');
  t.is(restartPolicy(desired(spec('a', { kind: 'app' }))), 'on-failure');
  for (const kind of ['os', 'app'] as const)
    for (const r of ['always', 'on-failure', 'never'] as const) t.is(restartPolicy(desired(spec('a', { kind, restart: r }))), r, `${kind}/${r}`);
});

// ---------------------------------------------------------------------------------------------------
// Conflicts and determinism.

test('conflict flag never changes the plan (mixed fleet)', (t) => {
  const build = (conflict: boolean) => {
    const a = desired(spec('a'), { conflict });
    const b = desired(spec('b', { command: ['/x'] }), { conflict });
    const c = desired(spec('c', { state: 'stopped' }), { conflict });
    const dd = desired(spec('d'), { conflict, specErrors: INVALID });
    return input({
      desired: [a, b, c, dd],
      observed: [observed('b', 'running', { specRev: OLD }), observed('c', 'running')],
      applied: { b: { rev: OLD, hash: STALE_HASH } },
    });
  };
  const strip = (steps: Step[]) => steps.map((s) => ('desired' in s ? { ...s, desired: { ...s.desired, conflict: null } } : s));
  const plain = plan(build(false));
  t.is(plain.length, 4);
  t.deepEqual(strip(plan(build(true))), strip(plain));
});

function mixedInput(order: 'forward' | 'reverse'): PlanInput {
  const names = ['zeta', 'alpha', 'mike', 'bravo', 'yankee', 'delta', 'echo', 'kilo'];
  const list = order === 'forward' ? names : [...names].reverse();
  const d = (n: string, over: Partial<SystemDoc> = {}, dOver: Partial<DesiredSystem> = {}) => desired(spec(n, over), dOver);
  const systems: Record<string, DesiredSystem> = {
    zeta: d('zeta'),
    alpha: d('alpha', { state: 'stopped' }),
    mike: d('mike', { command: ['/new'] }),
    bravo: d('bravo', {}, { template: null }),
    echo: d('echo', {}, { specErrors: INVALID }),
    kilo: d('kilo', { labels: { l: '1' } }),
  };
  const observedAll: Record<string, Observed> = {
    alpha: observed('alpha', 'running'),
    mike: observed('mike', 'running', { specRev: OLD }),
    yankee: observed('yankee', 'running'),
    delta: observed('delta', 'stopped', { exitCode: 0 }),
    kilo: observed('kilo', 'running', { specRev: OLD }),
  };
  return input({
    desired: list.filter((n) => systems[n]).map((n) => systems[n]!),
    observed: list.filter((n) => observedAll[n]).map((n) => observedAll[n]!),
    tombstones: order === 'forward' ? ['delta', 'yankee', 'ghost'] : ['ghost', 'yankee', 'delta'],
    statuses: order === 'forward' ? ['ghost', 'delta', 'zeta'] : ['zeta', 'delta', 'ghost'],
    applied: { mike: { rev: OLD, hash: STALE_HASH }, kilo: { rev: OLD, hash: hashOf(systems.kilo!) } },
  });
}

test('determinism: steps sorted by name whatever the insertion order', (t) => {
  const steps = plan(mixedInput('forward'));
  t.deepEqual(
    steps.map((s) => `${s.action}:${s.name}`),
    ['stop:alpha', 'fail:bravo', 'destroy:delta', 'fail:echo', 'deleteStatus:ghost', 'adopt:kilo', 'restart:mike', 'destroy:yankee', 'start:zeta'],
  );
  t.deepEqual(plan(mixedInput('reverse')), steps);
});

test('determinism: the same input gives the same output, and the input is not mutated', (t) => {
  const inp = mixedInput('forward');
  const snapshot = structuredClone(inp);
  const first = plan(inp);
  const second = plan(inp);
  t.deepEqual(second, first);
  t.deepEqual(inp, snapshot);
  t.deepEqual(plan(structuredClone(inp)), first);
});

test('determinism: plan works on frozen input', (t) => {
  const inp = mixedInput('forward');
  const deepFreeze = (v: unknown): void => {
    if (v && typeof v === 'object' && !Object.isFrozen(v)) {
      Object.freeze(v);
      for (const x of Object.values(v)) deepFreeze(x);
    }
  };
  for (const d of inp.desired.values()) deepFreeze(d);
  for (const o of inp.observed.values()) deepFreeze(o);
  for (const m of [inp.applied, inp.backoff, inp.terminal]) for (const v of m.values()) deepFreeze(v);
  t.notThrows(() => plan(inp));
});

test('plan is synchronous: returns an array, not a promise', (t) => {
  const out = plan(input({ desired: [desired(spec('a'))] }));
  t.true(Array.isArray(out));
});

test('at most one action per system (an adopt may precede it)', (t) => {
  for (const c of cells) {
    const { input: inp } = buildCell(c);
    const steps = plan(inp);
    t.true(steps.length <= 2);
    if (steps.length === 2) t.is(steps[0].action, 'adopt');
  }
});

// ---------------------------------------------------------------------------------------------------
// Stopped on purpose, then wanted running again. `state` is not part of the runtime hash, so without a
// mark the planner could not tell "stopped because the spec said so" from "ended on its own under the
// applied spec" (restart policy never, or on-failure with exit 0, would then leave it down for good).
// The executor marks the applied record `stopped` after a desired-stopped stop.

for (const policy of ['always', 'on-failure', 'never'] as const) {
  for (const exitCode of [0, 143, null]) {
    test(`stop → running again: policy ${policy}, exit ${exitCode} → start`, (t) => {
      const d = desired(spec('svc', { _rev: '3-run-again', restart: policy }));
      const obs = [observed('svc', 'stopped', { exitCode, specRev: OLD, message: 'stopped' })];
      const applied = { svc: { rev: '2-stopped', hash: hashOf(d), stopped: true } };
      t.deepEqual(plan(input({ desired: [d], observed: obs, applied, statuses: ['svc'] })), [
        { action: 'start', name: 'svc', desired: d, hash: hashOf(d), reason: 'not-started' },
      ]);
      // The same after agent state loss (no record at all).
      t.deepEqual(plan(input({ desired: [d], observed: obs, statuses: ['svc'] })), [
        { action: 'start', name: 'svc', desired: d, hash: hashOf(d), reason: 'not-started' },
      ]);
      // A back-off for this hash still holds it.
      const backoff = { svc: { hash: hashOf(d), failures: 1, notBefore: NOW + 1000 } };
      t.deepEqual(plan(input({ desired: [d], observed: obs, applied, backoff })), [{ action: 'wait', name: 'svc', until: NOW + 1000, reason: 'not-started' }]);
    });
  }
}

test('stop → running again with a changed command → start with reason spec-changed', (t) => {
  const before = desired(spec('svc', { _rev: OLD }));
  const d = desired(spec('svc', { command: ['/bin/other'] }));
  const inp = input({ desired: [d], observed: [observed('svc', 'stopped', { exitCode: 0, specRev: OLD })], applied: { svc: { rev: OLD, hash: hashOf(before), stopped: true } } });
  t.deepEqual(plan(inp), [{ action: 'start', name: 'svc', desired: d, hash: hashOf(d), reason: 'spec-changed' }]);
});

test('desired stopped, already stopped by us: a newer stopped revision is adopted once (still stopped)', (t) => {
  const d = desired(spec('svc', { state: 'stopped', labels: { x: '1' } }));
  const o = observed('svc', 'stopped', { exitCode: 143, specRev: OLD });
  t.deepEqual(plan(input({ desired: [d], observed: [o], applied: { svc: { rev: OLD, hash: 'h0', stopped: true } } })), [
    { action: 'adopt', name: 'svc', rev: CUR, hash: 'h0', stopped: true },
  ]);
  t.deepEqual(plan(input({ desired: [d], observed: [o], applied: { svc: { rev: CUR, hash: 'h0', stopped: true } } })), []);
});

test('desired stopped, ended on its own (not stopped by us) → recorded as the stopped revision, nothing done', (t) => {
  const d = desired(spec('svc', { state: 'stopped' }));
  const o = observed('svc', 'stopped', { exitCode: 0, specRev: OLD });
  t.deepEqual(plan(input({ desired: [d], observed: [o], applied: { svc: { rev: OLD, hash: 'h0' } } })), [{ action: 'adopt', name: 'svc', rev: CUR, hash: 'h0', stopped: true }]);
  t.deepEqual(plan(input({ desired: [d], observed: [o] })), []);
});

test('template changed on a system with an old restartedAt → reason template-changed', (t) => {
  const s = spec('web', { restartedAt: '2024-01-01T00:00:00.000Z' });
  const d0 = desired(s);
  const d = desired(s, { template: template({ sha256: 'e'.repeat(64) }) });
  const inp = input({ desired: [d], observed: [observed('web', 'running', { specRev: OLD })], applied: { web: { rev: CUR, hash: hashOf(d0) } } });
  t.deepEqual(plan(inp), [{ action: 'restart', name: 'web', desired: d, hash: hashOf(d), reason: 'template-changed' }]);
});

test('template changed while a start was interrupted (materializing) → start on the new template', (t) => {
  const s = spec('web');
  const d0 = desired(s);
  const d = desired(s, { template: template({ sha256: 'f'.repeat(64) }) });
  const inp = input({ desired: [d], observed: [observed('web', 'materializing')], applied: { web: { rev: CUR, hash: hashOf(d0) } } });
  t.deepEqual(plan(inp), [{ action: 'start', name: 'web', desired: d, hash: hashOf(d), reason: 'template-changed' }]);
});
