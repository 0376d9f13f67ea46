// The runtime of an agent inside the anybios PE (`anybios agent --strategy pe`, started by the PE's
// /init in resident mode; docs/boot.md). The PE's shell runtime (boot/pe/systems.sh) runs the systems of
// the data disk: /init starts those named by anybios.boot, this runtime observes them, starts, stops and
// enters them through the PE's own scripts, so the agent reports their status and applies the fleet's
// `state: running|stopped`. A system is what the disk says (its system.conf: template, init); its spec
// must agree: kind os, and its template a `dir` template whose path is the template's directory on the
// disk. State lives in the PE's /run/anybios: NAME.pid (the process whose child is the init), NAME.since,
// NAME.log (its output, also on the console; capped here like the runtime's logs) and NAME.rev (the spec
// revision this runtime applied; none: started by /init at boot).
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import type { Capabilities, Observed, Runtime } from '../runtime/index.ts';
import { RuntimeError } from '../runtime/errors.ts';
import { inputValidator, type CheckDoc } from '../runtime/inputs.ts';
import { childrenOf, readStatSync } from '../runtime/proc.ts';
import { detectCgroups } from '../runtime/cgroups.ts';
import { which } from '../runtime/tools.ts';
import { readLog, rotateLog, tailLog } from '../runtime/logs.ts';

/** A system's log in the PE's RAM (tmpfs) is kept under this (copy-truncate to NAME.log.1, as the runtime does). */
const LOG_CAP = 1 << 20;

export interface PeRuntimeOptions {
  checkDoc: CheckDoc;
  /** The PE's state directory (default /run/anybios; pe.conf there names the disk and the systems path). */
  runDir?: string;
  /** Where the PE's scripts are (default /lib/anybios). */
  libDir?: string;
  /** The node's data dir (on the data disk). */
  dataDir: string;
  log?: (m: string) => void;
}

interface PeConf { disk: string; systems: string }

/** pe.conf: key=value lines written by /init (never sourced). */
export function readPeConf(file: string): PeConf {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RuntimeError('TOOL_MISSING', `${file}: ${(e as Error).message} (--strategy pe runs only inside the anybios PE, started by its /init)`);
  }
  const kv = Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  if (!kv.disk?.startsWith('/') || !kv.systems?.startsWith('/')) throw new RuntimeError('TOOL_MISSING', `${file}: no disk= or systems= line`);
  return { disk: kv.disk, systems: kv.systems };
}

/** A system.conf of the disk: its template's path on the disk and its init. */
function readSystemConf(file: string): { template: string; init: string } | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const out = { template: '', init: '/sbin/init' };
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at < 0) continue;
    const k = line.slice(0, at);
    if (k === 'template') out.template = line.slice(at + 1);
    if (k === 'init') out.init = line.slice(at + 1);
  }
  return out;
}

const readOr = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function createPeRuntime(o: PeRuntimeOptions): Promise<Runtime> {
  const runDir = o.runDir ?? '/run/anybios';
  const libDir = o.libDir ?? '/lib/anybios';
  const conf = readPeConf(path.join(runDir, 'pe.conf'));
  const systemsDir = path.join(conf.disk, conf.systems);
  const validate = inputValidator(o.checkDoc);
  const log = o.log ?? (() => {});

  const script = (name: string, args: string[], timeoutMs: number) => new Promise<string>((resolve, reject) => {
    execFile('/bin/sh', [path.join(libDir, name), ...args], { timeout: timeoutMs, env: { PATH: '/sbin:/bin' } }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { output: `${stdout}${stderr}`.trim() }));
      else resolve(`${stdout}${stderr}`.trim());
    });
  });

  const observe = async (name: string): Promise<Observed | null> => {
    if (!NAME_RE.test(name)) return null;
    const sc = readSystemConf(path.join(systemsDir, name, 'system.conf'));
    if (!sc) return null;
    const sup = Number.parseInt(readOr(path.join(runDir, `${name}.pid`)) ?? '', 10);
    const supStat = Number.isInteger(sup) ? readStatSync(sup) : null;
    const init = supStat && supStat.state !== 'Z' ? (await childrenOf(sup))[0] : undefined;
    const initStat = init ? readStatSync(init) : null;
    const running = !!initStat && initStat.state !== 'Z';
    const rev = readOr(path.join(runDir, `${name}.rev`));
    return {
      name, phase: running ? 'running' : 'stopped', kind: 'os', template: path.basename(sc.template),
      pid: running ? initStat!.pid : null, startTime: running ? initStat!.startTime : null,
      supervisor: running ? { pid: sup, startTime: supStat!.startTime } : null,
      exitCode: null, restarts: 0, specRev: running ? rev : null, strategy: 'overlay',
      startedAt: running ? readOr(path.join(runDir, `${name}.since`)) : null,
      diskUsed: null, code: null, message: null,
      // Running without a revision of ours: /init started it (anybios.boot); the agent adopts it.
      ...(running && !rev ? { startedBy: 'boot' as const } : {}),
    };
  };

  const logOf = (name: string) => path.join(runDir, `${name}.log`);
  const list = async (): Promise<Observed[]> => {
    const names = existsSync(systemsDir) ? (await fsp.readdir(systemsDir)).filter((n) => NAME_RE.test(n)).sort() : [];
    const out: Observed[] = [];
    for (const n of names) {
      const x = await observe(n);
      if (x) out.push(x);
      await rotateLog(logOf(n), LOG_CAP).catch(() => false);
    }
    return out;
  };

  /** The disk's system `spec.name`, checked against the spec and its template. */
  const diskSystem = (spec: SystemDoc, template: TemplateDoc) => {
    validate(spec, template);
    const sc = readSystemConf(path.join(systemsDir, spec.name, 'system.conf'));
    if (!sc) throw new RuntimeError('NOT_FOUND', `system ${spec.name} is not on the data disk (no ${conf.systems}/${spec.name}/system.conf): the PE runs the disk's systems`);
    if (spec.kind !== 'os') throw new RuntimeError('INVALID_SPEC', `system ${spec.name}: the PE runs os systems only (kind is ${spec.kind})`);
    if (template.source !== 'dir' || template.path !== sc.template) {
      throw new RuntimeError('INVALID_TEMPLATE', `system ${spec.name} is on ${sc.template} of the data disk: its template must be a dir template with path ${sc.template} (template ${template.name} is ${template.source}${template.path ? ` ${template.path}` : ''})`);
    }
    return sc;
  };

  const start = async (spec: SystemDoc, template: TemplateDoc, opts: { specRev?: string } = {}): Promise<Observed> => {
    diskSystem(spec, template);
    const before = await observe(spec.name);
    if (before?.phase !== 'running') {
      try {
        const out = await script('start-system', [spec.name], 30_000);
        log(out);
      } catch (e) {
        throw new RuntimeError('START_FAILED', `system ${spec.name}: ${(e as { output?: string }).output || (e as Error).message}`);
      }
    }
    await fsp.writeFile(path.join(runDir, `${spec.name}.rev`), `${opts.specRev ?? spec._rev ?? ''}\n`);
    // The init is the child of the recorded process once unshare has forked: give it a moment.
    for (let i = 0; i < 50; i++) {
      const now = await observe(spec.name);
      if (now?.phase === 'running') return now;
      await sleep(100);
    }
    throw new RuntimeError('START_FAILED', `system ${spec.name}: its init did not appear within 5 s`);
  };

  const stop = async (name: string, opts: { graceMs?: number } = {}): Promise<Observed | null> => {
    const o1 = await observe(name);
    if (!o1) throw new RuntimeError('NOT_FOUND', `no system ${name} on the data disk`);
    if (o1.phase !== 'running') return o1;
    const grace = Math.max(1, Math.ceil((opts.graceMs ?? 10_000) / 1000));
    try {
      log(await script('stop-system', [name, String(grace)], (grace + 15) * 1000));
    } catch (e) {
      throw new RuntimeError('STOP_FAILED', `system ${name}: ${(e as { output?: string }).output || (e as Error).message}`);
    }
    await fsp.rm(path.join(runDir, `${name}.rev`), { force: true });
    return observe(name);
  };

  return {
    dataDir: o.dataDir,
    volumeRoot: path.join(o.dataDir, 'volumes'),
    async capabilities(): Promise<Capabilities> {
      const tool = (n: string) => which(n) ?? `/bin/${n}`;
      return {
        root: process.getuid?.() === 0, userns: false, usernsError: 'not used: the PE shell runtime', rootless: false, resourceLimits: false,
        overlay: true, strategy: 'overlay', launcher: null,
        launcherReason: `the anybios PE: the systems of its data disk (${conf.systems}) run in the PE's shell runtime (mount, uts, ipc and pid namespaces and a chroot; no user namespace, no seccomp)`,
        cgroup: await detectCgroups(),
        tools: { sh: tool('sh'), unshare: tool('unshare'), nsenter: tool('nsenter'), chroot: tool('chroot'), mount: tool('mount'), ip: which('ip'), hostname: which('hostname'), tar: tool('tar'), crun: null, proot: null },
        idmapHelper: null, idmapError: 'not used: the PE shell runtime', capBound: [],
      };
    },
    async materialize(spec, template) {
      diskSystem(spec, template);
      return (await observe(spec.name))!;
    },
    start,
    stop,
    async destroy(name) {
      // The fleet deleted it: it stops here. Its directory on the data disk (template, layer) is the
      // disk owner's and is kept.
      const o1 = await observe(name);
      if (o1?.phase === 'running') await stop(name);
      if (o1) log(`system ${name}: stopped; its layer stays on the data disk (${conf.systems}/${name})`);
    },
    observe: (name) => observe(name),
    list: () => list(),
    async wait(name, opts = {}) {
      const until = Date.now() + (opts.timeoutMs ?? 2 ** 31 - 1);
      while ((await observe(name))?.phase === 'running') {
        if (Date.now() > until) throw new RuntimeError('RUNNING', `system ${name} still running`);
        await sleep(200);
      }
      return null;
    },
    async *logs(name, opts = {}) {
      if (!(await observe(name))) throw new RuntimeError('NOT_FOUND', `no system ${name} on the data disk`);
      yield* readLog(logOf(name), opts);
    },
    logTail: (name, bytes = 4096) => (NAME_RE.test(name) ? tailLog(logOf(name), bytes) : Promise.resolve('')),
    async enterArgs(name, cmd = []) {
      const o1 = await observe(name);
      if (o1?.phase !== 'running') throw new RuntimeError('NOT_RUNNING', `system ${name} is not running`);
      return ['/bin/sh', path.join('/bin', 'anybios-enter'), name, ...cmd];
    },
  };
}
