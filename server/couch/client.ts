// nano on a CouchDB API root. `parseUrl: false` keeps a path such as /db as the server root
// (nano would otherwise take the last path segment for a database name).
import nano, { type Configuration, type ServerScope } from 'nano';

/** `dispatcher`: a fetch dispatcher (nano's `agentOptions`), e.g. one that verifies a pinned certificate. */
export function couchClient(url: string, user?: string, password?: string, dispatcher?: object): ServerScope {
  const u = new URL(url);
  if (user !== undefined) u.username = encodeURIComponent(user); // the setter leaves '%' as is; nano decodes userinfo
  if (password !== undefined) u.password = encodeURIComponent(password);
  return nano({ url: u.toString().replace(/\/$/, ''), parseUrl: false, ...(dispatcher ? { agentOptions: dispatcher } : {}) } as Configuration);
}
