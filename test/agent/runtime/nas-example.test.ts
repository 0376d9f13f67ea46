// fixtures/examples/nas.yaml: the documents pass the schemas, and the NAS system serves its volume over
// HTTP from a static busybox template — as a container (root) and under proot (a phone without root).
import test from 'ava';
import { promises as fsp, existsSync, readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { docErrors } from '../../../ddocs/validate.ts';
import type { SystemDoc, TemplateDoc } from '../../../ddocs/schemas/types.ts';
import { hostMountsUnder, requirePrivilege, setup } from './helpers/setup.ts';

const EXAMPLE = new URL('../../../fixtures/examples/nas.yaml', import.meta.url);
const docs = () => parseAllDocuments(readFileSync(EXAMPLE, 'utf8')).map((d) => d.toJS()).filter(Boolean) as Record<string, unknown>[];

test('the example documents pass the schemas the design documents enforce', (t) => {
  const all = docs();
  t.deepEqual(all.map((d) => d._id), ['template:busybox', 'volume:share', 'system:nas']);
  for (const d of all) t.deepEqual(docErrors(d), [], String(d._id));
});

for (const strategy of ['auto', 'proot'] as const) {
  test.serial(`the NAS serves a file from its volume over HTTP (${strategy === 'auto' ? 'container' : 'proot'})`, async (t) => {
    if (!requirePrivilege(t)) return;
    const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
    if (!busybox) return t.fail('busybox is not installed (Debian: apt-get install busybox-static)');
    if (strategy === 'proot' && !existsSync('/usr/bin/proot')) return t.fail('proot is not installed (Debian: apt-get install proot)');
    const env = await setup(t, { strategy });
    const root = `${env.templateRoot}/busybox-nas-${process.pid}-${strategy}`;
    t.teardown(() => fsp.rm(root, { recursive: true, force: true }));
    for (const d of ['bin', 'etc', 'srv', 'proc', 'sys', 'dev', 'tmp', 'run']) await fsp.mkdir(`${root}/${d}`, { recursive: true });
    await fsp.copyFile(busybox, `${root}/bin/busybox`);
    await fsp.chmod(`${root}/bin/busybox`, 0o755);
    await fsp.symlink('busybox', `${root}/bin/sh`);
    const [tpl, , sys] = docs() as [TemplateDoc, unknown, SystemDoc];
    const port = 20000 + (process.pid % 20000);
    const spec: SystemDoc = { ...sys, command: sys.command!.map((a) => (a === '8088' ? String(port) : a)) };
    await env.rt.start(spec, { ...tpl, path: root });
    await fsp.writeFile(`${env.data}/volumes/share/hello.txt`, 'from the phone\n');
    let body = '';
    for (let i = 0; i < 100 && body !== 'from the phone\n'; i++) {
      body = await fetch(`http://127.0.0.1:${port}/hello.txt`).then((r) => (r.ok ? r.text() : ''), () => '');
      if (body !== 'from the phone\n') await new Promise((r) => setTimeout(r, 50));
    }
    t.is(body, 'from the phone\n', await env.rt.logTail('nas'));
    const stopped = await env.rt.stop('nas', { graceMs: 3000 });
    t.is(stopped?.phase, 'stopped');
    t.deepEqual(hostMountsUnder(env.base), []);
  });
}
