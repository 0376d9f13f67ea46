// How many jobs may be catching up at once (CouchDB's scheduler bounds its starts the same way, with
// `max_churn`): a link of 500 databases, or a restart with many documents, starts them in waves instead
// of 1,000 replications fighting for the same CPUs. A job holds a place from its start until it first
// caught up (or ended), at most `maxHoldMs`: a job that hangs or catches up for long cannot keep the
// others waiting; a caught-up continuous job only waits on its long poll and holds none.
export class Gate {
  private active = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly capacity: number, private readonly maxHoldMs = 60_000) {}

  /** Resolves with a release function (idempotent) once a place is free. */
  async enter(): Promise<() => void> {
    if (this.active >= this.capacity) await new Promise<void>((resolve) => this.queue.push(resolve));
    this.active++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      this.active--;
      this.queue.shift()?.();
    };
    const timer = setTimeout(release, this.maxHoldMs);
    timer.unref();
    return release;
  }
}
