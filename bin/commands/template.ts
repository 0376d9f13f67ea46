// `anybios template ls|get|rm|add`: the catalog's templates. `add NAME --from DIR|TAR` makes a tar
// template: the tarball (made from DIR, or the file as given) is hashed, the document written with its
// sha256 (a new revision without the old attachment, so no node pulls stale bytes under a new hash),
// then the tarball uploaded as its `rootfs.tar` attachment with a progress bar. Nodes follow the
// document live and pull the attachment resumably (see docs/agent.md, "Templates").
import { spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import { sha256File } from '../../agent/runtime/templates.ts';
import { ATTACHMENT_MAX_BODY } from '../../server/couch/embedded/routes/range.ts';
import { CliError, type Command } from '../command.ts';
import { parseCommand, usageError } from '../lib/args.ts';
import { command as ls } from './ls.ts';
import { command as get } from './get.ts';
import { command as rm } from './rm.ts';
import { CONNECTION_USAGE, resolveConnection, type Connection } from '../lib/connection.ts';

const usage = `usage: anybios template ls [--json]
       anybios template get NAME [--json|--yaml]
       anybios template rm NAME
       anybios template add NAME --from DIR|TAR [--description TEXT] [--no-progress]

Templates live in the catalog. \`host\` needs no document: every node has it (a document
template:host may describe it, or forbid it everywhere with enabled: false).

add:
  --from DIR    a root filesystem tree: packed with tar (numeric owners kept; run as root to keep them)
  --from TAR    a tarball (.tar or .tar.gz) used as it is
  --description TEXT
  --no-progress no progress bar (it goes to stderr, and only to a terminal anyway)

examples:
  anybios template add debian --from ./debian-rootfs
  anybios template add alpine --from alpine-minirootfs.tar.gz --description "Alpine 3.20"
  anybios template ls
  anybios template rm debian

${CONNECTION_USAGE}`;

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

async function couch(c: Connection, method: string, p: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(`${c.url}/db${p}`, {
      method,
      headers: { Authorization: 'Basic ' + Buffer.from(`${c.user}:${c.password}`).toString('base64'), Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new CliError('SERVER_UNREACHABLE', `cannot reach ${c.url}: ${(err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
  }
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { reason: text.slice(0, 200) };
  }
  return { status: res.status, body: parsed };
}

function refused(what: string, r: { status: number; body: Record<string, unknown> }, c: Connection): CliError {
  const reason = String(r.body.reason ?? r.body.error ?? `HTTP ${r.status}`);
  if (r.status === 401) return new CliError('UNAUTHORIZED', `${c.url} refused the credentials of ${c.user}: ${reason}`);
  if (r.status === 403) return new CliError('FORBIDDEN', `${what}: ${reason}`);
  return new CliError(String(r.body.error ?? `HTTP_${r.status}`).toUpperCase(), `${what}: ${reason}`);
}

/** Packs DIR into a tarball in a fresh temp dir; the caller removes the dir. */
async function packDir(dir: string, tmp: string): Promise<string> {
  const out = join(tmp, 'rootfs.tar');
  const code = await new Promise<number>((res, rej) => {
    const p = spawn('tar', ['--numeric-owner', '-C', dir, '-cf', out, '.'], { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('error', rej);
    p.on('exit', (c) => res(c ?? 1));
  });
  if (code !== 0) throw new CliError('TAR_FAILED', `tar could not pack ${dir} (exit ${code})`);
  return out;
}

/** A progress bar on stderr (terminal only): bytes, rate, ETA. */
function progressBar(total: number, enabled: boolean): { update(n: number): void; sent(): void; done(): void } {
  const started = Date.now();
  let last = 0;
  let sentSecs = 0;
  const draw = (n: number) => {
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? n / secs : 0;
    const width = 30;
    const filled = Math.round((n / Math.max(1, total)) * width);
    const eta = rate > 0 ? `${Math.ceil((total - n) / rate)} s` : '?';
    process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.floor((n / Math.max(1, total)) * 100)}% ${mb(n)}/${mb(total)} ${mb(rate)}/s ETA ${eta}   `);
  };
  return {
    update(n) {
      if (!enabled || Date.now() - last < 100) return;
      last = Date.now();
      draw(n);
    },
    /** Every byte is on its way: what remains is the server storing it (PouchDB writes it whole). */
    sent() {
      if (!enabled) return;
      draw(total);
      sentSecs = (Date.now() - started) / 1000;
      process.stderr.write('storing… ');
    },
    done() {
      if (!enabled) return;
      process.stderr.write(`done (${sentSecs.toFixed(1)} s sending, ${((Date.now() - started) / 1000 - sentSecs).toFixed(1)} s storing)\n`);
    },
  };
}

/** PUT the file as the document's rootfs.tar, streamed (never whole in memory here). */
function upload(c: Connection, name: string, rev: string, file: string, size: number, showProgress: boolean): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(`${c.url}/db/anybios/${encodeURIComponent(`template:${name}`)}/rootfs.tar?rev=${encodeURIComponent(rev)}`);
  const mod = url.protocol === 'https:' ? https : http;
  const bar = progressBar(size, showProgress);
  return new Promise((resolveUpload, reject) => {
    const req = mod.request(url, { method: 'PUT', headers: { Authorization: 'Basic ' + Buffer.from(`${c.user}:${c.password}`).toString('base64'), 'Content-Type': 'application/x-tar', 'Content-Length': size } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { if (text.length < 100_000) text += d; });
      res.on('end', () => {
        bar.done();
        let body: Record<string, unknown> = {};
        try { body = JSON.parse(text); } catch { body = { reason: text.slice(0, 200) }; }
        resolveUpload({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', (err) => reject(new CliError('SERVER_UNREACHABLE', `the upload to ${c.url} broke: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    let sent = 0;
    const stream = createReadStream(file);
    stream.on('data', (chunk) => { sent += chunk.length; bar.update(sent); });
    stream.on('end', () => bar.sent());
    stream.on('error', (err) => { req.destroy(); reject(new CliError('FILE_UNREADABLE', `${file}: ${err.message}`)); });
    stream.pipe(req);
  });
}

async function add(c: Connection, name: string, from: string, description: string | undefined, showProgress: boolean): Promise<void> {
  if (!NAME_RE.test(name)) throw new CliError('INVALID_NAME', `template name ${JSON.stringify(name)} must match ${NAME_RE.source}`);
  if (name === 'host') throw new CliError('INVALID_NAME', 'host is built into every node; its catalog document may only describe it (source: host), not carry a rootfs');
  const src = resolve(from);
  const st = statSync(src, { throwIfNoEntry: false });
  if (!st) throw new CliError('FILE_NOT_FOUND', `--from ${from}: no such file or directory`);
  const tmp = st.isDirectory() ? mkdtempSync(join(tmpdir(), 'anybios-template-')) : null;
  try {
    const file = tmp ? await packDir(src, tmp) : src;
    const size = statSync(file).size;
    if (size > ATTACHMENT_MAX_BODY) throw new CliError('TEMPLATE_TOO_BIG', `${mb(size)} is more than the ${mb(ATTACHMENT_MAX_BODY)} a template's rootfs.tar may have; compress it (.tar.gz) or slim the tree`);
    const sha256 = await sha256File(file);
    const id = `/anybios/${encodeURIComponent(`template:${name}`)}`;
    const cur = await couch(c, 'GET', id);
    if (cur.status !== 200 && cur.status !== 404) throw refused(`template ${name}`, cur, c);
    const current = cur.status === 200 ? cur.body : null;
    const att = (current?._attachments as Record<string, { length?: number }> | undefined)?.['rootfs.tar'];
    if (current && current.sha256 === sha256 && att?.length === size && (description === undefined || current.description === description)) {
      console.log(`template ${name}: unchanged (sha256 ${sha256})`);
      return;
    }
    // No _attachments in this body: the old rootfs.tar goes with this revision (see the header).
    const doc: Record<string, unknown> = { _id: `template:${name}`, type: 'template', name, source: 'tar', sha256, ...(current?.labels ? { labels: current.labels } : {}) };
    const desc = description ?? (current?.description as string | undefined);
    if (desc !== undefined) doc.description = desc;
    if (current) doc._rev = current._rev;
    const put = await couch(c, 'PUT', id, doc);
    if (put.status !== 201 && put.status !== 202) throw refused(`template ${name}`, put, c);
    const up = await upload(c, name, String(put.body.rev), file, size, showProgress);
    if (up.status !== 201 && up.status !== 202) throw refused(`template ${name}: rootfs.tar`, up, c);
    console.log(`template ${name}: ${current ? 'updated' : 'created'}, rootfs.tar ${mb(size)}, sha256 ${sha256}`);
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

export const command: Command = {
  name: 'template',
  summary: 'list, show, remove templates; add one from a directory or tarball',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommand(argv, { json: { type: 'boolean' }, yaml: { type: 'boolean' }, from: { type: 'string' }, description: { type: 'string' }, 'no-progress': { type: 'boolean' } }, usage);
    const [sub, name, ...extra] = positionals;
    if (extra.length) throw usageError(`unexpected arguments: ${extra.join(' ')}`, usage);
    const conn = ['url', 'user', 'password', 'data'].flatMap((k) => (values[k as keyof typeof values] !== undefined ? [`--${k}`, String(values[k as keyof typeof values])] : []));
    const fmt = [...(values.json ? ['--json'] : []), ...(values.yaml ? ['--yaml'] : [])];
    // ls, get and rm are the fleet commands' own, on the catalog.
    const delegate = (file: 'ls' | 'get' | 'rm', args: string[]) => ({ ls, get, rm })[file].run([...args, ...conn]);
    switch (sub) {
      case 'ls':
        if (name) throw usageError('ls takes no NAME', usage);
        return delegate('ls', ['templates', ...fmt]);
      case 'get':
        if (!name) throw usageError('get needs NAME', usage);
        return delegate('get', ['template', name, ...fmt]);
      case 'rm':
        if (!name) throw usageError('rm needs NAME', usage);
        return delegate('rm', ['template', name, ...(values.json ? ['--json'] : [])]);
      case 'add':
        if (!name) throw usageError('add needs NAME', usage);
        if (!values.from) throw usageError('add needs --from DIR|TAR', usage);
        await add(resolveConnection(values), name, values.from, values.description, !values['no-progress'] && process.stderr.isTTY === true);
        return 0;
      default:
        throw usageError(sub ? `unknown subcommand ${sub}` : 'a subcommand is needed: ls, get, rm, add', usage);
    }
  },
};
