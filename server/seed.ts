// First-run demo content: the `host` template in the catalog and a demo node for this machine with an
// `os` system `system0` and an `app` system `hello`. Runs once: an existing node database is left alone.
import { hostname } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerScope } from 'nano';
import { CATALOG_DB, nodeDbName } from '../ddocs/build.ts';
import type { SystemDoc, TemplateDoc } from '../ddocs/schemas/index.ts';
import { addNode, type NodeCredentials } from './nodes.ts';

export function localNodeId(name = hostname()): string {
  const id = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
  return id || 'local';
}

export const HOST_TEMPLATE: TemplateDoc = {
  _id: 'template:host', type: 'template', name: 'host', source: 'host',
  description: "This machine's own root filesystem, read-only, as the lower layer",
};

export function demoSystems(): SystemDoc[] {
  return [
    {
      _id: 'system:system0', type: 'system', name: 'system0', kind: 'os', template: 'host', state: 'running',
      description: 'A whole system booting its own init (here a tiny shell init on the host template)',
      init: ['/bin/sh', '-c', 'echo "system0: init started as pid $$"; trap "exit 0" TERM; while :; do sleep 1; done'],
      hostname: 'system0', network: 'none', restart: 'always',
    },
    {
      _id: 'system:hello', type: 'system', name: 'hello', kind: 'app', template: 'host', state: 'running',
      description: 'One app sharing the host template; only its own files live in its layer',
      command: ['/bin/sh', '-c', 'trap "exit 0" TERM; while :; do echo "hello from $(hostname)"; date > /hello.txt; sleep 30 & wait; done'],
      hostname: 'hello', network: 'none', restart: 'always',
    },
  ];
}

export interface SeedResult { nodeId: string; credentials?: NodeCredentials; seeded: boolean }

/** Seeds once; the new node's credentials go to <data>/nodes/<id>.json (0600) for the local agent. */
export async function seedDemo(admin: ServerScope, dataDir: string, nodeId = localNodeId()): Promise<SeedResult> {
  const catalog = admin.use(CATALOG_DB);
  try {
    await catalog.insert(HOST_TEMPLATE as never);
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 409) throw err;
  }
  if ((await admin.db.list()).includes(nodeDbName(nodeId))) return { nodeId, seeded: false };
  const credentials = await addNode(admin, nodeId);
  await admin.use(nodeDbName(nodeId)).bulk({ docs: demoSystems() as never[] });
  const dir = join(dataDir, 'nodes');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, `${nodeId}.json`), JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  return { nodeId, credentials, seeded: true };
}
