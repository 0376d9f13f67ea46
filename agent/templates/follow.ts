// Follows the catalog documents this node's systems use, as live as the node's own database: a
// longpoll `_changes` feed on the catalog filtered by `_doc_ids` (only the templates in use; a node
// credential can read the catalog but need not hear of every template in it), renewed at once when the
// set changes. Documents go into the local catalog copy *without* their attachment (a 200 MB rootfs
// inside a replication batch could neither resume nor be refused for space): the puller fetches it.
// A network failure is retried after 1 s … 5 s, and at once on `kick()` (the node's own sync
// reached the server again), so a template that was missing arrives the moment the server is back.
import type { TemplateDoc } from '../../ddocs/schemas/types.ts';
import { docErrors } from '../../ddocs/validate.ts';
import { requestText } from '../sync/request.ts';
import type { AttachmentMeta } from './pull.ts';

export type FollowState = 'starting' | 'live' | 'offline' | 'stopped';

export interface TemplateFollowerOptions {
  /** The local catalog copy. */
  catalog: PouchDB.Database;
  /** The catalog database URL of the server in use now (changes on failover). */
  catalogUrl: () => string;
  auth: { username: string; password: string };
  /** The rootfs.tar attachments of the followed tar templates, whenever they may have changed. */
  onAttachments: (metas: AttachmentMeta[]) => void;
  log: (msg: string) => void;
  /** Called when the catalog answered for names not asked about before (a missing one is now known missing). */
  onAnswered?: () => void;
  /** Longpoll timeout (the server answers an empty batch after it). */
  pollMs?: number;
}

interface ChangeRow { id: string; deleted?: boolean; doc?: Record<string, unknown> }

const MAX_RETRY_MS = 5000;

export class TemplateFollower {
  state: FollowState = 'starting';
  lastError: string | null = null;
  /** Documents written into the local copy since start (for status and tests). */
  received = 0;
  private names: string[] = [];
  private since: string | number = 0;
  private abort: AbortController | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private stopped = false;
  private generation = 0;
  private readonly metas = new Map<string, AttachmentMeta>();
  /** Names the catalog has answered for since they were followed: absent from the copy = absent there. */
  private readonly answered = new Set<string>();

  constructor(private readonly o: TemplateFollowerOptions) {}

  /** The template names to follow. A new set restarts the feed from the beginning (only these ids). */
  follow(names: string[]): void {
    const next = [...new Set(names)].sort();
    if (next.join('\n') === this.names.join('\n') && this.loop) return;
    this.names = next;
    this.since = 0;
    this.generation++;
    for (const n of this.metas.keys()) if (!next.includes(n)) this.metas.delete(n);
    for (const n of this.answered) if (!next.includes(n)) this.answered.delete(n);
    this.publish();
    this.abort?.abort();
    this.wake?.();
    if (!this.loop && !this.stopped) this.loop = this.run();
  }

  /** Whether the catalog has answered for `name` yet (until then a missing document may just be on its way). */
  hasAnswered(name: string): boolean {
    return this.answered.has(name);
  }

  /** Retry now (the server answers again). */
  kick(): void {
    if (this.state !== 'live') this.wake?.();
  }

  private publish(): void {
    this.o.onAttachments([...this.metas.values()]);
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      if (!this.names.length) {
        await this.sleep(Infinity);
        continue;
      }
      const gen = this.generation;
      try {
        await this.poll(gen);
        failures = 0;
        if (this.state !== 'live') this.o.log('templates: following the catalog live');
        this.state = 'live';
        this.lastError = null;
      } catch (err) {
        if (this.stopped) break;
        if (gen !== this.generation) continue; // aborted for a new set: go again at once
        failures++;
        this.lastError = String((err as Error).message ?? err);
        if (this.state !== 'offline') this.o.log(`templates: catalog feed offline (${this.lastError}); retrying`);
        this.state = 'offline';
        await this.sleep(Math.min(250 * 2 ** failures, MAX_RETRY_MS));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => { clearTimeout(t); this.wake = null; resolve(); };
      const t = ms === Infinity ? undefined : setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async poll(gen: number): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    const pollMs = this.o.pollMs ?? 25_000;
    // A dead connection that never errors must not hold the feed: give up a while after the timeout.
    const guard = setTimeout(() => abort.abort(new Error('the catalog feed did not answer')), pollMs + 15_000);
    try {
      const qs = new URLSearchParams({ feed: this.since === 0 ? 'normal' : 'longpoll', filter: '_doc_ids', include_docs: 'true', since: String(this.since), timeout: String(pollMs) });
      const res = await requestText(`${this.o.catalogUrl()}/_changes?${qs}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(`${this.o.auth.username}:${this.o.auth.password}`).toString('base64') },
        body: JSON.stringify({ doc_ids: this.names.map((n) => `template:${n}`) }),
        signal: abort.signal,
      });
      const text = res.text;
      if (res.status !== 200) throw new Error(`_changes answered ${res.status}: ${text.slice(0, 200)}`);
      const body = JSON.parse(text) as { results?: ChangeRow[]; last_seq?: string | number };
      if (gen !== this.generation) return;
      let attachmentsChanged = false;
      for (const row of body.results ?? []) attachmentsChanged = (await this.apply(row)) || attachmentsChanged;
      if (body.last_seq !== undefined) this.since = body.last_seq;
      if (attachmentsChanged) this.publish();
      const fresh = this.names.filter((n) => !this.answered.has(n));
      for (const n of fresh) this.answered.add(n);
      if (fresh.length) this.o.onAnswered?.();
    } finally {
      clearTimeout(guard);
      if (this.abort === abort) this.abort = null;
    }
  }

  /** One catalog change into the local copy; true when the attachment of a followed tar template changed. */
  private async apply(row: ChangeRow): Promise<boolean> {
    if (typeof row.id !== 'string' || !row.id.startsWith('template:')) return false;
    const name = row.id.slice('template:'.length);
    if (!this.names.includes(name)) return false;
    const local = (await this.o.catalog.get(row.id).catch(() => null)) as (TemplateDoc & { _rev: string }) | null;
    if (row.deleted || !row.doc || row.doc._deleted) {
      this.metas.delete(name);
      if (local) await this.o.catalog.remove(local as PouchDB.Core.RemoveDocument).catch((err) => this.o.log(`templates: ${row.id} not removed locally: ${(err as Error).message}`));
      return true;
    }
    const { _rev: _r, _attachments, _conflicts: _c, _revisions: _v, ...clean } = row.doc as Record<string, unknown> & { _attachments?: Record<string, { length?: unknown; digest?: unknown }> };
    // The server checked it; we check again (a stolen or buggy server must not feed us a bad shape).
    const errors = docErrors(clean);
    if (errors.length || clean.name !== name) {
      this.o.log(`templates: ${row.id} from the catalog is not a valid template, ignored: ${errors.map((e) => `${e.path} ${e.message}`).join('; ') || 'name differs from id'}`);
      return false;
    }
    const t = clean as unknown as TemplateDoc;
    const att = _attachments?.['rootfs.tar'];
    const before = JSON.stringify(this.metas.get(name) ?? null);
    if (t.source === 'tar' && t.sha256 && att && Number.isSafeInteger(att.length) && (att.length as number) >= 0 && typeof att.digest === 'string') {
      this.metas.set(name, { name, sha256: t.sha256, length: att.length as number, digest: att.digest });
    } else this.metas.delete(name);
    const same = local && canonical(local) === canonical(t);
    if (!same) {
      await this.o.catalog.put({ ...t, ...(local ? { _rev: local._rev } : {}) } as PouchDB.Core.PutDocument<object>);
      this.received++;
    }
    return before !== JSON.stringify(this.metas.get(name) ?? null);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    this.abort?.abort();
    this.wake?.();
    await this.loop;
  }
}

/** A template's content for comparison: sorted top-level keys, without the (local) revision. */
function canonical(doc: object): string {
  const { _rev: _r, ...rest } = doc as Record<string, unknown>;
  return JSON.stringify(Object.keys(rest).sort().map((k) => [k, rest[k]]));
}
