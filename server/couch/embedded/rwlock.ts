// A small readers-writer lock for promises: many `shared` holders at once, or one `exclusive`.
// Writers are preferred: once a writer waits, new readers queue behind it, so a steady stream of
// _changes reads cannot starve writes (and vice versa, readers that queued run before later writers).
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: { exclusive: boolean; start: () => void }[] = [];

  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(false, fn);
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(true, fn);
  }

  private async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    if (this.queue.length || this.writer || (exclusive && this.readers)) {
      await new Promise<void>((start) => this.queue.push({ exclusive, start }));
    } else if (exclusive) this.writer = true;
    else this.readers++;
    try {
      return await fn();
    } finally {
      if (exclusive) this.writer = false;
      else this.readers--;
      this.next();
    }
  }

  /** Starts the queue's head, and every reader right behind it when it is a reader. */
  private next(): void {
    while (this.queue.length && !this.writer) {
      const head = this.queue[0];
      if (head.exclusive) {
        if (this.readers) return;
        this.writer = true;
      } else this.readers++;
      this.queue.shift();
      head.start();
    }
  }
}
