// The reconcile loop. Events only say "look again": the local _changes feeds (node database and
// catalog copy) become one rxjs stream, bursts are coalesced, and each pass is level-triggered —
// it reads all desired systems, observes the machine, plans (pure), executes, writes statuses.
// A pass never overlaps another; a request during a pass runs one trailing pass. A periodic full
// pass catches drift (a system killed by hand) and back-off deadlines wake a pass of their own.
import { Subject, merge, interval, auditTime, type Subscription, fromEventPattern } from 'rxjs';
import type { StatusDoc, SystemDoc, TemplateDoc } from '../ddocs/schemas/types.ts';
import { docErrors } from '../ddocs/validate.ts';
import type { Runtime, Observed } from './runtime/index.ts';
import type { DesiredSystem, PlanInput, Step } from './model/types.ts';
import type { Gate } from './templates/gate.ts';
import { plan } from './plan/plan.ts';
import { runtimeHash } from './plan/runtime-hash.ts';
import { executors, type AgentMemory, type ExecContext } from './execute/executors.ts';
import { statusChanged, statusFor } from './status/status.ts';
import { serializeMemory, saveMemory } from './memory.ts';

export interface LoopOptions {
  db: PouchDB.Database;
  catalog: PouchDB.Database;
  runtime: Runtime;
  memory: AgentMemory;
  memoryPath: string;
  fullPassMs?: number;
  /** Back-off is reset once a system has run this long. */
  healthyAfterMs?: number;
  log: (msg: string) => void;
  /** Phase transitions kept in each status document (default 20, at most 100). */
  statusHistory?: number;
  /** Called with the template names this node's systems use (so sync can pull them). */
  onTemplatesUsed?: (names: string[]) => void;
  /** The template a system gets here and whether it may start (default: the catalog copy's document). */
  gate?: (name: string, doc: TemplateDoc | null) => Gate;
  /** A tar template's verified tarball on disk (default: the catalog copy's `rootfs.tar` attachment). */
  tarballOf?: (t: TemplateDoc) => string | undefined;
  /** After each pass, with the desired systems (the template collector runs here, between passes). */
  afterPass?: (desired: Map<string, DesiredSystem>) => Promise<void>;
}

export interface PassReport { steps: Step[]; statusWrites: number; skipped?: string }

/** ANYBIOS_TRACE=1: each pass's phases with their times on stderr (as the runtime's start, context.ts). */
const TRACE = !!process.env.ANYBIOS_TRACE;
/** How often a pass measures the systems' disk use (status `diskUsed`). */
const DISK_USAGE_EVERY_MS = 5 * 60_000;
const SYSTEM_RANGE = { startkey: 'system:', endkey: 'system:\ufff0' };
const STATUS_RANGE = { startkey: 'status:', endkey: 'status:\ufff0' };

export class Reconciler {
  readonly passes$ = new Subject<PassReport>();
  private readonly kick$ = new Subject<void>();
  private subs: Subscription[] = [];
  private running: Promise<void> | null = null;
  private again = false;
  private waitTimer?: NodeJS.Timeout;
  private savedMemory = '';
  private stopped = false;
  /** Each system's disk use when last measured (at `diskAt`). */
  private diskUsed = new Map<string, number | null>();
  private diskAt = -Infinity;
  /** Revisions of status documents this loop wrote: their changes need no pass of their own. */
  private readonly ownStatusRevs = new Set<string>();
  passCount = 0;

  constructor(private readonly o: LoopOptions) {}

  start(): void {
    // Changes that cannot alter a plan do not wake a pass: the statuses this loop wrote itself and the
    // heartbeat (node:<id>). Fewer passes while idle (battery), and none competing with the status's
    // replication to the server right after an edit.
    const relevant = (c: PouchDB.Core.ChangesResponseChange<object>) => {
      const rev = c.changes?.[0]?.rev;
      if (rev && this.ownStatusRevs.delete(rev)) return false;
      return !c.id.startsWith('node:');
    };
    const feed = (db: PouchDB.Database, filter = false) =>
      fromEventPattern<unknown>(
        (h) => db.changes({ live: true, since: 'now', return_docs: false }).on('change', (c) => { if (!filter || relevant(c)) h(c); }).on('error', (e) => this.o.log(`changes feed: ${String(e)}`)),
        (_h, feed: PouchDB.Core.Changes<object>) => feed.cancel(),
      );
    this.subs.push(
      // No debounce beyond one timer tick (auditTime(0)): request() already folds what comes during a
      // pass into one trailing pass, and an edit's restart should not wait (edit → running, issue 15).
      merge(feed(this.o.db, true), feed(this.o.catalog), this.kick$, interval(this.o.fullPassMs ?? 30_000))
        .pipe(auditTime(0))
        .subscribe(() => this.request()),
    );
    this.request();
  }

  /** Asks for a pass; while one runs, exactly one more follows it. */
  request(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          this.passes$.next(await this.pass());
        } catch (err) {
          this.o.log(`pass failed: ${(err as Error).stack ?? String(err)}`);
        }
      } while (this.again && !this.stopped);
      this.running = null;
    })();
  }

  /** Waits until no pass runs (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async pass(): Promise<PassReport> {
    const { db, catalog, runtime, memory } = this.o;
    const now = Date.now();
    const mark = TRACE ? (what: string) => process.stderr.write(`trace pass ${what} ${Date.now() - now}ms\n`) : () => {};
    mark(`begin at ${now}`);
    // 1. Desired state. Unreadable means do nothing at all (never act on a state we could not read).
    let systemRows: PouchDB.Core.AllDocsResponse<object>['rows'];
    let statusRows: PouchDB.Core.AllDocsResponse<object>['rows'];
    try {
      systemRows = (await db.allDocs({ ...SYSTEM_RANGE, include_docs: true, conflicts: true })).rows;
      statusRows = (await db.allDocs({ ...STATUS_RANGE, include_docs: true })).rows;
    } catch (err) {
      this.o.log(`desired state unreadable, not acting: ${(err as Error).message}`);
      return { steps: [], statusWrites: 0, skipped: 'unreadable' };
    }
    const templates = new Map<string, Gate>();
    const desired = new Map<string, DesiredSystem>();
    for (const row of systemRows) {
      const spec = row.doc as unknown as SystemDoc & { _rev: string; _conflicts?: string[] };
      if (!spec || typeof spec.name !== 'string') continue;
      if (!templates.has(spec.template)) {
        const doc = (await catalog.get(`template:${spec.template}`).catch(() => null)) as unknown as TemplateDoc | null;
        templates.set(spec.template, this.o.gate ? this.o.gate(spec.template, doc) : { template: doc });
      }
      const { _conflicts, ...clean } = spec;
      const gate = templates.get(spec.template)!;
      desired.set(spec.name, { spec: clean as SystemDoc & { _rev: string }, template: gate.template, specErrors: docErrors(clean), conflict: !!_conflicts?.length, ...(gate.blocked ? { blocked: gate.blocked } : {}) });
    }
    this.o.onTemplatesUsed?.([...templates.keys()].sort());
    mark('read');
    // 2. Observe the machine.
    // Disk use (a walk of every system's layer: under proot a whole copy of its template) is measured
    // every DISK_USAGE_EVERY_MS, not on each pass: it is informational, and an edit should not wait on it.
    const withDisk = now - this.diskAt >= DISK_USAGE_EVERY_MS;
    const observed = new Map<string, Observed>((await runtime.list({ diskUsage: withDisk })).map((x) => [x.name, x]));
    if (withDisk) {
      this.diskAt = now;
      this.diskUsed = new Map([...observed.values()].map((o) => [o.name, o.diskUsed]));
    }
    const statuses = new Map<string, StatusDoc>(statusRows.map((r) => [(r.doc as unknown as StatusDoc).name, r.doc as unknown as StatusDoc]));
    // 3. Tombstones: only a known deletion lets the planner remove anything.
    const tombstones = new Set<string>();
    for (const name of new Set([...observed.keys(), ...statuses.keys()])) {
      if (desired.has(name)) continue;
      try {
        await db.get(`system:${name}`);
      } catch (err) {
        if ((err as { reason?: string }).reason === 'deleted') tombstones.add(name);
      }
    }
    for (const [name, o] of observed) {
      const b = memory.backoff.get(name);
      if (b && o.phase === 'running' && o.startedAt && now - Date.parse(o.startedAt) > (this.o.healthyAfterMs ?? 60_000)) memory.backoff.delete(name);
    }
    // 4. Plan (pure) and execute.
    const input: PlanInput = { desired, observed, tombstones, statuses: new Set(statuses.keys()), applied: memory.applied, backoff: memory.backoff, terminal: memory.terminal, now };
    const steps = plan(input);
    mark('observe+plan');
    const ctx: ExecContext = {
      runtime,
      memory,
      log: this.o.log,
      now: () => Date.now(),
      tarballOf: async (t) => {
        if (this.o.tarballOf) return this.o.tarballOf(t);
        try {
          return (await catalog.getAttachment(t._id, 'rootfs.tar')) as Buffer;
        } catch {
          return undefined;
        }
      },
      deleteStatus: async (name) => {
        try {
          const doc = await db.get(`status:${name}`);
          await db.remove(doc);
        } catch (err) {
          if ((err as { status?: number }).status !== 404) throw err;
        }
      },
    };
    let waitUntil = Infinity;
    for (const step of steps) {
      if (step.action === 'wait') waitUntil = Math.min(waitUntil, step.until);
      await (executors[step.action] as (a: typeof step, c: ExecContext) => Promise<void>)(step, ctx);
    }
    mark('execute');
    // 5. Statuses, from a fresh observation of what the steps changed.
    const after = steps.some((s) => s.action !== 'wait' && s.action !== 'adopt') ? new Map((await runtime.list({ diskUsage: false })).map((x) => [x.name, x])) : observed;
    let statusWrites = 0;
    for (const [name, d] of desired) {
      const seen = after.get(name);
      const o = seen && seen.diskUsed === null ? { ...seen, diskUsed: this.diskUsed.get(name) ?? null } : seen;
      const hash = d.template ? runtimeHash(d.spec, d.template) : null;
      const b = memory.backoff.get(name);
      const current = statuses.get(name) ?? null;
      const next = statusFor({
        previous: current, historyLimit: this.o.statusHistory,
        name, desired: d, observed: o, applied: memory.applied.get(name), hash,
        lastError: memory.lastError.get(name), terminal: memory.terminal.get(name),
        waitingUntil: b && b.hash === hash && b.notBefore > Date.now() ? b.notBefore : undefined,
        logTail: '',
        now: Date.now(),
      });
      if (statusChanged(current, next, Date.now())) {
        // The log tail rides along with a write; it never causes one, so it is read only then.
        if (o) next.logTail = (await runtime.logTail(name, 2048).catch(() => '')).slice(-4096);
        // A system new since the last measure gets its disk use with its first status.
        if (o && !this.diskUsed.has(name)) {
          const du = (await runtime.observe(name, { diskUsage: true }).catch(() => null))?.diskUsed ?? null;
          this.diskUsed.set(name, du);
          next.diskUsed = du;
        }
        try {
          const r = await db.put({ ...next, ...(current?._rev ? { _rev: current._rev } : {}) } as PouchDB.Core.PutDocument<object>);
          if (this.ownStatusRevs.size > 1000) this.ownStatusRevs.clear(); // revisions whose change never came (closed feed)
          this.ownStatusRevs.add(r.rev);
          statusWrites++;
        } catch (err) {
          this.o.log(`status:${name} not written: ${(err as Error).message}`);
        }
      }
    }
    mark('statuses');
    await this.o.afterPass?.(desired).catch((err) => this.o.log(`after the pass: ${(err as Error).message}`));
    // 6. Remember, and wake up for the earliest back-off deadline.
    const serialized = serializeMemory(memory);
    if (serialized !== this.savedMemory) {
      saveMemory(this.o.memoryPath, memory);
      this.savedMemory = serialized;
    }
    clearTimeout(this.waitTimer);
    if (waitUntil !== Infinity && !this.stopped) {
      this.waitTimer = setTimeout(() => this.kick$.next(), Math.max(10, waitUntil - Date.now()));
      this.waitTimer.unref();
    }
    this.passCount++;
    mark('end');
    return { steps, statusWrites };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.waitTimer);
    for (const s of this.subs) s.unsubscribe();
    await this.idle();
    this.passes$.complete();
  }
}
