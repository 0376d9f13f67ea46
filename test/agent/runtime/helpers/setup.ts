// Shared setup of the runtime tests: a real fixture rootfs, a throw-away data dir per test, teardown
// registered before anything is started, and the host mount table check.
import { promises as fsp, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import type { ExecutionContext } from 'ava';
import { buildRootfs } from '../../../../fixtures/rootfs/build.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../../../../agent/runtime/index.ts';
import type { SystemDoc, TemplateDoc } from '../../../../ddocs/schemas/types.ts';
import { docErrors } from '../../../../ddocs/validate.ts';

/** Where test data dirs live: on the root file system (not /tmp) so the host-template hides are exercised. */
export const TEST_BASE = process.env.ANYBIOS_TEST_TMP ?? '/var/tmp';

let fixture: Promise<string> | null = null;

/** The fixture rootfs, built once per test process under a template root. */
export function fixtureRootfs(): Promise<{ root: string; dir: string }> {
  fixture ??= (async () => {
    const root = await fsp.mkdtemp(`${TEST_BASE}/anybios-fixture-`);
    await buildRootfs(`${root}/mini`);
    process.on('exit', () => {
      try {
        execFileSync('rm', ['-rf', root]);
      } catch {
        // best effort
      }
    });
    return root;
  })();
  return fixture.then((root) => ({ root, dir: `${root}/mini` }));
}

/** Fail (never skip) when this machine cannot run systems at all. */
export function requirePrivilege(t: ExecutionContext): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    execFileSync('unshare', ['--user', '--map-root-user', 'true']);
    return true;
  } catch {
    t.fail('the runtime tests need root, or a kernel that allows unshare --user --map-root-user');
    return false;
  }
}

export interface Env {
  rt: Runtime;
  data: string;
  base: string;
  template: TemplateDoc;
  hostTemplate: TemplateDoc;
  templateRoot: string;
}

/** A fresh runtime in its own data dir; teardown destroys every system and removes the dir. */
export async function setup(t: ExecutionContext, opts: Partial<RuntimeOptions> = {}): Promise<Env> {
  const base = await fsp.mkdtemp(`${TEST_BASE}/anybios-test-`);
  const data = `${base}/data`;
  let rt: Runtime | null = null;
  t.teardown(async () => {
    if (rt) {
      for (const o of await rt.list({ diskUsage: false }).catch(() => [])) await rt.destroy(o.name, { volumes: true, graceMs: 200 }).catch(() => {});
    }
    await fsp.rm(base, { recursive: true, force: true });
  });
  const fx = await fixtureRootfs();
  rt = await createRuntime({ checkDoc: docErrors, dataDir: data, templateRoots: [fx.root], ...opts });
  return {
    rt,
    data: rt.dataDir,
    base,
    templateRoot: fx.root,
    template: { _id: 'template:mini', type: 'template', name: 'mini', source: 'dir', path: fx.dir },
    hostTemplate: { _id: 'template:host', type: 'template', name: 'host', source: 'host' },
  };
}

export function app(name: string, command: string[], extra: Partial<SystemDoc> = {}): SystemDoc {
  return { _id: `system:${name}`, type: 'system', name, kind: 'app', template: 'mini', state: 'running', command, ...extra };
}

export function osSystem(name: string, extra: Partial<SystemDoc> = {}): SystemDoc {
  return { _id: `system:${name}`, type: 'system', name, kind: 'os', template: 'mini', state: 'running', init: ['/sbin/init'], ...extra };
}

/** Mount points in the host namespace under a path (must be none of ours, ever). */
export function hostMountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!)
    .filter((m) => m === prefix || m.startsWith(prefix + '/'));
}

export async function waitFor<T>(fn: () => Promise<T | null | undefined | false>, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const tmpdir = os.tmpdir;
