// A per-user token bucket on request body bytes: a credential (a node's, say, stolen) can make the
// server read, parse and check at most `rate` bytes of bodies a second after a burst of `burst`. The
// body is not refused: its reading pauses (TCP back-pressure) until the bucket refills, so honest
// clients that send a burst now and then never notice, and one flooding client only slows itself.
export class BodyRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly rate: number, readonly burst: number) {}

  /** Takes `n` bytes for `user`; returns how long (ms) reading must pause before going on. */
  take(user: string, n: number, now = Date.now()): number {
    let b = this.buckets.get(user);
    if (!b) {
      if (this.buckets.size > 10_000) this.prune(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(user, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.rate);
    b.at = now;
    b.tokens -= n;
    return b.tokens >= 0 ? 0 : Math.ceil((-b.tokens / this.rate) * 1000);
  }

  /** Forgets users whose bucket has refilled: they are owed nothing. */
  private prune(now: number): void {
    for (const [user, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.burst) this.buckets.delete(user);
  }
}
