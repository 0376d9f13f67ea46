// Limit values: units, the environment and --limit flags, and precise errors for nonsense (the server
// refuses to start rather than run with a limit it misread).
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIMITS, limitsFrom, parseLimitValue, resolveLimits } from '../../../server/limits/config.ts';
import { CLI, removeDataDir } from '../../helpers/server.ts';

test('sizes and durations take units', (t) => {
  t.is(parseLimitValue('maxBody', '64MiB'), 64 * 1024 * 1024);
  t.is(parseLimitValue('maxBody', '8000000'), 8_000_000);
  t.is(parseLimitValue('maxBody', '1.5 KiB'), 1536);
  t.is(parseLimitValue('maxDocumentSize', '8MB'), 8_000_000);
  t.is(parseLimitValue('headersTimeoutMs', '20s'), 20_000);
  t.is(parseLimitValue('requestTimeoutMs', '5m'), 300_000);
  t.is(parseLimitValue('bodyIdleTimeoutMs', '250ms'), 250);
  t.throws(() => parseLimitValue('maxBody', '12 parsecs'), { message: /maxBody: unknown unit "parsecs"/ });
  t.throws(() => parseLimitValue('headersTimeoutMs', '3MiB'), { message: /unknown unit/ });
  t.throws(() => parseLimitValue('maxBody', '-1'), { message: /not a number/ });
});

test('environment and flags, flags winning; unknown names refused; timeouts must be above 0', (t) => {
  const l = limitsFrom({ ANYBIOS_LIMIT_MAX_BODY: '32MiB', ANYBIOS_LIMIT_NODE_DB_QUOTA: '2GiB' }, ['maxBody=16MiB', 'maxAnonymousRequests=10']);
  t.deepEqual(l, { maxBody: 16 * 1024 * 1024, nodeDbQuota: 2 * 1024 ** 3, maxAnonymousRequests: 10 });
  const r = resolveLimits(l);
  t.is(r.maxBody, 16 * 1024 * 1024);
  t.is(r.apiMaxBody, DEFAULT_LIMITS.apiMaxBody);
  t.throws(() => limitsFrom({}, ['maxBodies=1']), { message: /--limit maxBodies=1: expected name=value with name one of maxBody, / });
  t.throws(() => limitsFrom({}, ['maxBody']), { message: /expected name=value/ });
  t.throws(() => resolveLimits({ headersTimeoutMs: 0 }), { message: /headersTimeoutMs must be above 0/ });
});

test('the server refuses to start with a bad limit: exit 1, BAD_LIMIT naming it', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'anybios-test-'));
  t.teardown(() => removeDataDir(dataDir));
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'server', '--port', '0', '--data', dataDir, ...args], { env: { ...process.env, ANYBIOS_ADMIN_PASSWORD: 'test-admin-password', ...env }, stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code, stderr }));
      p.stdin.end();
    });
  const flag = await run(['--limit', 'maxBody=lots']);
  t.is(flag.code, 1, flag.stderr);
  t.regex(flag.stderr, /BAD_LIMIT: limit maxBody: "lots" is not a number/);
  const env = await run([], { ANYBIOS_LIMIT_HEADERS_TIMEOUT_MS: '0' });
  t.is(env.code, 1, env.stderr);
  t.regex(env.stderr, /BAD_LIMIT: limit headersTimeoutMs must be above 0/);
});
