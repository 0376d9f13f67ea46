// Conflicts and revision history over real HTTP. A conflict is made the way replication makes one: two
// sibling revisions written with `_bulk_docs` and `new_edits: false`. Then: listed, shown with a diff,
// resolved (keep / merged) into a single leaf with nothing lost, stale and foreign resolutions refused;
// history and restore; and the CLI end to end.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFleet, type Fleet } from '../../helpers/fleet.ts';
import { CLI, call, external, uniq, type TestServer } from '../../helpers/server.ts';
import { eventually } from '../../helpers/wait.ts';

let s: TestServer;
const a = uniq('cfa');
const b = uniq('cfb');
const operator = uniq('cfop');
const auth: Record<string, string> = {};
const files = mkdtempSync(join(tmpdir(), 'anybios-conflicts-'));
const app = (name: string, extra: object = {}) => ({ name, kind: 'app', template: 'host', state: 'running', command: ['/bin/echo', 'v1'], ...extra });
const dbOf = (node: string) => `anybios-node-${node}`;

let fleet: Fleet | undefined;
test.before(async () => {
  fleet = await startFleet({ a, b, operator });
  s = fleet.server;
  Object.assign(auth, fleet.auth);
});

test.after.always(async () => {
  rmSync(files, { recursive: true, force: true });
  await fleet?.stop();
});

const api = (path: string, init: Parameters<typeof call>[2] = {}) => call(s.url, `/api${path}`, { auth: auth.admin, ...init });
// Accept JSON: without it Apache CouchDB answers open_revs in multipart/mixed (the embedded server in JSON).
const couch = (db: string, path: string) => call(s.couchUrl, `/${encodeURIComponent(db)}/${path}`, { auth: auth.admin, headers: { Accept: 'application/json' } });

/** The index is eventually consistent: poll until `pred` holds (≤ 5 s). */
const until = <T>(fn: () => Promise<T>, pred: (v: T) => boolean) => eventually('the fleet index to catch up', fn, pred, { ms: 5000, interval: 50 });

/** CouchDB's winner among leaves of the same generation: the greater revision string. */
const winnerOf = (x: string, y: string) => (x > y ? x : y);

/**
 * Creates `id` in `db` (revision 1 = `base`), then writes two sibling revisions 2-… with `left` and
 * `right` as replication would (new_edits: false). Returns the revisions.
 */
async function makeConflict(db: string, id: string, base: object, left: object, right: object): Promise<{ rev1: string; left: string; right: string; winner: string; loser: string }> {
  const created = await s.admin.use(db).insert({ _id: id, ...base } as never);
  const parent = created.rev.slice(2);
  const sibling = (extra: object) => {
    const hash = randomBytes(16).toString('hex');
    return { doc: { _id: id, ...base, ...extra, _rev: `2-${hash}`, _revisions: { start: 2, ids: [hash, parent] } }, rev: `2-${hash}` };
  };
  const l = sibling(left);
  const r = sibling(right);
  await s.admin.request({ db, path: '_bulk_docs', method: 'POST', body: { new_edits: false, docs: [l.doc, r.doc] } });
  const winner = winnerOf(l.rev, r.rev);
  return { rev1: created.rev, left: l.rev, right: r.rev, winner, loser: winner === l.rev ? r.rev : l.rev };
}

/** Live leaves of a document (open_revs=all without deleted ones) and its `_conflicts`. */
async function leaves(db: string, id: string): Promise<{ live: string[]; conflicts: string[] }> {
  const all = await couch(db, `${encodeURIComponent(id)}?open_revs=all`);
  const live = (all.body as { ok?: { _rev: string; _deleted?: boolean } }[]).filter((r) => r.ok && !r.ok._deleted).map((r) => r.ok!._rev);
  const cur = await couch(db, `${encodeURIComponent(id)}?conflicts=true`);
  return { live, conflicts: cur.body._conflicts ?? [] };
}

const systemBase = (name: string) => ({ type: 'system', ...app(name) });

test.serial('a conflict is listed fleet-wide, flagged on the system row, and shown side by side with a diff', async (t) => {
  const c = await makeConflict(dbOf(a), 'system:web', systemBase('web'), { command: ['/bin/echo', 'left'], state: 'stopped' }, { command: ['/bin/echo', 'right', 'more'] });
  const listed = await until(() => api('/conflicts'), (r) => r.body.some((x: { id: string; db: string }) => x.id === 'system:web' && x.db === dbOf(a)));
  t.is(listed.status, 200, listed.text);
  const row = listed.body.find((x: { id: string; db: string }) => x.id === 'system:web' && x.db === dbOf(a));
  t.deepEqual(row, { node: a, db: dbOf(a), id: 'system:web', type: 'system', name: 'web', winner: c.winner, conflicts: [c.loser] });
  const rows = await until(() => api(`/systems?node=${a}`), (r) => r.body.some((x: { name: string; conflict: boolean }) => x.name === 'web' && x.conflict));
  t.true(rows.body.find((x: { name: string }) => x.name === 'web').conflict);
  t.deepEqual((await api(`/conflicts?node=${a}`)).body.map((x: { id: string }) => x.id), ['system:web']);
  t.is((await api('/conflicts?colour=red')).status, 400);

  const shown = await api(`/nodes/${a}/systems/web/conflicts`);
  t.is(shown.status, 200, shown.text);
  t.is(shown.body.id, 'system:web');
  t.is(shown.body.winner.rev, c.winner);
  t.is(shown.body.others.length, 1);
  t.is(shown.body.others[0].rev, c.loser);
  t.is(shown.body.winner.doc._rev, undefined, 'documents come without bookkeeping');
  const leftWins = c.winner === c.left;
  const [w, o] = leftWins ? [['/bin/echo', 'left'], ['/bin/echo', 'right', 'more']] : [['/bin/echo', 'right', 'more'], ['/bin/echo', 'left']];
  t.deepEqual(shown.body.winner.doc.command, w);
  t.deepEqual(shown.body.others[0].doc.command, o);
  const diff = shown.body.others[0].diff as { path: string; kind: string; winner?: unknown; other?: unknown }[];
  t.deepEqual(diff.find((d) => d.path === '/command/1'), { path: '/command/1', kind: 'changed', winner: w[1], other: o[1] });
  t.deepEqual(diff.find((d) => d.path === '/command/2'), leftWins ? { path: '/command/2', kind: 'added', other: 'more' } : { path: '/command/2', kind: 'removed', winner: 'more' });
  t.deepEqual(diff.find((d) => d.path === '/state'), { path: '/state', kind: 'changed', winner: leftWins ? 'stopped' : 'running', other: leftWins ? 'running' : 'stopped' });
  t.is(diff.length, 3);

  t.is((await api(`/nodes/${a}/systems/ghost/conflicts`)).status, 404);
  const calm = await api(`/nodes/${a}/systems`, { method: 'POST', json: app('calm') });
  t.is(calm.status, 201);
  const none = await api(`/nodes/${a}/systems/calm/conflicts`);
  t.deepEqual(none.body.others, [], 'a document without conflict shows its one version');
});

test.serial('resolve by keeping the losing version: one leaf left, the winner rebased, nothing lost', async (t) => {
  const before = (await api(`/nodes/${a}/systems/web/conflicts`)).body;
  const loser = before.others[0];
  t.is((await api(`/nodes/${a}/systems/web/conflicts/resolve`, { method: 'POST', json: { keep: '9-ffff' } })).status, 409, 'a revision that is no leaf is stale');
  t.is((await api(`/nodes/${a}/systems/web/conflicts/resolve`, { method: 'POST', json: { keep: loser.rev, revs: [loser.rev] } })).status, 409, 'another leaf set than the one seen');
  t.is((await api(`/nodes/${a}/systems/web/conflicts/resolve`, { method: 'POST', json: { keep: 'nope' } })).status, 400);
  t.is((await api(`/nodes/${a}/systems/web/conflicts/resolve`, { method: 'POST', json: {} })).status, 400);

  const r = await api(`/nodes/${a}/systems/web/conflicts/resolve`, { method: 'POST', json: { keep: loser.rev, revs: [before.winner.rev, loser.rev] } });
  t.is(r.status, 200, r.text);
  t.regex(r.body.rev, /^3-/, 'a new revision on top of the winner');
  t.deepEqual(r.body.deleted, [loser.rev]);

  const l = await leaves(dbOf(a), 'system:web');
  t.deepEqual(l.live, [r.body.rev]);
  t.deepEqual(l.conflicts, []);
  const now = (await api(`/nodes/${a}/systems/web`)).body.spec;
  t.deepEqual(now.command, loser.doc.command);
  t.is(now.state, loser.doc.state);
  // Nothing lost: both former leaves are still readable by revision.
  const oldWinner = await couch(dbOf(a), `system%3Aweb?rev=${before.winner.rev}`);
  t.deepEqual(oldWinner.body.command, before.winner.doc.command);
  const oldLoser = await couch(dbOf(a), `system%3Aweb?rev=${loser.rev}`);
  t.deepEqual(oldLoser.body.command, loser.doc.command);

  const gone = await until(() => api('/conflicts'), (x) => !x.body.some((c: { id: string; db: string }) => c.id === 'system:web' && c.db === dbOf(a)));
  t.false(gone.body.some((c: { id: string; db: string }) => c.id === 'system:web' && c.db === dbOf(a)));
  const rows = await until(() => api(`/systems?node=${a}`), (x) => x.body.some((y: { name: string; conflict: boolean }) => y.name === 'web' && !y.conflict));
  t.false(rows.body.find((x: { name: string }) => x.name === 'web').conflict);
  t.is((await api(`/nodes/${a}/systems/web/conflicts/resolve`, { method: 'POST', json: { keep: r.body.rev } })).status, 409, 'nothing left to resolve');
});

test.serial('resolve by keeping the winner deletes the other leaves without a new revision', async (t) => {
  const c = await makeConflict(dbOf(a), 'system:keepw', systemBase('keepw'), { state: 'stopped' }, { command: ['/bin/echo', 'w'] });
  const r = await api(`/nodes/${a}/systems/keepw/conflicts/resolve`, { method: 'POST', json: { keep: c.winner } });
  t.is(r.status, 200, r.text);
  t.is(r.body.rev, c.winner);
  t.deepEqual((await leaves(dbOf(a), 'system:keepw')).live, [c.winner]);
});

test.serial('resolve by a merged document: schema-checked first, stale base refused, then one leaf', async (t) => {
  const c = await makeConflict(dbOf(a), 'volume:data', { type: 'volume', name: 'data' }, { description: 'from site A' }, { description: 'from site B', labels: { site: 'b' } });
  const shown = (await api(`/nodes/${a}/volumes/data/conflicts`)).body;
  t.is(shown.winner.rev, c.winner);
  const bad = await api(`/nodes/${a}/volumes/data/conflicts/resolve`, { method: 'POST', json: { merged: { name: 'data', size: 'huge' } } });
  t.is(bad.status, 400, bad.text);
  t.deepEqual(bad.body.details.map((d: { path: string }) => d.path), ['/size']);
  t.is((await api(`/nodes/${a}/volumes/data/conflicts/resolve`, { method: 'POST', json: { merged: { name: 'other' } } })).status, 400, 'merged must be this document');
  t.is((await api(`/nodes/${a}/volumes/data/conflicts/resolve`, { method: 'POST', json: { merged: { name: 'data', _rev: c.rev1 } } })).status, 409, 'merged on a stale base');
  t.is((await api(`/nodes/${a}/volumes/data/conflicts/resolve`, { method: 'POST', json: { keep: c.winner, merged: { name: 'data' } } })).status, 400, 'keep or merged, not both');

  const merged = { name: 'data', description: 'from sites A and B', labels: { site: 'b' }, _rev: c.winner };
  const r = await api(`/nodes/${a}/volumes/data/conflicts/resolve`, { method: 'POST', json: { merged } });
  t.is(r.status, 200, r.text);
  t.true(r.body.merged);
  t.deepEqual(r.body.deleted, [c.loser]);
  const l = await leaves(dbOf(a), 'volume:data');
  t.deepEqual(l.live, [r.body.rev]);
  t.deepEqual(l.conflicts, []);
  const now = (await api(`/nodes/${a}/volumes/data`)).body;
  t.is(now.description, 'from sites A and B');
  t.deepEqual(now.labels, { site: 'b' });
  for (const rev of [c.left, c.right]) t.regex((await couch(dbOf(a), `volume%3Adata?rev=${rev}`)).body.description, /^from site [AB]$/);
});

test.serial('templates in the catalog: listed with node null, resolved by an operator, not by a node', async (t) => {
  const name = uniq('tplc');
  const c = await makeConflict('anybios', `template:${name}`, { type: 'template', name, source: 'host' }, { description: 'x' }, { description: 'y' });
  const listed = await until(() => api('/conflicts'), (r) => r.body.some((x: { id: string }) => x.id === `template:${name}`));
  t.like(listed.body.find((x: { id: string }) => x.id === `template:${name}`), { node: null, db: 'anybios', type: 'template', name, winner: c.winner });
  t.is((await api(`/templates/${name}/conflicts`, { auth: auth.a })).body.others.length, 1, 'a node reads the catalog');
  const refused = await api(`/templates/${name}/conflicts/resolve`, { method: 'POST', json: { keep: c.winner }, auth: auth.a });
  t.is(refused.status, 403, refused.text);
  t.is((await leaves('anybios', `template:${name}`)).live.length, 2, 'a refused resolution writes nothing');
  const r = await api(`/templates/${name}/conflicts/resolve`, { method: 'POST', json: { keep: c.loser }, auth: auth.op });
  t.is(r.status, 200, r.text);
  t.is((await leaves('anybios', `template:${name}`)).live.length, 1);
  await api(`/templates/${name}`, { method: 'DELETE', auth: auth.op });
});

test.serial('a node resolves conflicts in its own database only, and sees only its own', async (t) => {
  const ca = await makeConflict(dbOf(a), 'system:mine', systemBase('mine'), { state: 'stopped' }, { command: ['/bin/echo', 'a2'] });
  const cb = await makeConflict(dbOf(b), 'system:theirs', systemBase('theirs'), { state: 'stopped' }, { command: ['/bin/echo', 'b2'] });
  await until(() => api('/conflicts'), (r) => r.body.some((x: { name: string }) => x.name === 'theirs') && r.body.some((x: { name: string }) => x.name === 'mine'));
  const seen = await api('/conflicts', { auth: auth.a });
  t.is(seen.status, 200);
  t.true(seen.body.some((x: { name: string }) => x.name === 'mine'));
  t.false(seen.body.some((x: { node: string | null }) => x.node === b), 'no conflicts of other nodes');
  t.is((await api(`/conflicts?node=${b}`, { auth: auth.a })).status, 403);

  t.is((await api(`/nodes/${b}/systems/theirs/conflicts`, { auth: auth.a })).status, 403);
  const foreign = await api(`/nodes/${b}/systems/theirs/conflicts/resolve`, { method: 'POST', json: { keep: cb.winner }, auth: auth.a });
  t.is(foreign.status, 403, foreign.text);
  t.is((await leaves(dbOf(b), 'system:theirs')).live.length, 2);

  const own = await api(`/nodes/${a}/systems/mine/conflicts/resolve`, { method: 'POST', json: { keep: ca.loser }, auth: auth.a });
  t.is(own.status, 200, own.text);
  t.is((await leaves(dbOf(a), 'system:mine')).live.length, 1);
  const theirs = await api(`/nodes/${b}/systems/theirs/conflicts/resolve`, { method: 'POST', json: { keep: cb.winner }, auth: auth.b });
  t.is(theirs.status, 200, theirs.text);
});

test.serial('history lists revisions newest first with their changes; restore brings old content back', async (t) => {
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', json: app('hist') })).status, 201);
  let spec = (await api(`/nodes/${a}/systems/hist`)).body.spec;
  const rev1 = spec._rev;
  await api(`/nodes/${a}/systems/hist`, { method: 'PUT', json: { ...spec, command: ['/bin/echo', 'v2'], labels: { tier: 'web' } } });
  spec = (await api(`/nodes/${a}/systems/hist`)).body.spec;
  const rev2 = spec._rev;
  const stopped = await api(`/nodes/${a}/systems/hist/stop`, { method: 'POST' });
  const rev3 = stopped.body.rev;

  const h = await api(`/nodes/${a}/systems/hist/history`);
  t.is(h.status, 200, h.text);
  t.deepEqual(h.body.map((e: { rev: string }) => e.rev), [rev3, rev2, rev1]);
  t.true(h.body.every((e: { status: string; doc?: object }) => e.status === 'available' && e.doc));
  t.deepEqual(h.body[0].changes, [{ path: '/state', kind: 'changed', before: 'running', after: 'stopped' }]);
  t.deepEqual(h.body[1].changes, [
    { path: '/command/1', kind: 'changed', before: 'v1', after: 'v2' },
    { path: '/labels', kind: 'added', after: { tier: 'web' } },
  ]);
  t.true(h.body[2].changes.some((c: { path: string; kind: string }) => c.path === '/command' && c.kind === 'added'), 'the first revision adds everything');
  t.is(h.body[2].doc.command[1], 'v1');

  const restored = await api(`/nodes/${a}/systems/hist/restore`, { method: 'POST', json: { rev: rev1 } });
  t.is(restored.status, 200, restored.text);
  t.regex(restored.body.rev, /^4-/, 'a new revision on top of the current one');
  const now = (await api(`/nodes/${a}/systems/hist`)).body.spec;
  t.deepEqual(now.command, ['/bin/echo', 'v1']);
  t.is(now.state, 'running');
  t.is(now.labels, undefined);
  const after = (await api(`/nodes/${a}/systems/hist/history`)).body;
  t.is(after.length, 4);
  t.deepEqual(after[0].changes.map((c: { path: string }) => c.path).sort(), ['/command/1', '/labels', '/state']);
  t.true((await api(`/nodes/${a}/systems/hist/restore`, { method: 'POST', json: { rev: restored.body.rev } })).body.unchanged);

  t.is((await api(`/nodes/${a}/systems/hist/restore`, { method: 'POST', json: { rev: '2-00000000000000000000000000000000' } })).status, 404, 'a revision never stored');
  t.is((await api(`/nodes/${a}/systems/hist/restore`, { method: 'POST', json: {} })).status, 400);
  t.is((await api(`/nodes/${a}/systems/ghost/history`)).status, 404);
  t.is((await api(`/nodes/${b}/systems/hist/history`, { auth: auth.a })).status, 403);
});

test.serial('after compaction, old revisions are missing: history says so and restoring one is 404', async (t) => {
  if (external) {
    t.pass('compaction of an external CouchDB is asynchronous: covered on the embedded server');
    return;
  }
  t.is((await api(`/nodes/${a}/systems`, { method: 'POST', json: app('compacted') })).status, 201);
  const first = (await api(`/nodes/${a}/systems/compacted`)).body.spec;
  await api(`/nodes/${a}/systems/compacted/stop`, { method: 'POST' });
  const compact = await call(s.couchUrl, `/${dbOf(a)}/_compact`, { method: 'POST', auth: auth.admin, json: {} });
  t.true(compact.status === 202 || compact.status === 200, compact.text);
  const h = await until(() => api(`/nodes/${a}/systems/compacted/history`), (r) => r.body[1]?.status === 'missing');
  t.deepEqual(h.body.map((e: { status: string }) => e.status), ['available', 'missing']);
  t.is(h.body[1].doc, undefined);
  const r = await api(`/nodes/${a}/systems/compacted/restore`, { method: 'POST', json: { rev: first._rev } });
  t.is(r.status, 404, r.text);
});

test.serial('restore is refused while the spec is in conflict', async (t) => {
  const c = await makeConflict(dbOf(a), 'system:torn', systemBase('torn'), { state: 'stopped' }, { command: ['/bin/echo', 't'] });
  const r = await api(`/nodes/${a}/systems/torn/restore`, { method: 'POST', json: { rev: c.rev1 } });
  t.is(r.status, 409, r.text);
  t.regex(r.body.reason, /resolve/);
});

// ---- the CLI end to end ---------------------------------------------------------------------------

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: string[], input = ''): Promise<Run> {
  const user = external ? decodeURIComponent(new URL(process.env.COUCH_URL!).username) : 'admin';
  const env = { ...process.env, ANYBIOS_URL: s.url, ANYBIOS_USER: user, ANYBIOS_PASSWORD: s.adminPassword, ANYBIOS_CONFIG: join(files, 'none.json'), ANYBIOS_DATA: files };
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input);
  });
}

async function ok(t: ExecutionContext, args: string[], input?: string): Promise<string> {
  const r = await cli(args, input);
  t.is(r.code, 0, `anybios ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

test.serial('CLI: conflicts list, show, resolve --keep and --merged; history and history restore', async (t) => {
  const c1 = await makeConflict(dbOf(a), 'system:clikeep', systemBase('clikeep'), { command: ['/bin/echo', 'left'] }, { command: ['/bin/echo', 'right'] });
  const c2 = await makeConflict(dbOf(a), 'system:climerge', systemBase('climerge'), { state: 'stopped' }, { labels: { x: 'y' } });
  await until(() => api(`/conflicts?node=${a}`), (r) => ['clikeep', 'climerge'].every((n) => r.body.some((x: { name: string }) => x.name === n)));

  const list = await ok(t, ['conflicts']);
  t.regex(list, /^NODE\s+TYPE\s+NAME\s+WINNER\s+OTHERS/);
  t.regex(list, new RegExp(`${a}\\s+system\\s+clikeep\\s+${c1.winner}\\s+${c1.loser}`));
  const rows = JSON.parse(await ok(t, ['conflicts', '--json', '--node', a])) as { name: string }[];
  t.true(rows.some((r) => r.name === 'climerge'));

  const shown = await ok(t, ['conflicts', 'show', 'clikeep', '--node', a]);
  t.regex(shown, /2 versions in conflict/);
  t.regex(shown, new RegExp(`winner\\s+${c1.winner}`));
  t.regex(shown, /\/command\/1: "(left|right)" → "(left|right)"/);
  const view = JSON.parse(await ok(t, ['conflicts', 'show', 'clikeep', '--node', a, '--json']));
  t.is(view.others[0].rev, c1.loser);

  const usage = await cli(['conflicts', 'resolve', 'clikeep', '--node', a]);
  t.is(usage.code, 2);
  const stale = await cli(['conflicts', 'resolve', 'clikeep', '--node', a, '--keep', c1.rev1]);
  t.is(stale.code, 1);
  t.regex(stale.stderr, /CONFLICT/);
  const kept = await ok(t, ['conflicts', 'resolve', 'clikeep', '--node', a, '--keep', c1.loser]);
  t.regex(kept, new RegExp(`resolved with revision ${c1.loser}; now revision 3-`));
  t.is((await leaves(dbOf(a), 'system:clikeep')).live.length, 1);

  const winnerDoc = (await api(`/nodes/${a}/systems/climerge/conflicts`)).body.winner.doc;
  const file = join(files, 'merged.yaml');
  writeFileSync(file, `# merged by hand\nname: climerge\nkind: app\ntemplate: host\nstate: stopped\ncommand: [/bin/echo, v1]\nlabels: {x: y}\n_rev: ${c2.winner}\n`);
  t.is(winnerDoc.name, 'climerge');
  const merged = JSON.parse(await ok(t, ['conflicts', 'resolve', 'climerge', '--node', a, '--merged', file, '--json']));
  t.true(merged.merged);
  const now = (await api(`/nodes/${a}/systems/climerge`)).body.spec;
  t.is(now.state, 'stopped');
  t.deepEqual(now.labels, { x: 'y' });
  t.is((await leaves(dbOf(a), 'system:climerge')).live.length, 1);
  const none = await ok(t, ['conflicts', 'show', 'climerge', '--node', a]);
  t.regex(none, /is not in conflict/);

  const hist = await ok(t, ['history', 'climerge', '--node', a]);
  t.regex(hist, /3 revisions, newest first/);
  t.regex(hist, /\(current\)/);
  t.regex(hist, /\/state: "running" → "stopped"/);
  const entries = JSON.parse(await ok(t, ['history', 'climerge', '--node', a, '--json'])) as { rev: string }[];
  const restored = await ok(t, ['history', 'restore', 'climerge', '--node', a, '--rev', c2.rev1]);
  t.regex(restored, new RegExp(`content of ${c2.rev1} restored as revision 4-`));
  const back = (await api(`/nodes/${a}/systems/climerge`)).body.spec;
  t.is(back.state, 'running');
  t.is(back.labels, undefined);
  t.is(entries.length, 3);
  const missing = await cli(['history', 'restore', 'climerge', '--node', a, '--rev', '1-00000000000000000000000000000000']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /NOT_FOUND/);
  t.is((await cli(['history', 'restore', 'climerge', '--node', a])).code, 2, '--rev is required');
});
