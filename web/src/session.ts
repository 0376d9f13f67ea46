// Who is logged in (from CouchDB's _session), and navigation, shared by the views.
export interface Me { name: string; roles: string[]; admin: boolean; operator: boolean }
let me: Me | null = null;
export const currentUser = () => me;
export function setUser<T extends Me | null>(m: T): T {
  me = m;
  return m;
}

export function go(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/**
 * May the user change specs on `node` (or in the catalog, without one)? As the design documents decide
 * (ddocs/lib/rules.js): admins and operators everywhere, a node's own user in its own database. The page
 * hides what would be refused; CouchDB still has the last word on every write.
 */
export function canWrite(node?: string): boolean {
  if (!me) return false;
  if (me.operator) return true;
  return node !== undefined && me.name === `node-${node}`;
}

/** The catalog's members are the roles operator and node (server/setup.ts); admins read everything. */
export function canReadCatalog(): boolean {
  return !!me && (me.admin || me.roles.includes('operator') || me.roles.includes('node'));
}
