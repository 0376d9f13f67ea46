// The status history: phase transitions appended by the pure status rule, bounded, schema-valid, and
// never a cause of a status write of its own.
import test from 'ava';
import { statusChanged, statusFor, type StatusFacts } from '../../../agent/status/status.ts';
import type { Observed } from '../../../agent/runtime/index.ts';
import type { StatusDoc } from '../../../ddocs/schemas/types.ts';
import { docErrors } from '../../../ddocs/validate.ts';

const T0 = Date.parse('2026-11-26T02:00:00.000Z');
const observed = (over: Partial<Observed> = {}): Observed => ({
  name: 'web', phase: 'running', kind: 'app', template: 'host', pid: 42, startTime: 1, supervisor: { pid: 41, startTime: 1 } as never,
  exitCode: null, restarts: 0, specRev: '3-cur', strategy: 'overlay', startedAt: '2026-11-26T01:59:00.000Z', diskUsed: 4096, code: null, message: null, ...over,
});
const facts = (over: Partial<StatusFacts> = {}): StatusFacts => ({
  name: 'web',
  desired: { spec: { _id: 'system:web', _rev: '3-cur', type: 'system', name: 'web', kind: 'app', template: 'host', state: 'running', command: ['/bin/true'] }, template: { _id: 'template:host', type: 'template', name: 'host', source: 'host' }, specErrors: [], conflict: false },
  observed: observed(), applied: { rev: '3-cur', hash: 'h' }, hash: 'h', lastError: undefined, terminal: undefined, waitingUntil: undefined, logTail: '', now: T0, ...over,
});

test('a transition appends {at, phase, exitCode, code, message}; the same phase appends nothing', (t) => {
  const first = statusFor(facts());
  t.deepEqual(first.history, [{ at: '2026-11-26T02:00:00.000Z', phase: 'running', exitCode: null, code: null, message: '' }]);
  const same = statusFor(facts({ previous: first, now: T0 + 1000 }));
  t.deepEqual(same.history, first.history);
  t.false(statusChanged(first, same, T0 + 1000), 'an unchanged phase makes no write, history included');
  const failed = statusFor(facts({ previous: same, now: T0 + 2000, observed: observed({ phase: 'stopped', pid: null, exitCode: 3 }) }));
  t.is(failed.history!.length, 2);
  t.like(failed.history![1], { at: '2026-11-26T02:00:02.000Z', phase: 'failed', exitCode: 3, code: 'EXITED', message: 'exited with code 3' });
  t.true(statusChanged(same, failed, T0 + 2000));
  t.deepEqual(docErrors(failed), []);
});

test('bounded: the newest N kept (default 20, at most 100, 0 keeps none)', (t) => {
  let prev: StatusDoc | null = null;
  for (let i = 0; i < 60; i++) {
    prev = statusFor(facts({ previous: prev, now: T0 + i * 1000, observed: i % 2 ? observed() : observed({ phase: 'stopped', pid: null, exitCode: 1 }) }));
  }
  t.is(prev!.history!.length, 20);
  t.is(prev!.history![19].at, new Date(T0 + 59_000).toISOString(), 'the newest is last');
  t.is(statusFor(facts({ previous: prev, historyLimit: 5, observed: observed({ phase: 'stopped', pid: null, exitCode: 1 }) })).history!.length, 5);
  t.is(statusFor(facts({ previous: prev, historyLimit: 1000, observed: observed({ phase: 'stopped', pid: null, exitCode: 1 }) })).history!.length, 21);
  t.deepEqual(statusFor(facts({ previous: prev, historyLimit: 0 })).history, []);
});

test('the schema refuses a hostile history (too long, unknown fields, bad phase)', (t) => {
  const base = statusFor(facts());
  const entry = base.history![0];
  t.deepEqual(docErrors({ ...base, history: Array(100).fill(entry) }), []);
  t.regex(JSON.stringify(docErrors({ ...base, history: Array(101).fill(entry) })), /\/history/);
  t.regex(JSON.stringify(docErrors({ ...base, history: [{ ...entry, shell: 'x' }] })), /\/history\/0\/shell/);
  t.regex(JSON.stringify(docErrors({ ...base, history: [{ ...entry, phase: 'exploded' }] })), /\/history\/0\/phase/);
  t.regex(JSON.stringify(docErrors({ ...base, history: [{ ...entry, message: 'x'.repeat(513) }] })), /\/history\/0\/message/);
});
