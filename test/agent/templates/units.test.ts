// The pure and file-level parts of templates on a node: the gate (host built in, enabled, pulled yet),
// what the planner and the status make of a blocked template, the collector, the disk check.
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_TEMPLATE, gateTemplate } from '../../../agent/templates/gate.ts';
import { collectTemplates } from '../../../agent/templates/collect.ts';
import { checkRoom, freeBytes } from '../../../agent/templates/disk.ts';
import { pullPaths } from '../../../agent/templates/paths.ts';
import { plan } from '../../../agent/plan/plan.ts';
import { statusFor } from '../../../agent/status/status.ts';
import { docErrors } from '../../../ddocs/validate.ts';
import type { TemplateDoc } from '../../../ddocs/schemas/types.ts';
import { desired, input, observed, spec } from '../plan/fixtures.ts';

const tar = (over: Partial<TemplateDoc> = {}): TemplateDoc => ({ _id: 'template:deb', type: 'template', name: 'deb', source: 'tar', sha256: 'b'.repeat(64), ...over });
const noPull = () => undefined;

test('host needs no catalog document, and is allowed only where the agent allows it', (t) => {
  t.deepEqual(gateTemplate('host', null, { hostAllowed: true, pullBlocked: noPull }), { template: HOST_TEMPLATE });
  const denied = gateTemplate('host', null, { hostAllowed: false, pullBlocked: noPull });
  t.is(denied.blocked?.code, 'TEMPLATE_HOST_DENIED');
  t.true(denied.blocked?.stop);
  t.deepEqual(docErrors(HOST_TEMPLATE), []);
});

test('a catalog template:host describes host or disables it; it never redefines it', (t) => {
  const described = { ...HOST_TEMPLATE, description: 'this machine' };
  t.is(gateTemplate('host', described, { hostAllowed: true, pullBlocked: noPull }).template, described);
  t.is(gateTemplate('host', { ...HOST_TEMPLATE, enabled: false }, { hostAllowed: true, pullBlocked: noPull }).blocked?.code, 'TEMPLATE_DISABLED');
  // the schema refuses another source under the name host
  t.true(docErrors({ _id: 'template:host', type: 'template', name: 'host', source: 'tar', sha256: 'a'.repeat(64) }).length > 0);
  t.deepEqual(docErrors({ ...HOST_TEMPLATE, enabled: false }), []);
});

test('other templates: missing stays missing, disabled is blocked, a tar waits for its pull', (t) => {
  t.deepEqual(gateTemplate('deb', null, { hostAllowed: true, pullBlocked: noPull }), { template: null });
  t.is(gateTemplate('deb', tar({ enabled: false }), { hostAllowed: true, pullBlocked: noPull }).blocked?.code, 'TEMPLATE_DISABLED');
  const waiting = gateTemplate('deb', tar(), { hostAllowed: true, pullBlocked: () => ({ code: null, message: 'pulling' }) });
  t.deepEqual(waiting.blocked, { code: null, message: 'pulling' });
  t.is(gateTemplate('deb', tar(), { hostAllowed: true, pullBlocked: noPull }).blocked, undefined);
});

test('planner: a blocked template starts nothing; a stopping block stops a running system, a pull does not', (t) => {
  const s = spec('web');
  t.deepEqual(plan(input({ desired: [desired(s, { blocked: { code: null, message: 'pulling' } })] })), []);
  const running = observed('web', 'running', { specRev: s._rev });
  t.deepEqual(plan(input({ desired: [desired(s, { blocked: { code: null, message: 'pulling a new version' } })], observed: [running] })), []);
  t.deepEqual(plan(input({ desired: [desired(s, { blocked: { code: 'TEMPLATE_HOST_DENIED', message: 'no', stop: true } })], observed: [running] })), [{ action: 'stop', name: 'web', reason: 'template-blocked' }]);
});

test('status: pending while pulling, failed with the code when refused; a missing verdict yields to an arrived template', (t) => {
  const s = spec('web');
  const base = { name: 'web', observed: undefined, applied: undefined, hash: null, lastError: undefined, waitingUntil: undefined, logTail: '', now: Date.now() };
  const pending = statusFor({ ...base, desired: desired(s, { blocked: { code: null, message: 'pulling template deb: 40% of 200 MB' } }), terminal: undefined });
  t.like(pending, { phase: 'pending', code: null, message: 'pulling template deb: 40% of 200 MB' });
  const refused = statusFor({ ...base, desired: desired(s, { blocked: { code: 'TEMPLATE_NO_SPACE', message: 'full' } }), terminal: { rev: s._rev, code: 'TEMPLATE_MISSING' } });
  t.like(refused, { phase: 'failed', code: 'TEMPLATE_NO_SPACE' });
  t.deepEqual(docErrors(refused), []);
  const stillMissing = statusFor({ ...base, desired: desired(s, { template: null }), terminal: { rev: s._rev, code: 'TEMPLATE_MISSING' } });
  t.like(stillMissing, { phase: 'failed', code: 'TEMPLATE_MISSING' });
});

function dataDir(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'anybios-tpl-units-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('collector: unused templates go after the grace; used ones (desired or a system lower) stay; a tarball goes once unpacked', async (t) => {
  const d = dataDir(t);
  const [a, b, c, e] = ['a', 'b', 'c', 'e'].map((x) => x.repeat(64));
  const p = pullPaths(d);
  for (const sha of [a, b, c]) mkdirSync(p.unpacked(sha), { recursive: true });
  mkdirSync(join(d, 'templates', 'not-a-sha'));
  mkdirSync(p.dir, { recursive: true });
  writeFileSync(p.tar(a), 'x'); // unpacked already: not needed
  writeFileSync(p.part(e), 'x'); // an abandoned pull
  mkdirSync(join(d, 'systems', 'old'), { recursive: true });
  writeFileSync(join(d, 'systems', 'old', 'state.json'), JSON.stringify({ template: { lower: p.unpacked(c) } }));
  const unusedSince = new Map<string, number>();
  const o = { dataDir: d, wanted: new Set([a]), active: null, graceMs: 1000, unusedSince, log: () => {} };
  t.deepEqual(await collectTemplates({ ...o, now: 0 }), []);
  t.false(existsSync(p.tar(a)), 'the tarball of an unpacked template is removed at once');
  t.deepEqual([...unusedSince.keys()].sort(), [b, e]);
  t.deepEqual(await collectTemplates({ ...o, now: 500 }), [], 'not before the grace');
  t.deepEqual((await collectTemplates({ ...o, now: 1000 })).sort(), [b, e]);
  t.true(existsSync(p.unpacked(a)));
  t.false(existsSync(p.unpacked(b)));
  t.true(existsSync(p.unpacked(c)), 'a system still records it as its lower');
  t.false(existsSync(p.part(e)));
  t.true(existsSync(join(d, 'templates', 'not-a-sha')), 'only sha256-named entries are ours to remove');
});

test('collector: a used-again template starts its grace afresh; the pull in progress is left alone', async (t) => {
  const d = dataDir(t);
  const b = 'b'.repeat(64);
  const p = pullPaths(d);
  mkdirSync(p.dir, { recursive: true });
  writeFileSync(p.part(b), 'x');
  const unusedSince = new Map([[b, 0]]);
  t.deepEqual(await collectTemplates({ dataDir: d, wanted: new Set(), active: b, graceMs: 10, now: 100, unusedSince, log: () => {} }), []);
  t.true(existsSync(p.part(b)));
  mkdirSync(p.unpacked(b), { recursive: true });
  await collectTemplates({ dataDir: d, wanted: new Set([b]), active: null, graceMs: 10, now: 200, unusedSince, log: () => {} });
  t.false(unusedSince.has(b));
});

test('paths: a name that is not a sha256 never becomes a path', (t) => {
  const p = pullPaths('/data');
  t.throws(() => p.tar('../../etc/passwd'), { message: /not a sha256/ });
  t.throws(() => p.unpacked('A'.repeat(64)), { message: /not a sha256/ });
});

test('disk: a need above what is free (after the reserve) is refused with TEMPLATE_NO_SPACE', async (t) => {
  const d = dataDir(t);
  const free = await freeBytes(d);
  await t.notThrowsAsync(checkRoom(d, 1024, 0, 'small'));
  const err = await t.throwsAsync(checkRoom(d, free + 1e9, 0, 'template x'));
  t.is((err as { code?: string }).code, 'TEMPLATE_NO_SPACE');
  t.regex(err!.message, /template x needs \d+ MB .* has \d+ MB free: refused before pulling/);
});

test('a template just named by a new system is pending until the catalog has answered for it, then missing', (t) => {
  const asking = gateTemplate('deb', null, { hostAllowed: true, pullBlocked: noPull, answered: () => false });
  t.deepEqual(asking, { template: null, blocked: { code: null, message: 'template deb: asking the catalog for it' } });
  t.deepEqual(gateTemplate('deb', null, { hostAllowed: true, pullBlocked: noPull, answered: () => true }), { template: null });
});
