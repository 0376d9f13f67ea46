// Brings a CouchDB (embedded or external) to the shape anybios needs, idempotently: `_users`, the
// catalog with its `_security`, and the design documents of the catalog and every node database,
// pushed only when their content hash differs (an unchanged start makes no new revision). A node
// database whose `_security` is empty (admin-only: e.g. after the embedded store's one-time `_security`
// migration, see server/couch/embedded/security.ts) gets its standard one again.
import type { ServerScope } from 'nano';
import { buildDesignDoc, CATALOG_DB, DDOC_ID, NODE_DB_PREFIX, type DbKind } from '../ddocs/build.ts';
import { nodeSecurity } from './nodes.ts';
import { eachLimit } from './each-limit.ts';

export const CATALOG_SECURITY = { admins: { names: [], roles: [] }, members: { names: [], roles: ['operator', 'node'] } };

export async function ensureDb(couch: ServerScope, name: string): Promise<boolean> {
  try {
    await couch.db.create(name);
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 412) return false;
    throw err;
  }
}

/** Pushes the ddoc of `kind` to `db` when its hash differs; returns whether it wrote. */
export async function pushDesignDoc(couch: ServerScope, db: string, kind: DbKind): Promise<boolean> {
  const ddoc = buildDesignDoc(kind);
  const use = couch.use(db);
  // Two servers starting on one CouchDB push the same ddoc at once: a 409 means another writer won; read
  // again (its copy is most likely ours already). Seen with two test servers on a shared CouchDB.
  for (let attempt = 0; ; attempt++) {
    let rev: string | undefined;
    try {
      const current = (await use.get(DDOC_ID)) as unknown as { _rev: string; anybios?: { hash?: string } };
      if (current.anybios?.hash === ddoc.anybios.hash) return false;
      rev = current._rev;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
    try {
      await use.insert({ ...ddoc, ...(rev ? { _rev: rev } : {}) } as never);
      return true;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 409 || attempt >= 4) throw err;
    }
  }
}

type Part = { names?: unknown[]; roles?: unknown[] };
const isEmpty = (p: Part | undefined) => !p || (!p.names?.length && !p.roles?.length);

/** `warnings`: what an external CouchDB's configuration keeps from working (the server logs them). */
export interface SetupReport { created: string[]; ddocsPushed: string[]; warnings: string[] }

export async function setupCouch(couch: ServerScope, opts: { external?: boolean } = {}): Promise<SetupReport> {
  const report: SetupReport = { created: [], ddocsPushed: [], warnings: [] };
  // Apache CouchDB serves _db_updates (which the fleet index follows) only once _global_changes exists;
  // a single-node setup does not create it. The embedded server has its own _db_updates.
  const system = opts.external ? ['_users', '_global_changes'] : ['_users'];
  for (const name of [...system, CATALOG_DB]) if (await ensureDb(couch, name)) report.created.push(name);
  await couch.request({ db: CATALOG_DB, path: '_security', method: 'PUT', body: CATALOG_SECURITY });
  if (opts.external) await admitUsersToOwnDocs(couch, report);
  if (await pushDesignDoc(couch, CATALOG_DB, 'catalog')) report.ddocsPushed.push(CATALOG_DB);
  // A few node databases at a time: one by one, a fleet of 1,000 took seconds before the server listened.
  const nodeDbs = (await couch.db.list()).filter((db) => db.startsWith(NODE_DB_PREFIX));
  await eachLimit(nodeDbs, SETUP_CONCURRENCY, (db) => setupNodeDb(couch, db, report).catch((err) => {
    // Removed since it was listed (`anybios node rm`, another server on the same CouchDB): nothing to set up.
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }));
  report.ddocsPushed.sort();
  return report;
}

const SETUP_CONCURRENCY = 8;

async function setupNodeDb(couch: ServerScope, db: string, report: SetupReport): Promise<void> {
  if (await pushDesignDoc(couch, db, 'node')) report.ddocsPushed.push(db);
  const sec = (await couch.request({ db, path: '_security' })) as { admins?: Part; members?: Part };
  if (isEmpty(sec.admins) && isEmpty(sec.members)) await couch.request({ db, path: '_security', method: 'PUT', body: nodeSecurity(db.slice(NODE_DB_PREFIX.length)) });
}

/** The roles whose users read and update their own `_users` document (node credential rotation, passwords). */
export const USERS_DB_MEMBER_ROLES = ['node', 'operator'];

/**
 * Apache CouchDB 3.x creates `_users` admin-only (`default_security = admin_only`): a node cannot read
 * its own user document, so `anybios node rotate` never reaches it. Members still see only their own
 * document there (CouchDB's `_users` rules), so the node and operator roles are added to CouchDB's
 * default; a `_security` an operator customised is left alone. CouchDB refuses the write unless
 * `[couchdb] users_db_security_editable = true`: then a warning says so (docs/production.md).
 */
async function admitUsersToOwnDocs(couch: ServerScope, report: SetupReport): Promise<void> {
  const sec = (await couch.request({ db: '_users', path: '_security' })) as { admins?: Part; members?: Part };
  const roles = (sec.members?.roles ?? []) as unknown[];
  if (isEmpty(sec.members) || USERS_DB_MEMBER_ROLES.every((r) => roles.includes(r))) return;
  const stock = !sec.members?.names?.length && roles.length === 1 && roles[0] === '_admin';
  const why = 'nodes cannot read their own _users document, so `anybios node rotate` will not reach them';
  if (!stock) {
    report.warnings.push(`_users/_security was customised and does not admit the roles ${USERS_DB_MEMBER_ROLES.join(', ')}: ${why}`);
    return;
  }
  try {
    await couch.request({ db: '_users', path: '_security', method: 'PUT', body: { ...sec, members: { names: [], roles: ['_admin', ...USERS_DB_MEMBER_ROLES] } } });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 403) throw err;
    report.warnings.push(`CouchDB refused to change _users/_security ([couchdb] users_db_security_editable = false): ${why}; set it to true and restart anybios`);
  }
}
