// Read rights for answers served from the fleet index, decided exactly as CouchDB decides them:
// server admins read everything; otherwise the database's `_security` admins or members (a database
// with no members is admin-only, CouchDB 3's default). `_security` objects are cached briefly; an entry
// a little past its time is still used while one refresh runs behind it, so a fleet listing never waits
// on a thousand `_security` reads at once (bench/fleet: p99 1.3 s at 1,000 nodes before).
import type { ServerScope } from 'nano';
import { eachLimit } from '../each-limit.ts';

interface Sec { admins?: { names?: string[]; roles?: string[] }; members?: { names?: string[]; roles?: string[] } }

const READ_CONCURRENCY = 16;

export class Access {
  private readonly cache = new Map<string, { sec: Sec; until: number }>();
  private readonly refreshing = new Map<string, Promise<Sec>>();

  /** `ttlMs`: fresh for this long; then served stale (refreshing behind) for as long again. */
  constructor(private readonly admin: ServerScope, private readonly ttlMs = 10_000) {}

  private fetch(db: string): Promise<Sec> {
    let p = this.refreshing.get(db);
    if (p) return p;
    p = (async () => {
      let sec: Sec = {};
      try {
        sec = (await this.admin.request({ db, path: '_security' })) as Sec;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      }
      this.cache.set(db, { sec, until: Date.now() + this.ttlMs });
      return sec;
    })().finally(() => this.refreshing.delete(db));
    this.refreshing.set(db, p);
    return p;
  }

  private async security(db: string): Promise<Sec> {
    const hit = this.cache.get(db);
    const now = Date.now();
    if (hit && hit.until > now) return hit.sec;
    if (hit && hit.until + this.ttlMs > now) {
      this.fetch(db).catch(() => this.cache.delete(db)); // unreadable now: the next call waits for a fresh answer
      return hit.sec;
    }
    return this.fetch(db);
  }

  async canRead(user: { name: string; roles: string[] }, db: string): Promise<boolean> {
    if (user.roles.includes('_admin')) return true;
    const sec = await this.security(db);
    const match = (p?: { names?: string[]; roles?: string[] }) => !!p && ((p.names ?? []).includes(user.name) || user.roles.some((r) => (p.roles ?? []).includes(r)));
    return match(sec.admins) || match(sec.members);
  }

  /** A few `_security` reads at a time: a thousand at once made an operator's first listing fail against Apache CouchDB (bench/fleet). */
  async readableOf(user: { name: string; roles: string[] }, dbs: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    await eachLimit(dbs, READ_CONCURRENCY, async (db) => { if (await this.canRead(user, db)) out.add(db); });
    return out;
  }
}
