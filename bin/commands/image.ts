// `anybios image build|disk|qemu`: the boot image (PE) of issue 14, a data disk for it, and a qemu run
// of both. The work is in boot/; docs/boot.md says how a machine boots them.
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { CliError, type Command } from '../command.ts';
import { buildImage, DEFAULT_CACHE } from '../../boot/image.ts';
import { addNodeCredential, addSystem, addTemplate, makeExt4, readNodeCredential } from '../../boot/disk.ts';
import { qemuArgs } from '../../boot/qemu.ts';

const usage = `usage: anybios image build --out DIR [--kernel FILE] [--cache DIR] [--agent [--node-bin FILE]]
       anybios image disk --out FILE --template NAME=DIR|TAR... --system NAME[:TEMPLATE[:INIT]]... [--node FILE] [--label L] [--size MIB]
       anybios image qemu --image DIR --disk FILE [--append PARAMS] [--kvm] [--net] [--mem MIB]

build   the PE: DIR/vmlinuz and DIR/initrd.img (+ image.json) from Debian packages. The kernel is
        --kernel FILE (a vmlinuz whose modules are in /lib/modules/<version>, or a linux-image .deb),
        else this machine's /boot, else apt's linux-image-amd64 (downloaded into --cache, default
        ${DEFAULT_CACHE}); busybox is this machine's static one or busybox-static's. The initrd's
        /init reads anybios.root, anybios.systems, anybios.boot, anybios.mode, anybios.net from the
        kernel command line (docs/boot.md). --agent adds the anybios agent: node (--node-bin, default
        the node running this command) with its shared libraries, and the agent as one bundle; in
        resident mode it syncs the disk's systems with anybios.server=URL (~35 MB more initrd).
disk    a data disk for it: an ext4 image (mkfs.ext4 -d; no mount) labelled L (default anybios) with
        templates in /anybios/templates and systems in /anybios/systems. --system NAME:TEMPLATE
        (default: the first template) with init INIT (default /sbin/init); repeat the flags. --node FILE
        puts a node's credential (the output of \`anybios node add ID --json\`) at
        /anybios/node/agent/credentials.json (mode 0600) for the PE's agent.
qemu    boots DIR's PE with the data disk under qemu on this terminal (serial console; quit with
        Ctrl-A X). --append adds kernel parameters (default: anybios.root=LABEL=anybios
        anybios.boot=system0). --kvm uses KVM (else software emulation), --net user networking (the
        host's loopback is 10.0.2.2 from inside; on by default for an --agent image, which also gets
        --mem 1024 by default, else 512).

Examples:
  anybios image build --out /srv/pe --agent
  anybios node add pe1 --json > pe1.json
  anybios image disk --out disk.img --template bookworm=bookworm.tar --system system0 --system system1 --node pe1.json
  anybios image qemu --image /srv/pe --disk disk.img --append 'anybios.boot=system0,system1 anybios.mode=resident anybios.server=http://10.0.2.2:8080'`

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        out: { type: 'string', short: 'o' }, kernel: { type: 'string' }, cache: { type: 'string' },
        template: { type: 'string', multiple: true }, system: { type: 'string', multiple: true }, label: { type: 'string' }, size: { type: 'string' },
        agent: { type: 'boolean' }, 'node-bin': { type: 'string' }, node: { type: 'string' }, image: { type: 'string' }, disk: { type: 'string' }, append: { type: 'string' }, kvm: { type: 'boolean' }, net: { type: 'boolean' }, mem: { type: 'string' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CliError('USAGE', `${(e as Error).message}\n\n${usage}`, 2);
  }
}

const need = (v: string | undefined, flag: string): string => {
  if (!v) throw new CliError('USAGE', `${flag} is missing\n\n${usage}`, 2);
  return v;
};

async function build(values: ReturnType<typeof parse>['values']): Promise<number> {
  const out = path.resolve(need(values.out, '--out'));
  const m = await buildImage({ out, kernel: values.kernel, cache: values.cache, agent: values.agent, node: values['node-bin'], log: (s) => console.error(s) });
  console.log(`${out}/vmlinuz ${out}/initrd.img (kernel ${m.kernel.version}, ${m.modules.length} modules${m.agent ? `, agent with node ${m.agent.nodeVersion}` : ''})`);
  return 0;
}

function disk(values: ReturnType<typeof parse>['values']): number {
  const out = path.resolve(need(values.out, '--out'));
  const templates = values.template ?? [];
  if (!templates.length) throw new CliError('USAGE', `--template NAME=DIR|TAR is missing\n\n${usage}`, 2);
  const dir = mkdtempSync(path.join(path.dirname(out), '.anybios-disk-'));
  try {
    const names: string[] = [];
    for (const t of templates) {
      const [name, source] = t.split('=', 2);
      if (!name || !source) throw new CliError('USAGE', `--template ${t}: expected NAME=DIR or NAME=FILE.tar`, 2);
      console.error(`template ${name} from ${source}`);
      addTemplate(dir, name, path.resolve(source));
      names.push(name);
    }
    for (const s of values.system ?? []) {
      const [name, template = names[0]!, init] = s.split(':');
      addSystem(dir, { name: name!, template, init });
      console.error(`system ${name} on ${template}`);
    }
    if (values.node) addNodeCredential(dir, readNodeCredential(path.resolve(values.node)));
    const size = values.size ? Number.parseInt(values.size, 10) : undefined;
    makeExt4(dir, out, { label: values.label, sizeMiB: size });
    console.log(`${out} (label ${values.label ?? 'anybios'})`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function qemu(values: ReturnType<typeof parse>['values']): number {
  const image = path.resolve(need(values.image, '--image'));
  const append = `console=ttyS0 ${values.append?.includes('anybios.root=') ? '' : 'anybios.root=LABEL=anybios '}${values.append ?? 'anybios.boot=system0'}`;
  // An image with the agent needs room for node and a network to reach its server.
  let withAgent = false;
  try {
    withAgent = !!JSON.parse(readFileSync(`${image}/image.json`, 'utf8')).agent;
  } catch {
    // no image.json (a kernel and initrd from elsewhere): the defaults
  }
  if (values.mem !== undefined && !/^\d+$/.test(values.mem)) throw new CliError('USAGE', `--mem must be whole MiB (got ${values.mem})`, 2);
  const args = qemuArgs({ kernel: `${image}/vmlinuz`, initrd: `${image}/initrd.img`, append, disks: [path.resolve(need(values.disk, '--disk'))], net: values.net || withAgent, accel: values.kvm ? 'kvm' : 'tcg', memMiB: values.mem ? Number(values.mem) : withAgent ? 1024 : undefined });
  const r = spawnSync('qemu-system-x86_64', args, { stdio: 'inherit' });
  if (r.error) throw new CliError('TOOL_MISSING', `qemu-system-x86_64: ${r.error.message} (apt-get install qemu-system-x86)`);
  return r.status ?? 1;
}

export const command: Command = {
  name: 'image',
  summary: 'the boot image (PE): build it, make a data disk for it, boot both under qemu',
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv);
    const [sub, ...extra] = positionals;
    if (extra.length) throw new CliError('USAGE', `unexpected arguments: ${extra.join(' ')}\n\n${usage}`, 2);
    if (sub === 'build') return build(values);
    if (sub === 'disk') return disk(values);
    if (sub === 'qemu') return qemu(values);
    throw new CliError('USAGE', usage, 2);
  },
};
