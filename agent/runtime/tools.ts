// Host tools the runtime drives (util-linux and friends), found once by absolute path so that the
// scripts we run never depend on the PATH of the system's environment.
import { accessSync, constants as fsc } from 'node:fs';
import { spawn } from 'node:child_process';
import { RuntimeError } from './errors.ts';

export interface Tools {
  sh: string;
  unshare: string;
  nsenter: string;
  chroot: string;
  mount: string;
  ip: string | null;
  hostname: string | null;
  tar: string;
  /** The OCI runtime that runs systems (Debian: apt-get install crun); null: systems cannot start. */
  crun: string | null;
  /** ptrace-based fake root (Debian, Termux: pkg install proot): runs systems where nothing else can. */
  proot: string | null;
}

const DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export function which(name: string): string | null {
  for (const d of DIRS) {
    try {
      accessSync(`${d}/${name}`, fsc.X_OK);
      return `${d}/${name}`;
    } catch {
      // next
    }
  }
  return null;
}

export function findTools(): Tools {
  const need = (n: string) => {
    const p = which(n);
    if (!p) throw new RuntimeError('TOOL_MISSING', `${n} not found in ${DIRS.join(':')}`);
    return p;
  };
  return {
    sh: need('sh'),
    unshare: need('unshare'),
    nsenter: need('nsenter'),
    chroot: need('chroot'),
    mount: need('mount'),
    ip: which('ip'),
    hostname: which('hostname'),
    tar: need('tar'),
    crun: which('crun'),
    proot: which('proot'),
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a short host command and collect its output (for probes, tar and the like; not for systems). */
export function run(cmd: string, args: string[], opts: { input?: Buffer | string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 120_000 });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
