// Pulls of `tar` templates' rootfs.tar: one at a time, resumable. A download that breaks keeps its
// bytes in <data>/agent/pulls/<sha256>.part and continues with an HTTP Range request; the whole file
// is checked against the template's sha256 before it becomes <sha256>.tar (the runtime checks it
// again when it unpacks). A pull that would fill the disk is refused before its first byte.
// Failures are retried with back-off (1 s … 60 s; at once after a break that had delivered bytes), and
// at once on `kick()` (the server came back, the document changed). The state of each pull is what the
// status of the systems waiting for it says.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, promises as fsp, statSync } from 'node:fs';
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import type { Blocked } from '../model/types.ts';
import { sha256File } from '../runtime/templates.ts';
import { checkRoom } from './disk.ts';
import { pullPaths, type PullPaths } from './paths.ts';

/** What the catalog says of a template's attachment (from the document's `_attachments` stub). */
export interface AttachmentMeta { name: string; sha256: string; length: number; digest: string }

export interface PullProgress { template: string; sha256: string; bytes: number; total: number; rate: number; etaSeconds: number | null; resumedFrom: number }

interface PullError {
  code: 'TEMPLATE_PULL_FAILED' | 'TEMPLATE_NO_SPACE';
  message: string;
  failures: number;
  retryAt: number;
  /** The attachment it failed for: bytes that did not match the sha256 are not fetched again until they change. */
  digest: string;
  final: boolean;
}

export interface TemplatePullerOptions {
  dataDir: string;
  /** The catalog database URL of the server in use now (changes on failover). */
  catalogUrl: () => string;
  auth: { username: string; password: string };
  /** Bytes the data dir's file system must keep free after a pull and its unpack (default 256 MiB). */
  reserveBytes?: number;
  /** A download that receives nothing for this long is abandoned (and resumed). */
  stallMs?: number;
  /** Called when a pull finishes, fails, or moves on by a tenth (so statuses can be rewritten). */
  onChange: () => void;
  log: (msg: string) => void;
}

const backoff = (failures: number) => Math.min(1000 * 2 ** Math.max(0, failures - 1), 60_000);
const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;

export class TemplatePuller {
  private readonly wanted = new Map<string, AttachmentMeta>();
  private readonly errors = new Map<string, PullError>();
  private current: { meta: AttachmentMeta; progress: PullProgress; abort: AbortController } | null = null;
  private running: Promise<void> | null = null;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  readonly paths: PullPaths;
  /** Completed pulls and resumed ones, for status and benches. */
  done = 0;
  resumed = 0;

  constructor(private readonly o: TemplatePullerOptions) {
    this.paths = pullPaths(o.dataDir);
  }

  /** The attachments the node's systems need now; pulls of others are abandoned (their bytes kept for the GC). */
  want(metas: AttachmentMeta[]): void {
    this.wanted.clear();
    for (const m of metas) this.wanted.set(m.sha256, m);
    for (const [sha, e] of this.errors) if (this.wanted.get(sha)?.digest !== e.digest) this.errors.delete(sha);
    if (this.current && !this.wanted.has(this.current.meta.sha256)) this.current.abort.abort();
    this.kick();
  }

  /** Whether a template's files are here: the unpacked tree, or a verified tarball to unpack. */
  tarballOf(t: TemplateDoc): string | undefined {
    if (t.source !== 'tar' || !t.sha256) return undefined;
    const tar = this.paths.tar(t.sha256);
    return existsSync(tar) ? tar : undefined;
  }

  ready(t: TemplateDoc): boolean {
    if (t.source !== 'tar' || !t.sha256) return true;
    return existsSync(this.paths.unpacked(t.sha256)) || existsSync(this.paths.tar(t.sha256));
  }

  /** Why a system on template `t` cannot start yet, or undefined when it can. */
  blocked(t: TemplateDoc): Blocked | undefined {
    if (this.ready(t)) return undefined;
    const sha = t.sha256!;
    const err = this.errors.get(sha);
    if (err) return { code: err.code, message: err.final ? `${err.message}; not pulled again until the template changes` : `${err.message}; next try in ${Math.max(0, Math.ceil((err.retryAt - Date.now()) / 1000))} s` };
    const p = this.current?.meta.sha256 === sha ? this.current.progress : null;
    if (p) {
      // In tenths, so the status is rewritten about ten times per pull, not at every chunk.
      const rate = p.rate ? `, ${mb(p.rate)}/s, about ${p.etaSeconds ?? '?'} s left` : '';
      return { code: null, message: `pulling template ${t.name}: ${Math.floor((p.bytes / Math.max(1, p.total)) * 10) * 10}% of ${mb(p.total)}${rate}${p.resumedFrom ? ` (resumed at ${mb(p.resumedFrom)})` : ''}` };
    }
    if (!this.wanted.has(sha)) return { code: null, message: `template ${t.name}: waiting for its rootfs.tar from the catalog (not on this node yet)` };
    return { code: null, message: `template ${t.name}: pull queued` };
  }

  progress(): PullProgress | null {
    return this.current ? { ...this.current.progress } : null;
  }

  report(): { pulling: PullProgress | null; errors: Record<string, { code: string; message: string }>; done: number; resumed: number } {
    const errors: Record<string, { code: string; message: string }> = {};
    for (const [sha, e] of this.errors) errors[this.wanted.get(sha)?.name ?? sha] = { code: e.code, message: e.message };
    return { pulling: this.progress(), errors, done: this.done, resumed: this.resumed };
  }

  /** The sha256 being downloaded now (the collector leaves its part file alone). */
  active(): string | null {
    return this.current?.meta.sha256 ?? null;
  }

  /** Try now: errors' back-off is forgotten (the server is back, or a document changed). */
  kick(): void {
    if (this.stopped) return;
    for (const e of this.errors.values()) if (!e.final) e.retryAt = 0;
    this.retryDue();
  }

  /** Runs the pulls that are due (none in back-off), then waits for the next due one. */
  private retryDue(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = null;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    const next = Math.min(Infinity, ...[...this.errors.entries()].filter(([sha]) => this.wanted.has(sha)).map(([, e]) => e.retryAt));
    if (next === Infinity) return;
    this.timer = setTimeout(() => this.retryDue(), Math.max(50, next - Date.now()));
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const next = [...this.wanted.values()].find((m) => !existsSync(this.paths.unpacked(m.sha256)) && !existsSync(this.paths.tar(m.sha256)) && (this.errors.get(m.sha256)?.retryAt ?? 0) <= Date.now());
      if (!next) return;
      try {
        await this.pull(next);
        this.errors.delete(next.sha256);
        this.done++;
      } catch (err) {
        if (this.stopped) return;
        const e = err as { code?: string; message?: string; final?: boolean; progressed?: boolean };
        const code = e.code === 'TEMPLATE_NO_SPACE' ? 'TEMPLATE_NO_SPACE' : 'TEMPLATE_PULL_FAILED';
        const final = e.final === true;
        // A link that broke after delivering bytes is tried again at once; one that delivers nothing backs off.
        const failures = e.progressed ? 0 : (this.errors.get(next.sha256)?.failures ?? 0) + 1;
        const retryAt = final ? Infinity : Date.now() + (e.progressed ? 100 : backoff(failures));
        this.errors.set(next.sha256, { code, message: String(e.message ?? err).slice(0, 1000), failures, retryAt, digest: next.digest, final });
        this.o.log(`template ${next.name}: ${code}: ${e.message}`);
      } finally {
        this.current = null;
        this.o.onChange();
      }
    }
  }

  private async pull(meta: AttachmentMeta): Promise<void> {
    const p = this.paths;
    await fsp.mkdir(p.dir, { recursive: true, mode: 0o700 });
    const part = p.part(meta.sha256);
    // A part file is only resumed for the same attachment bytes (CouchDB's digest of them).
    const prevDigest = await fsp.readFile(p.partMeta(meta.sha256), 'utf8').then((s) => (JSON.parse(s) as { digest?: string }).digest, () => undefined);
    let have = prevDigest === meta.digest ? statSync(part, { throwIfNoEntry: false })?.size ?? 0 : 0;
    if (have > meta.length) have = 0;
    if (have === 0) await fsp.rm(part, { force: true });
    await fsp.writeFile(p.partMeta(meta.sha256), JSON.stringify({ digest: meta.digest, name: meta.name }), { mode: 0o600 });
    // Room for the rest of the tarball and for its unpacked tree (about as big), plus the reserve.
    await checkRoom(this.o.dataDir, meta.length - have + meta.length, this.o.reserveBytes ?? 256 * 1024 * 1024, `template ${meta.name} (rootfs.tar ${mb(meta.length)}, unpacked about as much)`);
    const abort = new AbortController();
    const progress: PullProgress = { template: meta.name, sha256: meta.sha256, bytes: have, total: meta.length, rate: 0, etaSeconds: null, resumedFrom: have };
    this.current = { meta, progress, abort };
    if (have > 0) {
      this.resumed++;
      this.o.log(`template ${meta.name}: resuming the pull at ${mb(have)} of ${mb(meta.length)}`);
    }
    const t0 = Date.now();
    // Hashed as the bytes arrive (one read of the kept part when resuming), not in another pass.
    const got = have < meta.length ? await this.download(meta, part, have, progress, abort) : await sha256File(part);
    if (got !== meta.sha256) {
      await fsp.rm(part, { force: true });
      throw Object.assign(new Error(`template ${meta.name}: the pulled rootfs.tar has sha256 ${got}, the template says ${meta.sha256} (discarded)`), { code: 'TEMPLATE_PULL_FAILED', final: true });
    }
    await fsp.rename(part, p.tar(meta.sha256));
    await fsp.rm(p.partMeta(meta.sha256), { force: true });
    this.o.log(`template ${meta.name}: pulled ${mb(meta.length)}${progress.resumedFrom ? ` (resumed at ${mb(progress.resumedFrom)})` : ''} in ${((Date.now() - t0) / 1000).toFixed(1)} s, sha256 verified`);
  }

  /** Fetches the rest of the attachment into `part`; returns the sha256 of the whole file. */
  private async download(meta: AttachmentMeta, part: string, have: number, progress: PullProgress, abort: AbortController): Promise<string> {
    const url = `${this.o.catalogUrl()}/${encodeURIComponent(`template:${meta.name}`)}/rootfs.tar`;
    const headers: Record<string, string> = { Authorization: 'Basic ' + Buffer.from(`${this.o.auth.username}:${this.o.auth.password}`).toString('base64') };
    if (have > 0) headers.Range = `bytes=${have}-`;
    let lastByteAt = Date.now();
    const stallMs = this.o.stallMs ?? 30_000;
    const stall = setInterval(() => { if (Date.now() - lastByteAt > stallMs) abort.abort(new Error(`no data for ${stallMs / 1000} s`)); }, Math.min(1000, stallMs));
    stall.unref();
    let fh: fsp.FileHandle | null = null;
    let batch: Uint8Array[] = [];
    let batched = 0;
    let flush = async (): Promise<void> => {};
    try {
      const res = await fetch(url, { headers, signal: abort.signal }).catch((err) => { throw pullError(meta, `cannot reach the catalog: ${causeOf(err)}`); });
      if (res.status === 416 && have > 0) {
        // The server has fewer bytes than our part file: that part was of other bytes. Start afresh.
        await res.body?.cancel();
        await fsp.rm(part, { force: true });
        throw pullError(meta, 'the server refused to resume (416); starting again from zero');
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        throw pullError(meta, `GET rootfs.tar answered ${res.status}`);
      }
      let offset = have;
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== have) {
          await res.body?.cancel();
          throw pullError(meta, `the server answered an unexpected range (${res.headers.get('content-range')})`);
        }
      } else offset = 0; // the server ignored our Range: take the whole body from the start
      progress.bytes = offset;
      const hash = createHash('sha256');
      if (offset > 0) {
        let kept = 0;
        for await (const chunk of createReadStream(part, { end: offset - 1 })) {
          hash.update(chunk as Buffer);
          kept += (chunk as Buffer).length;
        }
        if (kept !== offset) throw pullError(meta, `the kept part has ${kept} bytes, not ${offset}`);
      }
      fh = await fsp.open(part, offset === 0 ? 'w' : 'r+', 0o600);
      const started = Date.now();
      let lastTenth = Math.floor((offset / Math.max(1, meta.length)) * 10);
      // Network chunks are small (16-64 KiB): written in batches (4 MiB, or each second on a slow link).
      let flushedAt = Date.now();
      flush = async () => {
        flushedAt = Date.now();
        if (!batched) return;
        const buf = Buffer.concat(batch, batched);
        batch = [];
        batched = 0;
        await fh!.write(buf, 0, buf.length, progress.bytes);
        progress.bytes += buf.length;
      };
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        lastByteAt = Date.now();
        if (progress.bytes + batched + chunk.length > meta.length) throw pullError(meta, `the server sent more than the ${meta.length} bytes the document announces`);
        hash.update(chunk);
        batch.push(chunk);
        batched += chunk.length;
        if (batched < 4 * 1024 * 1024 && Date.now() - flushedAt < 1000) continue;
        await flush();
        const secs = (Date.now() - started) / 1000;
        progress.rate = secs > 0 ? Math.round((progress.bytes - offset) / secs) : 0;
        progress.etaSeconds = progress.rate > 0 ? Math.ceil((meta.length - progress.bytes) / progress.rate) : null;
        const tenth = Math.floor((progress.bytes / Math.max(1, meta.length)) * 10);
        if (tenth !== lastTenth) {
          lastTenth = tenth;
          this.o.onChange();
        }
      }
      await flush();
      if (progress.bytes !== meta.length) throw pullError(meta, `the download ended at ${progress.bytes} of ${meta.length} bytes`);
      return hash.digest('hex');
    } catch (err) {
      // What arrived before the break is kept: the next try resumes after it.
      await flush().catch(() => {});
      if ((err as { code?: string }).code === 'TEMPLATE_PULL_FAILED') throw err;
      throw Object.assign(pullError(meta, `the download broke at ${mb(progress.bytes)} of ${mb(meta.length)} (kept; it resumes there): ${causeOf(abort.signal.reason ?? err)}`), { progressed: progress.bytes > have });
    } finally {
      clearInterval(stall);
      await fh?.close();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.current?.abort.abort();
    await this.running;
  }
}

function pullError(meta: AttachmentMeta, why: string): Error {
  return Object.assign(new Error(`template ${meta.name}: ${why}`), { code: 'TEMPLATE_PULL_FAILED' });
}

function causeOf(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
