// An admin password may hold any character: '%', '@', ':', '/', spaces, non-ASCII (the server's own
// CouchDB client once put it into a URL unencoded, and a '%' stopped the server at start).
import test from 'ava';
import { couchClient } from '../../server/couch/client.ts';
import { removeDataDir, startServer } from '../helpers/server.ts';

test('a server whose admin password holds URL metacharacters starts, and that password works', async (t) => {
  if (process.env.COUCH_URL) return t.pass(); // the external CouchDB's admin is what it is
  const pw = 'p%41ss@w:rd/ä 100%';
  const s = await startServer({ env: { ANYBIOS_ADMIN_PASSWORD: pw } });
  t.teardown(async () => {
    await s.stop();
    removeDataDir(s.dataDir);
  });
  const dbs = await couchClient(s.couchUrl, 'admin', pw).db.list();
  t.true(dbs.includes('anybios'));
  await t.throwsAsync(couchClient(s.couchUrl, 'admin', 'pA1ss@w:rd/ä 100%').db.list());
});
