// Checkpoints: where the next export of the same direction goes on from. The token is opaque to
// people and carries CouchDB's sequence values as they came (never parsed or compared here: they are
// only handed back to `_changes?since=`), plus, for server bundles, which templates (and which of their
// blobs) the node was sent already, so a template is not carried again until it changes.
import { BundleError } from './errors.ts';
import type { Origin } from './format.ts';

export interface Checkpoint {
  v: 1;
  node: string;
  origin: Origin;
  /** update sequence of the node database (opaque). */
  n: unknown;
  /** update sequence of the catalog (opaque; server bundles). */
  c?: unknown;
  /** server bundles: each template the node was sent, with the sha256 of its leaves' attachments then. */
  t?: Record<string, string[]>;
}

const PREFIX = 'cp1.';

export function encodeCheckpoint(c: Checkpoint): string {
  return PREFIX + Buffer.from(JSON.stringify(c)).toString('base64url');
}

/** Decodes a token given by a person: it must be a checkpoint of `node` for bundles of `origin`. */
export function decodeCheckpoint(token: string, node: string, origin: Origin): Checkpoint {
  const bad = (why: string) => new BundleError('BUNDLE_CHECKPOINT_INVALID', `--since: ${why}`);
  if (typeof token !== 'string' || !token.startsWith(PREFIX) || token.length > 65536) throw bad(`not a checkpoint (it begins with ${PREFIX}; take it from the previous export's output)`);
  let c: Partial<Checkpoint>;
  try {
    c = JSON.parse(Buffer.from(token.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw bad('the checkpoint is damaged (not base64url JSON)');
  }
  if (!c || typeof c !== 'object' || c.v !== 1 || c.n === undefined) throw bad('the checkpoint is damaged (fields missing)');
  if (c.node !== node) throw bad(`this checkpoint belongs to node ${String(c.node)}, not ${node}`);
  if (c.origin !== origin) throw bad(`this checkpoint is of ${c.origin === 'server' ? 'server' : 'node'} bundles, not of ${origin} bundles`);
  const t: Record<string, string[]> = {};
  if (c.t && typeof c.t === 'object' && !Array.isArray(c.t)) {
    for (const [name, shas] of Object.entries(c.t).slice(0, 4096)) {
      if (Array.isArray(shas)) t[name] = shas.filter((x): x is string => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)).slice(0, 64);
    }
  }
  return { v: 1, node, origin, n: c.n, c: c.c, t };
}
