// Run by the rootless tests as an unprivileged user (uid 65534): a runtime of its own on a data dir that
// user owns, doing the operations it is given in order and printing their results as one JSON line
// (the last line of stdout). Errors of an operation are results too ({ error: { code, message } }).
import { spawnSync } from 'node:child_process';
import { createRuntime } from '../../../../agent/runtime/index.ts';
import type { SystemDoc, TemplateDoc } from '../../../../ddocs/schemas/types.ts';
import { docErrors } from '../../../../ddocs/validate.ts';

export type Op =
  | { op: 'caps' }
  | { op: 'start'; spec: SystemDoc; template: TemplateDoc }
  | { op: 'list' }
  | { op: 'observe'; name: string }
  | { op: 'enter'; name: string; cmd: string[] }
  | { op: 'stop'; name: string; graceMs?: number }
  | { op: 'destroy'; name: string }
  | { op: 'logTail'; name: string };

export interface ChildArgs {
  dataDir: string;
  templateRoots: string[];
  strategy?: 'auto' | 'overlay' | 'copy' | 'proot';
  ops: Op[];
}

const args = JSON.parse(process.argv[2]!) as ChildArgs;
const logs: string[] = [];
const results: unknown[] = [];
const identity = { uid: process.getuid?.(), gid: process.getgid?.(), groups: process.getgroups?.() };
try {
  const rt = await createRuntime({ checkDoc: docErrors, dataDir: args.dataDir, templateRoots: args.templateRoots, strategy: args.strategy, log: (m) => logs.push(m) });
  for (const o of args.ops) {
    try {
      switch (o.op) {
        case 'caps': {
          const { tools: _tools, ...c } = await rt.capabilities();
          results.push(c);
          break;
        }
        case 'start':
          results.push(await rt.start(o.spec, o.template));
          break;
        case 'list':
          results.push(await rt.list({ diskUsage: false }));
          break;
        case 'observe':
          results.push(await rt.observe(o.name));
          break;
        case 'enter': {
          const argv = await rt.enterArgs(o.name, o.cmd);
          const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
          results.push({ argv, status: r.status, stdout: r.stdout, stderr: r.stderr });
          break;
        }
        case 'stop':
          results.push(await rt.stop(o.name, { graceMs: o.graceMs ?? 5000 }));
          break;
        case 'destroy':
          await rt.destroy(o.name, { graceMs: 2000 });
          results.push('destroyed');
          break;
        case 'logTail':
          results.push(await rt.logTail(o.name));
          break;
      }
    } catch (e) {
      const err = e as { code?: string; message?: string };
      results.push({ error: { code: err.code ?? null, message: err.message ?? String(e) } });
    }
  }
} catch (e) {
  const err = e as { code?: string; message?: string };
  results.push({ error: { code: err.code ?? null, message: err.message ?? String(e), fatal: true } });
}
process.stdout.write(JSON.stringify({ identity, results, logs }) + '\n');
process.exit(0);
