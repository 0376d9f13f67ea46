// `anybios template import`: a real OS template (Debian by mmdebstrap, or a rootfs tarball) → a tar or
// dir template and its document. The work is in boot/os-template.ts.
import { parseArgs } from 'node:util';
import { CliError, type Command } from '../command.ts';
import { importTemplate } from '../../boot/os-template.ts';

const usage = `usage: anybios template import debian:SUITE --out FILE.tar|DIR [--name NAME] [--include PKG,...] [--mirror URL] [--json]
       anybios template import --from ROOTFS.tar --out FILE.tar|DIR [--name NAME] [--json]

Makes a template an os system can boot from (its own /sbin/init: systemd for Debian):
  debian:SUITE        Debian SUITE (bookworm, trixie, …) by mmdebstrap: variant minbase plus systemd,
                      systemd-sysv and dbus, from the archive apt is set up to reach (as root; needs
                      apt-get install mmdebstrap; ~1–2 min and ~200 MB for bookworm)
  --from ROOTFS.tar   an existing root file system tarball (it must hold an init)
  --out FILE.tar      write a tar template (its document carries the sha256; pass the tarball to
                      \`anybios run --tarball\` or the agent on first use)
  --out DIR           write a dir template (DIR must not exist; it must lie under a template root)
  --name NAME         the template's name (default debian-SUITE, or from the tarball's name)
  --include PKG,...   more Debian packages
  --mirror URL        a Debian mirror other than apt's default
  --json              print only the template document

The template document is printed (JSON), ready for \`anybios apply -f\` or \`anybios run --template\`.
A system from it: kind os, init [/sbin/init]; \`anybios enter NAME -- systemctl is-system-running\`.
Example: anybios template import debian:bookworm --out /srv/templates/bookworm.tar`;

export const command: Command = {
  name: 'template',
  summary: 'import a real OS template (debian:SUITE by mmdebstrap, or --from rootfs.tar)',
  usage,
  async run(argv) {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: { out: { type: 'string', short: 'o' }, from: { type: 'string' }, name: { type: 'string' }, include: { type: 'string' }, mirror: { type: 'string' }, json: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new CliError('USAGE', `${(e as Error).message}\n\n${usage}`, 2);
    }
    const { values, positionals } = parsed;
    const [sub, source, ...extra] = positionals;
    if (sub !== 'import') throw new CliError('USAGE', usage, 2);
    if (extra.length) throw new CliError('USAGE', `unexpected arguments: ${extra.join(' ')}\n\n${usage}`, 2);
    if (!values.out) throw new CliError('USAGE', `--out is missing\n\n${usage}`, 2);
    if (!!source === !!values.from) throw new CliError('USAGE', `give either debian:SUITE or --from ROOTFS.tar\n\n${usage}`, 2);
    const started = Date.now();
    const doc = await importTemplate({
      source: source ?? null,
      from: values.from,
      out: values.out,
      name: values.name,
      include: values.include?.split(',').filter(Boolean),
      mirror: values.mirror,
      log: (l) => console.error(l),
    });
    if (!values.json) console.error(`template ${doc.name} imported in ${((Date.now() - started) / 1000).toFixed(0)} s: ${values.out}`);
    console.log(JSON.stringify(doc, null, 2));
    return 0;
  },
};
