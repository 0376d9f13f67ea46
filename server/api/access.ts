// Read rights for answers served from the fleet index, decided exactly as CouchDB decides them:
// server admins read everything; otherwise the database's `_security` admins or members (a database
// with no members is admin-only, CouchDB 3's default). `_security` objects are cached briefly.
import type { ServerScope } from 'nano';

interface Sec { admins?: { names?: string[]; roles?: string[] }; members?: { names?: string[]; roles?: string[] } }

export class Access {
  private readonly cache = new Map<string, { sec: Sec; until: number }>();

  constructor(private readonly admin: ServerScope, private readonly ttlMs = 10_000) {}

  private async security(db: string): Promise<Sec> {
    const hit = this.cache.get(db);
    if (hit && hit.until > Date.now()) return hit.sec;
    let sec: Sec = {};
    try {
      sec = (await this.admin.request({ db, path: '_security' })) as Sec;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
    this.cache.set(db, { sec, until: Date.now() + this.ttlMs });
    return sec;
  }

  async canRead(user: { name: string; roles: string[] }, db: string): Promise<boolean> {
    if (user.roles.includes('_admin')) return true;
    const sec = await this.security(db);
    const match = (p?: { names?: string[]; roles?: string[] }) => !!p && ((p.names ?? []).includes(user.name) || user.roles.some((r) => (p.roles ?? []).includes(r)));
    return match(sec.admins) || match(sec.members);
  }

  async readableOf(user: { name: string; roles: string[] }, dbs: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    await Promise.all(dbs.map(async (db) => { if (await this.canRead(user, db)) out.add(db); }));
    return out;
  }
}
