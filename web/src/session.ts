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
