// Stands in for `fetch-cookie` in the CLI build (bin/anybios.mjs): PouchDB wraps its fetch in a cookie
// jar, but every request of ours carries Basic auth (agent/sync/remote.ts) and nothing logs in with a
// session cookie, so the jar would only ever hold cookies a server or proxy set on its own — which we
// do not want replayed. Leaving it out spares tough-cookie and its public-suffix list (~10 MiB).
'use strict';
module.exports = function fetchWithoutCookies(fetch) {
  return fetch;
};
