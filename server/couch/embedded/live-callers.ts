// Requests in progress per user, so a credential change can end them at once: a revoked node's open
// continuous `_changes` feed (its live replication) or long poll would otherwise stream on for hours,
// since a request is authenticated once, when it starts. Session cookies need nothing here: they are
// signed with the user's salt (auth.ts), which every password change replaces.
import type { IncomingMessage, ServerResponse } from 'node:http';

export class LiveCallers {
  private readonly byUser = new Map<string, Set<IncomingMessage>>();

  /** Remembers `req` as `name`'s until its response is done. */
  track(name: string, req: IncomingMessage, res: ServerResponse): void {
    let set = this.byUser.get(name);
    if (!set) this.byUser.set(name, (set = new Set()));
    set.add(req);
    res.once('close', () => {
      set!.delete(req);
      if (!set!.size && this.byUser.get(name) === set) this.byUser.delete(name);
    });
  }

  /** Ends every request of `name` in progress but `except` (their connections are closed); returns how many. */
  cut(name: string, except?: IncomingMessage): number {
    const set = this.byUser.get(name);
    if (!set) return 0;
    let n = 0;
    for (const req of [...set]) {
      if (req === except) continue;
      set.delete(req);
      req.socket.destroy();
      n++;
    }
    return n;
  }

  count(name: string): number {
    return this.byUser.get(name)?.size ?? 0;
  }
}
