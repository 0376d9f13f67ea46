// Verb `enterArgs`: the argv that runs a command inside a running system (the CLI's `enter`): crun exec
// as root; rootless, nsenter into the namespaces of its pid 1.
import type { RuntimeContext } from '../context.ts';
import { RuntimeError } from '../errors.ts';
import { observeState } from '../observe.ts';
import { readState } from '../state.ts';
import { containerId } from '../bundle.ts';
import { prootArgs } from '../launcher-proot.ts';
import { volumeDirSync } from '../materialize.ts';

export async function enterArgs(ctx: RuntimeContext, name: string, cmd: string[] = ['/bin/sh']): Promise<string[]> {
  const paths = ctx.pathsOf(name);
  const s = await readState(paths);
  if (!s) throw new RuntimeError('NOT_FOUND', `no system ${name} in ${ctx.dataDir}`);
  const o = await observeState(paths, s);
  if (o.phase !== 'running' || !o.pid) throw new RuntimeError('NOT_RUNNING', `system ${name} is ${o.phase}`);
  // proot: another proot over the same root and volumes (there are no namespaces to enter).
  if (s.launcher === 'proot') {
    const c0 = await ctx.capabilities();
    if (!c0.tools.proot) throw new RuntimeError('TOOL_MISSING', 'proot not found (apt-get install proot; Termux: pkg install proot)');
    const volumes = (s.spec.mounts ?? []).map((m) => ({ source: volumeDirSync(ctx.volumeRoot, m.volume, false), target: m.target, readOnly: !!m.readOnly }));
    return [c0.tools.proot, ...prootArgs({ root: paths.upper, cwd: '/', volumes }, null, cmd)];
  }
  // As root: crun exec, so the command gets the system's own limits (capabilities, seccomp, ids).
  const c = await ctx.capabilities();
  if (!s.userns && c.tools.crun && s.runId) {
    return [c.tools.crun, '--root', paths.crunRoot, 'exec', '--cwd', '/', containerId(name, s.runId), ...cmd];
  }
  const a = [ctx.tools.nsenter, '--target', String(o.pid), '--mount', '--uts', '--ipc', '--pid'];
  if ((s.spec.network ?? 'none') === 'none') a.push('--net');
  if (s.userns) a.push('--user', '--preserve-credentials');
  a.push('--root', '--wd', '--', ...cmd);
  return a;
}
