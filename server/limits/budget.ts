// The memory budget for request bodies: every byte of a body the server holds (from the moment it is
// read until the response is done) is counted, in total and per user, so many large uploads at once
// are refused instead of growing the heap without bound. A body that can never fit is 413; one that
// does not fit now is 503 with Retry-After (it may fit once other uploads finish).
import { CouchError } from '../couch/errors.ts';

export const RETRY_AFTER_SECONDS = 5;

export class BodyBudget {
  private used = 0;
  private readonly perUser = new Map<string, number>();
  /** Refusals since start, for /metrics and the bench. */
  refused = 0;

  constructor(readonly total: number, readonly userTotal: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Checks a declared body length before anything is read. */
  admit(user: string, length: number): void {
    const cap = Math.min(this.total, this.userTotal);
    if (length > cap) {
      this.refused++;
      throw new CouchError(413, 'too_large', `the request body (${length} bytes) is larger than the server accepts from one user at once (${cap} bytes)`);
    }
    this.check(user, length);
  }

  /** Takes `n` more bytes for `user`; throws 503 when the total or the user's share would be exceeded. */
  take(user: string, n: number): void {
    this.check(user, n);
    this.used += n;
    this.perUser.set(user, (this.perUser.get(user) ?? 0) + n);
  }

  release(user: string, n: number): void {
    if (n <= 0) return;
    this.used -= n;
    const left = (this.perUser.get(user) ?? 0) - n;
    if (left > 0) this.perUser.set(user, left);
    else this.perUser.delete(user);
  }

  private check(user: string, n: number): void {
    if (this.used + n > this.total) {
      this.refused++;
      throw busy(`the server is holding ${this.used} bytes of request bodies (budget ${this.total}); retry later`);
    }
    if ((this.perUser.get(user) ?? 0) + n > this.userTotal) {
      this.refused++;
      throw busy(`your requests in progress hold ${this.perUser.get(user) ?? 0} bytes of bodies (budget per user ${this.userTotal}); retry later`);
    }
  }
}

/** 503 that asks the client to come back (the gate adds Retry-After to every 503 it knows of). */
export const busy = (reason: string) => new CouchError(503, 'service_unavailable', reason);
