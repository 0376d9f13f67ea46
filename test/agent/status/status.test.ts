// The status document as a pure function of one pass's facts, and the rule that decides whether it
// is written (no write storms: volatile fields ride along only with a real change or a refresh).
import test from 'ava';
import { statusChanged, statusFor, type StatusFacts } from '../../../agent/status/status.ts';
import type { DesiredSystem } from '../../../agent/model/types.ts';
import type { Observed } from '../../../agent/runtime/index.ts';
import type { StatusDoc } from '../../../ddocs/schemas/types.ts';
import { docErrors } from '../../../ddocs/validate.ts';

const NOW = Date.parse('2026-11-26T02:00:00.000Z');
const desired = (over: Partial<DesiredSystem['spec']> = {}, conflict = false): DesiredSystem => ({
  spec: { _id: 'system:web', _rev: '3-cur', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'], ...over },
  template: { _id: 'template:host', type: 'template', name: 'host', source: 'host' },
  specErrors: [],
  conflict,
});
const observed = (over: Partial<Observed> = {}): Observed => ({
  name: 'web', phase: 'running', kind: 'app', template: 'host', pid: 42, startTime: 1, supervisor: { pid: 41, startTime: 1 } as never,
  exitCode: null, restarts: 0, specRev: '3-cur', strategy: 'overlay', startedAt: '2026-11-26T01:59:00.000Z', diskUsed: 4096, code: null, message: null, ...over,
});
const facts = (over: Partial<StatusFacts> = {}): StatusFacts => ({
  name: 'web', desired: desired(), observed: observed(), applied: { rev: '3-cur', hash: 'h' }, hash: 'h',
  lastError: undefined, terminal: undefined, waitingUntil: undefined, logTail: 'hello\n', now: NOW, ...over,
});

test('running: phase, pid, observedRev from what was applied; always a valid status document', (t) => {
  const s = statusFor(facts());
  t.like(s, { _id: 'status:web', phase: 'running', pid: 42, observedRev: '3-cur', code: null, conflict: false, diskUsed: 4096, logTail: 'hello\n' });
  t.deepEqual(docErrors(s), []);
});

test('each phase, with its code and message', (t) => {
  t.is(statusFor(facts({ observed: undefined, applied: undefined })).phase, 'pending');
  t.is(statusFor(facts({ observed: observed({ phase: 'materializing', pid: null }) })).phase, 'materializing');
  const exited0 = statusFor(facts({ observed: observed({ phase: 'stopped', pid: null, exitCode: 0 }) }));
  t.like(exited0, { phase: 'stopped', pid: null, exitCode: 0, message: 'exited with code 0' });
  const exited1 = statusFor(facts({ observed: observed({ phase: 'stopped', pid: null, exitCode: 1 }) }));
  t.like(exited1, { phase: 'failed', exitCode: 1, code: 'EXITED' });
  const failed = statusFor(facts({ observed: observed({ phase: 'failed', pid: null, exitCode: null, code: 'START_FAILED' as never, message: 'mount failed' }) }));
  t.like(failed, { phase: 'failed', code: 'START_FAILED', message: 'mount failed' });
  const stopped = statusFor(facts({ desired: desired({ state: 'stopped' }), observed: observed({ phase: 'stopped', pid: null, exitCode: 143 }) }));
  t.like(stopped, { phase: 'stopped', observedRev: '3-cur' });
  for (const s of [exited0, exited1, failed, stopped]) t.deepEqual(docErrors(s), []);
});

test('a start error of the current spec is failed with its code; an older one is not', (t) => {
  const err = { hash: 'h', code: 'TEMPLATE_HOST_ROOTLESS', message: 'no host template rootless', at: NOW };
  t.like(statusFor(facts({ observed: undefined, lastError: err })), { phase: 'failed', code: 'TEMPLATE_HOST_ROOTLESS' });
  t.is(statusFor(facts({ observed: undefined, lastError: { ...err, hash: 'old' } })).phase, 'pending');
});

test('terminal errors win unless the system runs; back-off is said in the message', (t) => {
  const terminal = { rev: '3-cur', code: 'SPEC_INVALID', message: 'the spec is invalid: /x unknown field' };
  t.like(statusFor(facts({ observed: undefined, applied: undefined, terminal })), { phase: 'failed', code: 'SPEC_INVALID', observedRev: '3-cur' });
  t.is(statusFor(facts({ terminal })).phase, 'running', 'a running system is reported as running');
  t.is(statusFor(facts({ observed: undefined, terminal: { ...terminal, rev: '2-old' } })).phase, 'pending', 'an older revision\'s terminal error does not count');
  const waiting = statusFor(facts({ observed: observed({ phase: 'stopped', pid: null, exitCode: 1 }), waitingUntil: NOW + 4000 }));
  t.regex(waiting.message!, /next start in 4 s \(back-off\)/);
});

test('conflict flag, and long messages and log tails are bounded', (t) => {
  t.true(statusFor(facts({ desired: desired({}, true) })).conflict);
  const long = statusFor(facts({ logTail: 'x'.repeat(10_000), lastError: { hash: 'h', code: 'START_FAILED', message: 'm'.repeat(5000), at: NOW }, observed: undefined }));
  t.is(long.logTail!.length, 4096);
  t.is(long.message!.length, 4096);
  t.deepEqual(docErrors(long), []);
});

test('statusChanged: only real changes, or a refresh after refreshMs, cause a write', (t) => {
  const base = statusFor(facts());
  const stored = { ...base, _rev: '5-x' } as StatusDoc;
  t.true(statusChanged(null, base, NOW), 'nothing stored yet');
  t.false(statusChanged(stored, { ...base, updated: new Date(NOW + 1000).toISOString(), logTail: 'other', diskUsed: 1 }, NOW + 1000), 'volatile fields alone');
  t.true(statusChanged(stored, { ...base, phase: 'failed' }, NOW + 1000));
  t.true(statusChanged(stored, { ...base, observedRev: '4-new' }, NOW + 1000));
  t.true(statusChanged(stored, { ...base, restarts: 1 }, NOW + 1000));
  t.true(statusChanged(stored, { ...base, conflict: true }, NOW + 1000));
  t.true(statusChanged(stored, base, NOW + 300_000), 'refreshed after 5 minutes');
  const { pid: _pid, ...withoutPid } = base;
  t.true(statusChanged(stored, withoutPid as StatusDoc, NOW + 1000), 'a field that disappears is a change');
});
