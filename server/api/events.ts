// GET /api/events: Server-Sent Events of fleet changes. Each client gets an rxjs stream filtered to the
// databases it may read; ids are the index's event numbers, so `Last-Event-ID` resumes from a bounded
// in-memory log. Backpressure: a client whose socket stays full past `maxQueue` events is disconnected
// (it reconnects with Last-Event-ID and loses nothing still in the log) instead of growing our memory.
import type { Request, Response } from 'express';
import { EMPTY, concat, concatMap, filter, from, mergeMap, of } from 'rxjs';
import type { FleetEvent, FleetIndex } from '../fleet/fleet-index.ts';
import type { Access } from './access.ts';
import type { Caller } from './caller.ts';

export class EventLog {
  private readonly log: FleetEvent[] = [];

  constructor(index: FleetIndex, private readonly capacity = 10_000) {
    index.events$.subscribe((e) => {
      this.log.push(e);
      if (this.log.length > this.capacity) this.log.splice(0, this.log.length - this.capacity);
    });
  }

  /** Events after `id`, or null when `id` is older than what the log still holds. */
  since(id: number, latest: number): FleetEvent[] | null {
    if (id >= latest) return id === latest ? [] : null;
    const first = this.log[0]?.id ?? latest + 1;
    if (id < first - 1) return null;
    return this.log.filter((e) => e.id > id);
  }
}

export interface EventsOptions { maxQueue?: number; pingMs?: number; stats?: EventStats }

/** Counters for /metrics: connected SSE clients and clients dropped for not reading. */
export class EventStats {
  clients = 0;
  dropped = 0;
}

function frame(e: FleetEvent): string {
  const data = { id: e.id, type: e.type, node: e.node, name: e.name, deleted: e.deleted, rev: e.rev, doc: e.doc ?? null };
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export async function serveEvents(req: Request, res: Response, caller: Caller, index: FleetIndex, log: EventLog, access: Access, opts: EventsOptions = {}): Promise<void> {
  const maxQueue = opts.maxQueue ?? 1000;
  const lastHeader = req.headers['last-event-id'] ?? (typeof req.query.since === 'string' ? req.query.since : undefined);
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.write(`retry: 2000\n: anybios events for ${caller.name}\n\n`);
  const queue: string[] = [];
  let waitingDrain = false;
  let closed = false;
  const pump = () => {
    while (queue.length && !waitingDrain && !closed) {
      if (!res.write(queue.shift()!)) {
        waitingDrain = true;
        res.once('drain', () => { waitingDrain = false; pump(); });
      }
    }
  };
  const push = (text: string) => {
    if (closed) return;
    queue.push(text);
    if (queue.length > maxQueue) {
      closed = true;
      if (opts.stats) opts.stats.dropped++;
      res.destroy(); // slow consumer: drop it; it resumes with Last-Event-ID
      return;
    }
    pump();
  };
  const readable = new Map<string, boolean>();
  const canRead = async (db: string) => {
    let ok = readable.get(db);
    if (ok === undefined) {
      ok = await access.canRead(caller, db);
      readable.set(db, ok);
    }
    return ok;
  };
  // Replay first (if asked), then live; concatMap keeps the order while awaiting access checks.
  const latest = index.lastEventId;
  let replay: FleetEvent[] = [];
  if (lastHeader !== undefined) {
    const id = Number(lastHeader);
    const missed = Number.isSafeInteger(id) ? log.since(id, latest) : null;
    if (missed === null) push(`event: reset\ndata: ${JSON.stringify({ reason: 'Last-Event-ID is unknown or too old; reload the lists', lastEventId: latest })}\n\n`);
    else replay = missed;
  }
  // Replay then live as one ordered stream; concatMap keeps the order while access checks await.
  // from(replay) completes synchronously, so the subscription to the live Subject leaves no gap.
  const sub = concat(from(replay), index.events$.pipe(filter((e) => e.id > latest)))
    .pipe(concatMap((e) => from(canRead(e.db)).pipe(mergeMap((ok) => (ok ? of(e) : EMPTY)))))
    .subscribe({ next: (e) => push(frame(e)) });
  const ping = setInterval(() => push(': ping\n\n'), opts.pingMs ?? 15_000);
  if (opts.stats) opts.stats.clients++;
  await new Promise<void>((resolve) => res.on('close', () => resolve()));
  if (opts.stats) opts.stats.clients--;
  closed = true;
  clearInterval(ping);
  sub.unsubscribe();
}
