// `anybios run -f spec.json`: materialize and start one system locally (no server, no CouchDB).
import { promises as fsp } from 'node:fs';
import YAML from 'yaml';
import { CliError, type Command } from '../command.ts';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import { LOCAL_USAGE, cliErrors, openRuntime, parseLocal } from '../lib/runtime-cli.ts';

const usage = `usage: anybios run -f SPEC [--template FILE] [--tarball FILE] [--wait] [--json] [--data DIR]

Materializes and starts the system described by SPEC (a system document, JSON or YAML; _id and type
may be left out). The template comes from --template FILE (a template document); a system whose
template is "host" needs none. --wait waits for the system to exit and returns its exit code.

  -f, --file SPEC        the system document
  --template FILE        the template document (source dir or tar)
  --tarball FILE         the rootfs tarball of a tar template (first use only; then it is cached)
  --wait                 wait for the exit (apps) and exit with its code
  --json                 print the observed state as JSON
${LOCAL_USAGE}`;

async function readDoc(file: string, type: 'system' | 'template'): Promise<Record<string, unknown>> {
  let doc: unknown;
  try {
    doc = YAML.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    throw new CliError('BAD_FILE', `cannot read ${file}: ${(e as Error).message}`);
  }
  if (!doc || typeof doc !== 'object') throw new CliError('BAD_FILE', `${file} does not hold a document`);
  const d = doc as Record<string, unknown>;
  return { _id: `${type}:${String(d.name)}`, type, ...d };
}

export const command: Command = {
  name: 'run',
  summary: 'materialize and start a system on this machine (local mode)',
  usage,
  async run(argv) {
    const { values, positionals } = parseLocal(argv, {
      file: { type: 'string', short: 'f' },
      template: { type: 'string' },
      tarball: { type: 'string' },
      wait: { type: 'boolean' },
      json: { type: 'boolean' },
    }, usage);
    if (!values.file || positionals.length) throw new CliError('USAGE', usage, 2);
    const spec = (await readDoc(values.file, 'system')) as unknown as SystemDoc;
    let template: TemplateDoc;
    if (values.template) template = (await readDoc(values.template, 'template')) as unknown as TemplateDoc;
    else if (spec.template === 'host') template = { _id: 'template:host', type: 'template', name: 'host', source: 'host' };
    else throw new CliError('USAGE', `system ${spec.name} uses template ${spec.template}: pass --template FILE\n\n${usage}`, 2);
    const rt = await openRuntime(values);
    const o = await cliErrors(() => rt.start(spec, template, { tarball: values.tarball }));
    if (values.json) console.log(JSON.stringify(o, null, 2));
    else console.log(`${o.name}: ${o.phase} (pid ${o.pid ?? '-'}, ${o.strategy})`);
    if (!values.wait) return 0;
    const code = await rt.wait(o.name);
    return code ?? 1;
  },
};
