// A server whose parent dies while it starts (a test worker killed, a terminal closed): stdin, stdout and
// stderr all go away at once. It must stop, not spin: logging to a closed pipe raises EPIPE, which the
// process guard once took for a network error, logged (to the same closed pipe) and so on, forever.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from '../helpers/server.ts';

test('a server orphaned during start-up (all three pipes closed) exits instead of spinning', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'anybios-orphan-'));
  const proc = spawn(process.execPath, [CLI, 'server', '--port', '0', '--data', data], {
    env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1', ANYBIOS_ADMIN_PASSWORD: 'orphan-admin-password' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  });
  // As a SIGKILLed parent leaves them: every end of ours closed, before the server is up.
  proc.stdin.destroy();
  proc.stdout.destroy();
  proc.stderr.destroy();
  const code = await new Promise<number | null | 'alive'>((resolve) => {
    const timer = setTimeout(() => resolve('alive'), 30_000);
    proc.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  t.not(code, 'alive', 'the orphaned server is still running 30 s later');
});
