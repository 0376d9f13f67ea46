// What an idle agent loads (issue 15, docs/architecture.md "The agent's footprint"): the agent started
// as devices start it, offline (its server a closed port), is asked which modules it holds. It must not
// hold the server's packages (the one-file CLI bundle used to load them into every command), PouchDB's
// cookie jar (tough-cookie and its public-suffix list), PouchDB's `level` (a second LevelDB), or undici
// (the global fetch, which compiles a WebAssembly HTTP parser).
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../helpers/server.ts';
import { eventually } from '../helpers/wait.ts';

const work = mkdtempSync(join(tmpdir(), 'anybios-footprint-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

test('the idle agent loads neither the server\'s packages, nor a cookie jar, nor a second LevelDB, nor undici', async (t) => {
  const dump = join(work, 'modules.json');
  const preload = join(work, 'dump.cjs');
  writeFileSync(preload, `
    process.on('SIGUSR2', () => {
      const files = Object.keys(require('node:module')._cache);
      require('node:fs').writeFileSync(${JSON.stringify(dump)}, JSON.stringify({ files, internal: process.moduleLoadList }));
    });
  `);
  const cfg = join(work, 'enrol.json');
  writeFileSync(cfg, JSON.stringify({ server: 'http://127.0.0.1:9', node: 'footprint', user: 'node-footprint', password: 'x'.repeat(24) }), { mode: 0o600 });
  let out = '';
  const p = spawn(process.execPath, ['--require', preload, CLI, 'agent', '--config', cfg, '--data', join(work, 'data'), '--host-template', 'deny'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' } });
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  t.teardown(() => { if (p.exitCode === null) p.kill('SIGKILL'); });
  await eventually('the agent running offline', async () => out, (o) => o.includes('anybios agent ready'), { ms: 60_000, context: () => out });
  // The start's requests (credential check, bundle key lookup) have failed by now.
  await eventually('a failed request to the server', async () => out, (o) => /ECONNREFUSED/.test(o), { ms: 20_000, context: () => out });
  p.kill('SIGUSR2');
  await eventually('the module list', async () => existsSync(dump), Boolean, { context: () => out });
  const { files, internal } = JSON.parse(readFileSync(dump, 'utf8')) as { files: string[]; internal: string[] };
  const packages = new Set(files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules)/.exec(f)?.[1]).filter(Boolean));
  for (const pkg of ['express', 'nano', 'yaml', 're2js', 'ajv', 'fetch-cookie', 'tough-cookie', 'psl', 'level', 'rxjs', 'pouchdb']) {
    t.false(packages.has(pkg), `${pkg} is loaded (${[...packages].sort().join(', ')})`);
  }
  t.true(packages.has('leveldown'), 'the one LevelDB binding is loaded');
  t.false(internal.some((m) => /undici/.test(m)), 'undici (the global fetch) is loaded');
  t.false(files.some((f) => f.includes(join('level', 'node_modules', 'leveldown'))), 'a second LevelDB binding is loaded');
  p.kill('SIGTERM');
});
