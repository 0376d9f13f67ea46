// The baseline of bench/agent: a bare PouchDB live sync, as small as a node agent could be — the full
// `pouchdb` package as installed, a LevelDB copy of one node database synced both ways (the agent's
// options: retry, 10 s heartbeat, batches of 200), and an answer to each system document: a status
// document saying `running` at its revision (so edit → "running" here is two replication hops, no
// runtime). Plain JavaScript on purpose: it is measured as a process of its own, and running it through
// tsx would add the TypeScript loader to the baseline. Stops when its stdin closes.
// Usage: BARE_SYNC_PASSWORD=… node bench/bare-sync.mjs DIR DB_URL USER   (not in argv: ps shows argv to all)
import PouchDB from 'pouchdb';

const [dir, url, username] = process.argv.slice(2);
const password = process.env.BARE_SYNC_PASSWORD;
const local = new PouchDB(dir);
const remote = new PouchDB(url, { auth: { username, password }, skip_setup: true });
const sync = local.sync(remote, { live: true, retry: true, heartbeat: 10_000, batch_size: 200 });
sync.on('error', (err) => console.error(`bare-sync: ${err?.message ?? err}`));
const answers = local.changes({ live: true, since: 'now', include_docs: true }).on('change', (c) => {
  const d = c.doc;
  if (d.type !== 'system' || d._deleted) return;
  // A conflict means a newer edit is being answered meanwhile: ignore it.
  void local.get(`status:${d.name}`).catch(() => null)
    .then((cur) => local.put({ _id: `status:${d.name}`, ...(cur ? { _rev: cur._rev } : {}), type: 'status', name: d.name, phase: 'running', observedRev: d._rev, updated: new Date().toISOString() }))
    .catch(() => {});
});
const stop = () => {
  answers.cancel();
  sync.cancel();
  void local.close().finally(() => process.exit(0));
};
process.stdin.on('end', stop).resume();
process.on('SIGTERM', stop);
console.log('bare-sync ready');
