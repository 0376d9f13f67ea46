// A qemu machine running the PE, for the boot tests, the bench and `anybios image qemu`: serial console
// on a pipe, read line by line; the process is always killed by close(). Software emulation (TCG) unless
// asked for KVM (accel or ANYBIOS_QEMU_ACCEL=kvm): in a VM, nested KVM may be there and still not work (on
// the machine this was written on, qemu 7.2 under KVM fails on an MSR with -cpu host and hangs with qemu64).
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export interface QemuOptions {
  kernel: string;
  initrd: string;
  append: string;
  disks?: string[];
  memMiB?: number;
  /** qemu user networking (for an agent that talks to the host's server at 10.0.2.2). */
  net?: boolean;
  accel?: 'kvm' | 'tcg';
}

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function qemuArgs(o: QemuOptions): string[] {
  const accel = o.accel ?? (process.env.ANYBIOS_QEMU_ACCEL === 'kvm' && kvmUsable() ? 'kvm' : 'tcg');
  const args = [
    '-machine', `q35,accel=${accel}`, '-cpu', process.env.ANYBIOS_QEMU_CPU ?? (accel === 'kvm' ? 'qemu64' : 'max'), '-smp', '1', '-m', String(o.memMiB ?? 512),
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', o.kernel, '-initrd', o.initrd, '-append', o.append,
  ];
  for (const [i, d] of (o.disks ?? []).entries()) args.push('-drive', `file=${d},format=raw,if=virtio,index=${i}`);
  if (o.net) args.push('-nic', 'user,model=virtio-net-pci');
  else args.push('-nic', 'none');
  return args;
}

export class QemuMachine {
  readonly proc: ChildProcess;
  output = '';
  readonly startedAt = performance.now();
  private waiters = new Set<() => void>();
  exited: Promise<number | null>;

  constructor(o: QemuOptions) {
    this.proc = spawn('qemu-system-x86_64', qemuArgs(o), { stdio: ['pipe', 'pipe', 'pipe'] });
    const take = (b: Buffer) => {
      this.output += b.toString('latin1').replace(/\r/g, '');
      for (const w of this.waiters) w();
    };
    this.proc.stdout!.on('data', take);
    this.proc.stderr!.on('data', take);
    this.exited = new Promise((resolve) => {
      this.proc.on('error', (e) => { this.output += `\n[qemu: ${e.message}]\n`; resolve(null); });
      this.proc.on('exit', (code) => { for (const w of this.waiters) w(); resolve(code); });
    });
  }

  /** Resolves with the match once `re` matches the console output; rejects after `timeoutMs` or at exit. */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.output);
        if (m) return done(() => resolve(m));
        if (this.proc.exitCode !== null || this.proc.signalCode !== null) done(() => reject(new Error(`qemu exited before ${re} appeared; console:\n${this.tail()}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re}; console:\n${this.tail()}`))), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        f();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Types on the serial console. */
  send(text: string): void {
    this.proc.stdin!.write(text);
  }

  tail(lines = 40): string {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  /** Kills qemu (SIGKILL: the guest's state is of no interest) and waits for it to be gone. */
  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
    await this.exited;
  }
}
