// The fleet CLI end to end: `anybios apply|ls|get|rm|start|stop|restart|move` as child processes against a
// real server (embedded, or Apache CouchDB with COUCH_URL). The fleet index is eventually consistent, so
// checks of /api/systems poll briefly instead of sleeping.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { addNode, removeNode } from '../../server/nodes.ts';
import { CLI, call, external, removeDataDir, startServer, uniq, type TestServer } from '../helpers/server.ts';

let s: TestServer;
let env: NodeJS.ProcessEnv;
const files = mkdtempSync(join(tmpdir(), 'anybios-cli-'));

test.before(async () => {
  s = await startServer();
  const user = external ? decodeURIComponent(new URL(process.env.COUCH_URL!).username) : 'admin';
  // No config file or data dir of the developer's may leak into the runs.
  env = { ...process.env, ANYBIOS_URL: s.url, ANYBIOS_USER: user, ANYBIOS_PASSWORD: s.adminPassword, ANYBIOS_CONFIG: join(files, 'none.json'), ANYBIOS_DATA: files };
});
test.after.always(async () => {
  await s?.stop();
  if (s) removeDataDir(s.dataDir);
  rmSync(files, { recursive: true, force: true });
});

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs the CLI; `input` goes to its stdin. */
function cli(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(opts.input ?? '');
  });
}

/** Runs the CLI and expects exit code 0. */
async function ok(t: ExecutionContext, args: string[], opts?: { input?: string }): Promise<string> {
  const r = await cli(args, opts);
  t.is(r.code, 0, `anybios ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

const api = async (path: string) => (await call(s.url, `/api${path}`, { auth: s.adminAuth })).body;

/** Polls GET /api`path` until `pred` holds (at most 5 s); returns the last body. */
async function until<T>(path: string, pred: (body: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const body = (await api(path)) as T;
    if (pred(body) || Date.now() > deadline) return body;
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface SystemRow { node: string; name: string; state: string; rev: string; kind: string }
const rowsOf = (node: string) => until<SystemRow[]>(`/systems?node=${node}`, () => true);
/** Waits until the fleet index shows `name` on `node` satisfying `pred` (or its absence with pred null). */
async function indexed(node: string, name: string, pred: ((r: SystemRow) => boolean) | null): Promise<SystemRow | undefined> {
  const rows = await until<SystemRow[]>(`/systems?node=${node}`, (rs) => {
    const r = rs.find((x) => x.name === name);
    return pred === null ? !r : !!r && pred(r);
  });
  return rows.find((x) => x.name === name);
}

/** Enrols fresh nodes for one test and removes them afterwards. */
async function nodes(t: ExecutionContext, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => uniq('cli'));
  for (const id of ids) {
    await addNode(s.admin, id);
    t.teardown(() => removeNode(s.admin, id).catch(() => {}));
  }
  await until<{ id: string }[]>('/nodes', (ns) => ids.every((id) => ns.some((x) => x.id === id)));
  return ids;
}

/** A template name for one test, deleted afterwards. */
function template(t: ExecutionContext): string {
  const name = uniq('tpl');
  t.teardown(async () => {
    const cur = await api(`/templates/${name}`);
    if (cur?._rev) await call(s.url, `/api/templates/${name}?rev=${cur._rev}`, { method: 'DELETE', auth: s.adminAuth });
  });
  return name;
}

function file(name: string, text: string): string {
  const p = join(files, `${uniq('f')}-${name}`);
  writeFileSync(p, text);
  return p;
}

const app = (name: string, extra: Record<string, unknown> = {}) => ({ type: 'system', name, kind: 'app', template: 'host', state: 'running', command: ['/bin/sleep', '1000'], ...extra });

test('apply JSON: an array of a template and a system (node from the document) creates, then is unchanged, then updates', async (t) => {
  const [a] = await nodes(t, 1);
  const tpl = template(t);
  const docs: Record<string, unknown>[] = [{ _id: `template:${tpl}`, source: 'host', description: 'the host root' }, { ...app('web', { template: tpl }), node: a }];
  const f = file('fleet.json', JSON.stringify(docs));
  t.is(await ok(t, ['apply', '-f', f]), `template ${tpl}: created\nsystem web on node ${a}: created\n`);
  const got = await api(`/nodes/${a}/systems/web`);
  t.is(got.spec.template, tpl);
  t.false('node' in got.spec, 'the node field is not stored');
  t.is(await ok(t, ['apply', '-f', f]), `template ${tpl}: unchanged\nsystem web on node ${a}: unchanged\n`);
  docs[1].state = 'stopped';
  writeFileSync(f, JSON.stringify(docs));
  const out = JSON.parse(await ok(t, ['apply', '-f', f, '--json']));
  t.deepEqual(out.map((r: { result: string }) => r.result), ['unchanged', 'updated']);
  t.like(out[1], { kind: 'system', name: 'web', node: a });
  t.is((await api(`/nodes/${a}/systems/web`)).spec.state, 'stopped');
  t.like(await indexed(a, 'web', (r) => r.state === 'stopped'), { state: 'stopped', kind: 'app' });
});

test('apply YAML: a multi-document stream with --node, from a file and from stdin', async (t) => {
  const [a] = await nodes(t, 1);
  const yaml = (state: string) => `# a volume and a system
type: volume
name: data
description: the database files
---
_id: system:db
kind: os
template: host
state: ${state}
labels: {tier: backend}
mounts:
  - {volume: data, target: /var/lib/db}
---
`;
  const f = file('db.yaml', yaml('running'));
  t.is(await ok(t, ['apply', '-f', f, '--node', a]), `volume data on node ${a}: created\nsystem db on node ${a}: created\n`);
  t.is(await ok(t, ['apply', '-f', f, '--node', a]), `volume data on node ${a}: unchanged\nsystem db on node ${a}: unchanged\n`);
  t.is(await ok(t, ['apply', '-f', '-', '--node', a], { input: yaml('stopped') }), `volume data on node ${a}: unchanged\nsystem db on node ${a}: updated\n`);
  const spec = (await api(`/nodes/${a}/systems/db`)).spec;
  t.like(spec, { state: 'stopped', kind: 'os', labels: { tier: 'backend' } });
  t.is((await api(`/nodes/${a}/volumes/data`)).description, 'the database files');
  // A document naming another node than --node is refused before anything is written.
  const clash = await cli(['apply', '-f', '-', '--node', a], { input: 'type: volume\nname: other\nnode: elsewhere\n' });
  t.is(clash.code, 1);
  t.regex(clash.stderr, /INVALID_DOCUMENT: .*contradicts --node/);
  // Systems need a node: a usage error.
  const noNode = await cli(['apply', '-f', f]);
  t.is(noNode.code, 2);
  t.regex(noNode.stderr, /USAGE: .*document 1 \(volume data\) needs a node/);
});

test('apply stops at an invalid document: exit 1, the field named, what came before applied, the rest not', async (t) => {
  const [a] = await nodes(t, 1);
  const f = file('bad.yaml', `type: volume\nname: first\n---\ntype: system\nname: broken\nkind: vm\ntemplate: host\nstate: running\n---\ntype: volume\nname: never\n`);
  const r = await cli(['apply', '-f', f, '--node', a]);
  t.is(r.code, 1);
  t.is(r.stdout, `volume first on node ${a}: created\n`);
  t.regex(r.stderr, /anybios: INVALID: system broken on node .*/);
  t.regex(r.stderr, /^ {2}\/kind: must be one of: os, app$/m, 'each field error on its own line');
  t.regex(r.stderr, /1 later document was not applied/);
  t.is((await call(s.url, `/api/nodes/${a}/volumes/never`, { auth: s.adminAuth })).status, 404);
  t.is((await call(s.url, `/api/nodes/${a}/systems/broken`, { auth: s.adminAuth })).status, 404);
  const notYaml = await cli(['apply', '-f', '-', '--node', a], { input: 'a: [\n' });
  t.is(notYaml.code, 1);
  t.regex(notYaml.stderr, /INVALID_FILE: stdin is not valid YAML/);
});

test('ls systems, nodes, templates and volumes: tables and --json', async (t) => {
  const [a, b] = await nodes(t, 2);
  const tpl = template(t);
  const f = file('ls.json', JSON.stringify([
    { type: 'template', name: tpl, source: 'host', description: 'for ls' },
    { ...app('web', { template: tpl }), node: a, labels: { tier: 'front' } },
    { ...app('api', { template: tpl, state: 'stopped' }), node: a },
    { type: 'system', name: 'box', kind: 'os', template: tpl, state: 'running', node: b },
    { type: 'volume', name: 'data', node: b },
  ]));
  await ok(t, ['apply', '-f', f]);
  await indexed(a, 'web', () => true);
  await indexed(a, 'api', () => true);
  await indexed(b, 'box', () => true);

  const table = (await ok(t, ['ls', 'systems', '--node', a])).trimEnd().split('\n');
  t.regex(table[0], /^NODE +NAME +KIND +STATE +PHASE +CURRENT +PID +TEMPLATE$/);
  t.is(table.length, 3);
  t.regex(table[1], new RegExp(`^${a} +api +app +stopped +- +- +- +${tpl}$`));
  t.regex(table[2], new RegExp(`^${a} +web +app +running +- +- +- +${tpl}$`));
  t.is(table[1].indexOf('api'), table[0].indexOf('NAME'), 'columns line up');

  const all = JSON.parse(await ok(t, ['ls', '--json']));
  t.true([a, b].every((n) => all.some((r: SystemRow) => r.node === n)));
  const fronts = JSON.parse(await ok(t, ['ls', '--label', 'tier=front', '--node', a, '--json']));
  t.deepEqual(fronts.map((r: SystemRow) => r.name), ['web']);
  const oses = JSON.parse(await ok(t, ['ls', 'systems', '--kind', 'os', '--json']));
  t.true(oses.some((r: SystemRow) => r.name === 'box' && r.node === b));
  t.false(oses.some((r: SystemRow) => r.kind !== 'os'));

  const nodeTable = await ok(t, ['ls', 'nodes']);
  t.regex(nodeTable, /^ID +ONLINE +HEARTBEAT +SYSTEMS +PHASES$/m);
  t.regex(nodeTable, new RegExp(`^${a} +no +- +2 +-$`, 'm'));
  const nodeJson = JSON.parse(await ok(t, ['ls', 'nodes', '--json']));
  t.like(nodeJson.find((n: { id: string }) => n.id === b), { id: b, online: false, systems: 1 });
  t.like(JSON.parse(await ok(t, ['ls', 'nodes', '--node', b, '--json'])), [{ id: b }]);

  const tplTable = await ok(t, ['ls', 'templates']);
  t.regex(tplTable, /^NAME +SOURCE +DESCRIPTION$/m);
  t.regex(tplTable, new RegExp(`^${tpl} +host +for ls$`, 'm'));
  t.like(JSON.parse(await ok(t, ['ls', 'templates', '--json'])).find((d: { name: string }) => d.name === tpl), { source: 'host', description: 'for ls' });

  t.regex(await ok(t, ['ls', 'volumes', '--node', b]), /^NAME +DESCRIPTION\ndata +-\n$/);
  t.is(await ok(t, ['ls', 'volumes', '--node', a]), `no volumes on node ${a}\n`);
});

test('get: a system with its status summary, --json and --yaml; a template; a node; a missing one', async (t) => {
  const [a] = await nodes(t, 1);
  const tpl = template(t);
  await ok(t, ['apply', '-f', '-', '--node', a], { input: `${JSON.stringify(app('web', { env: { PORT: '8080' } }))}\n---\n{"type": "template", "name": "${tpl}", "source": "host"}` });
  const text = await ok(t, ['get', 'web', '--node', a]);
  t.regex(text, new RegExp(`^# system web on node ${a}, revision 1-`));
  t.regex(text, /^# status: none yet/m);
  t.regex(text, /^kind: app$/m);
  t.notRegex(text, /_rev/);
  // The readable output goes back into apply unchanged.
  t.is(await ok(t, ['apply', '-f', '-', '--node', a], { input: text }), `system web on node ${a}: unchanged\n`);
  const json = JSON.parse(await ok(t, ['get', 'system', 'web', '--node', a, '--json']));
  t.deepEqual(Object.keys(json).sort(), ['spec', 'status']);
  t.like(json.spec, { _id: 'system:web', env: { PORT: '8080' } });
  t.is(json.status, null);
  t.like(parseYaml(await ok(t, ['get', 'web', '--node', a, '--yaml'])), { spec: { name: 'web' }, status: null });
  const tplText = await ok(t, ['get', 'template', tpl]);
  t.regex(tplText, new RegExp(`^# template ${tpl}, revision 1-`));
  t.regex(tplText, /^source: host$/m);
  t.like(JSON.parse(await ok(t, ['get', 'node', a, '--json'])), { id: a, systems: 1 });
  const missing = await cli(['get', 'nothere', '--node', a]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^anybios: NOT_FOUND: system nothere not found/);
  const noNode = await cli(['get', 'web', '--node', uniq('ghost')]);
  t.is(noNode.code, 1);
  t.regex(noNode.stderr, /NOT_FOUND: node ghost-\w+ not found/);
});

test('start, stop and restart change the desired state and restartedAt, seen in /api/systems', async (t) => {
  const [a] = await nodes(t, 1);
  const f = file('web.json', JSON.stringify(app('web', { state: 'stopped' })));
  await ok(t, ['apply', '-f', f, '--node', a]);
  t.is(await ok(t, ['start', 'web', '--node', a]), `system web on node ${a}: started (desired state running)\n`);
  t.is((await indexed(a, 'web', (r) => r.state === 'running'))?.state, 'running');
  t.is(await ok(t, ['start', 'web', '--node', a]), `system web on node ${a}: already running\n`);
  t.is(await ok(t, ['stop', 'web', '--node', a]), `system web on node ${a}: stopped (desired state stopped)\n`);
  const stopped = await indexed(a, 'web', (r) => r.state === 'stopped');
  t.is(stopped?.state, 'stopped');
  const before = Date.now();
  const r = JSON.parse(await ok(t, ['restart', 'web', '--node', a, '--json']));
  t.true(r.ok);
  const row = await indexed(a, 'web', (x) => x.rev === r.rev);
  t.like(row, { state: 'running', rev: r.rev });
  const spec = (await api(`/nodes/${a}/systems/web`)).spec;
  t.true(Date.parse(spec.restartedAt) >= before - 1000);
  // apply keeps restartedAt (a restart is not undone by re-applying the file), but puts the state back.
  t.is(await ok(t, ['apply', '-f', f, '--node', a]), `system web on node ${a}: updated\n`);
  t.like((await api(`/nodes/${a}/systems/web`)).spec, { state: 'stopped', restartedAt: spec.restartedAt });
  const missing = await cli(['restart', 'nothere', '--node', a]);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /NOT_FOUND/);
});

test('move takes a system from one node to another', async (t) => {
  const [a, b] = await nodes(t, 2);
  await ok(t, ['apply', '-f', '-', '--node', a], { input: JSON.stringify(app('web', { labels: { app: 'web' } })) });
  t.is(await ok(t, ['move', 'web', '--node', a, '--to', b]), `system web: moved from node ${a} to node ${b}\n`);
  t.truthy(await indexed(b, 'web', () => true));
  t.is(await indexed(a, 'web', null), undefined);
  t.like((await api(`/nodes/${b}/systems/web`)).spec, { labels: { app: 'web' }, state: 'running' });
  t.is((await call(s.url, `/api/nodes/${a}/systems/web`, { auth: s.adminAuth })).status, 404);
  const same = await cli(['move', 'web', '--node', b, '--to', b]);
  t.is(same.code, 1);
  t.regex(same.stderr, /INVALID: system web is on .* already\n {2}\/to: must be another node/);
  const ls = await ok(t, ['ls', '--node', b]);
  t.regex(ls, new RegExp(`^${b} +web `, 'm'));
});

test('rm deletes systems, volumes and templates; a second rm is NOT_FOUND', async (t) => {
  const [a] = await nodes(t, 1);
  const tpl = template(t);
  await ok(t, ['apply', '-f', '-', '--node', a], { input: `type: template\nname: ${tpl}\nsource: host\n---\n${JSON.stringify(app('web'))}\n---\ntype: volume\nname: data\n` });
  t.is(await ok(t, ['rm', 'web', '--node', a]), `system web on node ${a}: deleted\n`);
  t.like(JSON.parse(await ok(t, ['rm', 'volume', 'data', '--node', a, '--json'])), { kind: 'volume', name: 'data', node: a, result: 'deleted' });
  t.is(await ok(t, ['rm', 'template', tpl]), `template ${tpl}: deleted\n`);
  t.is((await call(s.url, `/api/nodes/${a}/systems/web`, { auth: s.adminAuth })).status, 404);
  t.is((await call(s.url, `/api/nodes/${a}/volumes/data`, { auth: s.adminAuth })).status, 404);
  t.is((await call(s.url, `/api/templates/${tpl}`, { auth: s.adminAuth })).status, 404);
  t.is(await indexed(a, 'web', null), undefined);
  t.deepEqual(await rowsOf(a), []);
  const again = await cli(['rm', 'web', '--node', a]);
  t.is(again.code, 1);
  t.regex(again.stderr, /^anybios: NOT_FOUND: system web not found$/m);
});

test('an unreachable server: exit 1, SERVER_UNREACHABLE with the URL', async (t) => {
  // A port that was just free: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const r = await cli(['ls', '--url', url]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^anybios: SERVER_UNREACHABLE: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  t.true(r.stderr.includes(url));
  const env2 = { ...env, ANYBIOS_URL: url };
  const r2 = await cli(['apply', '-f', '-', '--node', 'x'], { input: JSON.stringify(app('web')), env: env2 });
  t.is(r2.code, 1);
  t.regex(r2.stderr, /SERVER_UNREACHABLE/);
});

test('bad credentials: exit 1, UNAUTHORIZED naming the user', async (t) => {
  const r = await cli(['ls', 'nodes'], { env: { ...env, ANYBIOS_USER: 'nobody', ANYBIOS_PASSWORD: 'wrong' } });
  t.is(r.code, 1);
  t.regex(r.stderr, /^anybios: UNAUTHORIZED: .* refused the credentials of nobody/);
  // Not the admin's name on Apache CouchDB: its lockout ([chttpd_auth_lockout]) counts wrong passwords per name and IP.
  const r2 = await cli(['start', 'web', '--node', 'a', '--password', 'wrong'], external ? { env: { ...env, ANYBIOS_USER: uniq('not-the-admin') } } : {});
  t.is(r2.code, 1);
  t.regex(r2.stderr, /UNAUTHORIZED/);
});

test('usage errors exit 2 with the synopsis; --help exits 0 with examples', async (t) => {
  const cases: [string[], RegExp][] = [
    [['ls', '--bogus'], /Unknown option '--bogus'/],
    [['ls', 'gadgets'], /cannot list "gadgets"/],
    [['ls', 'volumes'], /volumes live on a node/],
    [['ls', 'nodes', '--phase', 'running'], /--phase filters systems only/],
    [['get'], /NAME is missing/],
    [['get', 'web', '--json', '--yaml'], /exclude each other/],
    [['get', 'thing', 'web'], /unknown kind "thing"/],
    [['rm', 'web'], /systems live on a node/],
    [['start', 'web'], /--node is required/],
    [['stop', 'web'], /--node is required/],
    [['restart'], /NAME is missing/],
    [['move', 'web', '--node', 'a'], /--to is required/],
    [['start', 'web', '--node', 'a', '--to', 'b'], /--to belongs to `anybios move`/],
    [['apply'], /-f FILE is required/],
    [['apply', 'file.yaml'], /unexpected arguments: file.yaml/],
    [['apply', '-f'], /argument missing|requires an argument|-f, --file/],
  ];
  await Promise.all(cases.map(async ([args, re]) => {
    const r = await cli(args);
    t.is(r.code, 2, `anybios ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /^anybios: USAGE: /, args.join(' '));
    t.regex(r.stderr, re, args.join(' '));
    t.regex(r.stderr, /\nusage: anybios /, args.join(' '));
  }));
  for (const name of ['apply', 'ls', 'get', 'rm', 'start', 'stop', 'restart', 'move']) {
    const r = await cli([name, '--help']);
    t.is(r.code, 0);
    t.regex(r.stdout, /^usage: anybios /);
    t.regex(r.stdout, /examples:\n {2}anybios /);
    t.regex(r.stdout, /ANYBIOS_URL/);
  }
});
