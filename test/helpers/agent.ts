// An agent as a real process for tests, and the cleanup every agent test needs: systems outlive their
// agent by design, so teardown destroys what the test's data dir holds.
import { spawn, type ChildProcess } from 'node:child_process';
import { createRuntime } from '../../agent/runtime/index.ts';
import { CLI } from './server.ts';
import { docErrors } from '../../ddocs/validate.ts';

export interface TestAgent {
  proc: ChildProcess;
  output(): string;
  /** SIGTERM by default; SIGKILL to simulate a crash. Resolves when the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnAgent(configFile: string, dataDir: string, extraArgs: string[] = []): TestAgent {
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'agent', '--config', configFile, '--data', dataDir, ...extraArgs], { env: { ...process.env, ANYBIOS_STOP_ON_STDIN_EOF: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return {
    proc,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill(signal);
      await done;
    },
  };
}

/** Destroys every system under `dataDir` (their volumes too): what an agent test leaves running. */
export async function destroySystems(dataDir: string): Promise<void> {
  const rt = await createRuntime({ checkDoc: docErrors, dataDir });
  for (const o of await rt.list()) await rt.destroy(o.name, { volumes: true }).catch(() => {});
}
