// The node agent: a local PouchDB copy of its own database replicated both ways, the templates it uses
// pulled from the catalog, a reconcile loop over the runtime, and a heartbeat on `node:<id>`.
// Offline it keeps reconciling from its copy; systems are never its children, so they outlive it.
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb';
import { CATALOG_DB, nodeDbName } from '../ddocs/build.ts';
import type { NodeDoc } from '../ddocs/schemas/types.ts';
import { createRuntime, type Runtime } from './runtime/index.ts';
import { createPeRuntime } from './pe/runtime.ts';
import { Reconciler } from './loop.ts';
import { loadMemory } from './memory.ts';
import { NodeSync } from './sync/node-sync.ts';
import { NodeTemplates } from './templates/index.ts';
import { trustServer } from './sync/tls.ts';
import { CredentialRotation } from './sync/rotation.ts';
import { startLocalApi, type LocalApi } from './local-api.ts';
import { docErrors } from '../ddocs/validate.ts';
import { learnKeyParams } from '../bundle/device.ts';
import { requestText } from './sync/request.ts';

export const AGENT_VERSION = '0.1.0';

const LEVELDB_CACHE_BYTES = 512 * 1024;
const LEVELDB_WRITE_BUFFER_BYTES = 1024 * 1024;

/** What `anybios node add` prints and the agent keeps in credentials.json. */
export interface AgentConfig {
  /** Server base URL(s), e.g. http://127.0.0.1:8080 (the CouchDB API is at /db); several = linked sites, in order of preference. */
  server: string | string[];
  node: string;
  user: string;
  password: string;
  /**
   * TLS trust for the servers (agent/sync/tls.ts, docs/security.md): the pinned SHA-256 fingerprint
   * (one for every server, or per server URL when linked sites each have their own) and/or a CA PEM.
   */
  fingerprint?: string | Record<string, string>;
  ca?: string;
  /** Allow credentials over plain http:// to a non-loopback server. */
  insecureHttp?: boolean;
  /** A rotated password being switched to, saved by a run that may have stopped mid-switch (sync/rotation.ts). */
  nextPassword?: string;
}

export interface AgentOptions extends AgentConfig {
  /** Saves the credentials when a rotation changes them (sync/rotation.ts); `next` while switching. */
  persistCredentials?: (c: { password: string; next?: string }) => void;
  /** How often the agent looks for a rotation offer (default: the watchdog period). */
  rotationCheckMs?: number;
  /** The node's data dir: systems/, volumes/ (runtime) and agent/ (local databases, memory). */
  dataDir: string;
  templateRoots?: string[];
  /**
   * How systems run here (default auto: crun containers, or proot where neither root nor a user namespace
   * works); pe: inside the anybios PE, the data disk's systems in the PE's shell runtime (agent/pe/).
   */
  strategy?: 'auto' | 'overlay' | 'copy' | 'proot' | 'pe';
  fullPassMs?: number;
  heartbeatMs?: number;
  watchdogMs?: number;
  /** Phase transitions kept in each status document's history (default 20, at most 100). */
  statusHistory?: number;
  /** Port of the loopback API for edits on the device (default: any free port). */
  localPort?: number;
  /** Whether systems may use the built-in `host` template (default: when running as root). */
  hostTemplate?: boolean;
  /** How long a template no system uses stays on disk (default 1 hour). */
  templateGraceMs?: number;
  /** Bytes a template pull must leave free on the data dir's file system (default 256 MiB). */
  diskReserveBytes?: number;
  log?: (msg: string) => void;
}

export interface Agent {
  db: PouchDB.Database;
  catalog: PouchDB.Database;
  runtime: Runtime;
  reconciler: Reconciler;
  sync: NodeSync;
  templates: NodeTemplates;
  local: LocalApi;
  stop(): Promise<void>;
}

export async function createAgent(o: AgentOptions): Promise<Agent> {
  const log = o.log ?? ((m: string) => console.log(`agent ${o.node}: ${m}`));
  const own = join(o.dataDir, 'agent');
  mkdirSync(join(own, 'db'), { recursive: true, mode: 0o700 });
  const Local = (PouchDB as unknown as { defaults(x: object): PouchDB.Static }).defaults({ prefix: join(own, 'db') + '/' });
  const dbName = nodeDbName(o.node);
  // LevelDB's defaults (8 MiB block cache, 4 MiB write buffer, per database) suit a server; a node's
  // databases are small and a device's memory too: reads fall through to the OS page cache instead.
  const level = { auto_compaction: true, cacheSize: LEVELDB_CACHE_BYTES, writeBufferSize: LEVELDB_WRITE_BUFFER_BYTES };
  const db = new Local(dbName, level);
  const catalog = new Local(CATALOG_DB, level);
  const runtime = o.strategy === 'pe'
    ? await createPeRuntime({ checkDoc: docErrors, dataDir: o.dataDir, log })
    : await createRuntime({ checkDoc: docErrors, dataDir: o.dataDir, templateRoots: o.templateRoots ?? [], strategy: o.strategy, log });
  const auth = { username: o.user, password: o.password };
  const bases = (Array.isArray(o.server) ? o.server : [o.server]).map((u) => u.replace(/\/+$/, ''));
  let base = bases[0];
  const pinOf = (b: string) => (typeof o.fingerprint === 'string' ? o.fingerprint : o.fingerprint?.[b] ?? o.fingerprint?.[`${b}/`]);
  for (const b of bases) trustServer(b, { fingerprint: pinOf(b), ca: o.ca, insecureHttp: o.insecureHttp }, log);
  const hostAllowed = o.hostTemplate ?? process.getuid?.() === 0;
  // Templates: the catalog documents in use followed live, their rootfs pulled resumably (see templates/).
  let reconciler: Reconciler | undefined;
  const templates = new NodeTemplates({
    dataDir: o.dataDir, catalog, catalogUrl: () => `${base}/db/${CATALOG_DB}`, auth, hostAllowed,
    graceMs: o.templateGraceMs, reserveBytes: o.diskReserveBytes, log,
    requestPass: () => reconciler?.request(),
  });
  // Tarballs a bundle imported while no agent ran (anybios import --data) are taken now.
  await templates.adoptLocal();
  let syncState = 'starting';
  const sync = new NodeSync({
    local: db, remoteUrls: bases.map((b) => `${b}/db/${dbName}`), auth, watchdogMs: o.watchdogMs, log,
    onState: (s) => {
      log(`sync ${s}`);
      // Back from offline: whatever waited for the server goes now, not after its back-off.
      if ((s === 'active' || s === 'idle') && syncState !== 'active' && syncState !== 'idle') templates.online();
      syncState = s;
    },
    onSwitch: (i) => { base = bases[i]; templates.online(); },
  });

  reconciler = new Reconciler({
    db, catalog, runtime, log,
    memory: loadMemory(join(own, 'agent-state.json')),
    memoryPath: join(own, 'agent-state.json'),
    fullPassMs: o.fullPassMs,
    onTemplatesUsed: (names) => templates.follower.follow(names),
    gate: templates.gate,
    tarballOf: templates.tarballOf,
    afterPass: templates.afterPass,
    statusHistory: o.statusHistory,
  });

  // Heartbeat: node:<id>, written by this agent only, at a modest interval.
  const startedAt = new Date().toISOString();
  const caps = await runtime.capabilities();
  const beat = async () => {
    const doc: NodeDoc = {
      _id: `node:${o.node}`, type: 'node', name: o.node, hostname: hostname(), heartbeat: new Date().toISOString(), startedAt,
      agentVersion: AGENT_VERSION,
      capabilities: { ...caps, sync: sync.state, server: base, hostTemplate: hostAllowed } as unknown as Record<string, unknown>,
      versions: { node: process.version, anybios: AGENT_VERSION },
    };
    try {
      const current = await db.get(doc._id).catch(() => null);
      await db.put({ ...doc, ...(current ? { _rev: current._rev } : {}) } as PouchDB.Core.PutDocument<object>);
    } catch (err) {
      log(`heartbeat not written: ${(err as Error).message}`);
    }
  };
  await beat();
  const heartbeat = setInterval(() => void beat(), o.heartbeatMs ?? 30_000);
  heartbeat.unref();

  // Credential rotation: offered in the node user's own _users document, picked up here.
  const rotation = new CredentialRotation({ base: () => base, auth, next: o.nextPassword, log, persist: (c) => o.persistCredentials?.(c) });
  void rotation.check();
  const rotationTimer = setInterval(() => void rotation.check(), o.rotationCheckMs ?? o.watchdogMs ?? 15_000);
  rotationTimer.unref();

  sync.start();
  reconciler.start();
  const bundleCtx = { node: o.node, password: o.password, db, catalog, statePath: join(own, 'bundle.json') };
  const local = await startLocalApi({
    db, node: o.node, sync, infoPath: join(own, 'local.json'), port: o.localPort,
    status: async () => ({ templates: await templates.status() }),
    bundle: { ctx: bundleCtx, spoolDir: own, afterImport: templates.adoptLocal },
  });
  // While a server answers, keep the key parameters of bundles (so a node taken offline can still export).
  const learnKey = () => void learnKeyParams(bundleCtx, base, o.user, (url, headers) => requestText(url, { headers, timeoutMs: 10_000 })).then((stored) => stored && log('bundle key parameters learnt from the server')).catch(() => {});
  learnKey();
  const keyTimer = setInterval(learnKey, 3_600_000);
  keyTimer.unref();
  log(`running: database ${dbName} synced with ${bases.join(', ')}, data in ${o.dataDir}`);

  return {
    db, catalog, runtime, reconciler, sync, templates, local,
    async stop() {
      await local.close();
      clearInterval(heartbeat);
      clearInterval(keyTimer);
      clearInterval(rotationTimer);
      await reconciler!.stop();
      await templates.stop();
      await sync.stop();
      await db.close().catch(() => {});
      await catalog.close().catch(() => {});
    },
  };
}
