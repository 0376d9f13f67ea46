// Every resource limit of the server in one place: defaults, and how each is set (server options, the
// `--limit name=value` flag, or an ANYBIOS_LIMIT_<NAME> environment variable). docs/couchdb.md
// ("Limits") lists them with what a caller gets when one is hit; keep the two in step.

export interface Limits {
  /** Largest request body on the CouchDB API (/db) for an authenticated caller (CouchDB: max_http_request_size). */
  maxBody: number;
  /** Largest JSON body on the REST API (/api). */
  apiMaxBody: number;
  /** Largest body an unauthenticated caller may send (a login); larger ones are refused unread. */
  anonymousMaxBody: number;
  /** Bytes of request bodies held in memory at once, across all requests. */
  bodyBudget: number;
  /** Bytes of request bodies held in memory at once by one user (so one credential cannot take the whole budget). */
  bodyBudgetPerUser: number;
  /** Body bytes a second one user (not a server admin) may send once past `bodyBurstPerUser`; reading pauses beyond it. */
  bodyRatePerUser: number;
  /** Body bytes one user may send at once before the rate applies. */
  bodyBurstPerUser: number;
  /** Time to receive a request's headers (node's server.headersTimeout). */
  headersTimeoutMs: number;
  /** Time to receive a whole request, headers and body (node's server.requestTimeout); responses may stream longer. */
  requestTimeoutMs: number;
  /** Longest silence in the middle of a request body. */
  bodyIdleTimeoutMs: number;
  /** How long an idle keep-alive connection is kept; above the clients' own idle timeouts (see docs). */
  keepAliveTimeoutMs: number;
  /**
   * Delay before refusing a body that is too large by its declared length, for callers without
   * credentials and rated users: a client that reconnects as soon as it is refused is slowed to this pace.
   */
  refusalDelayMs: number;
  /** Silence after which a continuous replication's connections are taken for dead and the run restarted. */
  replicationStallMs: number;
  /** Open connections that have not yet made an authenticated request; beyond it the oldest is closed. */
  maxAnonymousConnections: number;
  /** Requests without credentials in progress at once; beyond it 503. */
  maxAnonymousRequests: number;
  /** All open connections (node's server.maxConnections); beyond it new ones are closed at once. */
  maxConnections: number;
  /** Largest document, attachments not counted (CouchDB: max_document_size). */
  maxDocumentSize: number;
  /** Largest request body to a node database (anybios-node-*): its documents are small. */
  nodeMaxBody: number;
  /** Largest attachment on a document of a node database (anybios-node-*). */
  nodeMaxAttachment: number;
  /** Size on disk of one node database beyond which writes (other than deletions) are refused. */
  nodeDbQuota: number;
  /** Memory the kept entries of Mango's JSON indexes may take together (one index: a quarter of it). */
  mangoIndexBytes: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxBody: 64 * MiB,
  apiMaxBody: 1 * MiB,
  anonymousMaxBody: 8 * KiB,
  bodyBudget: 256 * MiB,
  bodyBudgetPerUser: 96 * MiB,
  bodyRatePerUser: 8 * MiB,
  bodyBurstPerUser: 32 * MiB,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 300_000,
  bodyIdleTimeoutMs: 30_000,
  keepAliveTimeoutMs: 65_000,
  refusalDelayMs: 2_000,
  replicationStallMs: 90_000,
  maxAnonymousConnections: 512,
  maxAnonymousRequests: 128,
  maxConnections: 10_000,
  maxDocumentSize: 8_000_000,
  nodeMaxBody: 8 * MiB,
  nodeMaxAttachment: 1 * MiB,
  nodeDbQuota: 1 * GiB,
  mangoIndexBytes: 64 * MiB,
});

export const LIMIT_NAMES = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[];

const isDuration = (name: string) => name.endsWith('Ms');

/** `64MiB`, `8000000`, `1.5GiB`, `10KB` for sizes; `30s`, `500ms`, `2m`, `30000` for durations (ms). */
export function parseLimitValue(name: keyof Limits, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) throw new Error(`limit ${name}: "${text}" is not a number`);
  const n = Number(m[1]);
  const unit = m[2].toLowerCase();
  const units: Record<string, number> = isDuration(name)
    ? { '': 1, ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 }
    : { '': 1, b: 1, k: 1000, kb: 1000, kib: KiB, m: 1e6, mb: 1e6, mib: MiB, g: 1e9, gb: 1e9, gib: GiB };
  if (!(unit in units)) throw new Error(`limit ${name}: unknown unit "${m[2]}"`);
  const v = Math.round(n * units[unit]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`limit ${name}: "${text}" is out of range`);
  return v;
}

const envName = (name: string) => 'ANYBIOS_LIMIT_' + name.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
export const limitEnvName = envName;

/** Limits from the environment (ANYBIOS_LIMIT_MAX_BODY=32MiB …) and `name=value` flags, flags winning. */
export function limitsFrom(env: NodeJS.ProcessEnv, flags: string[] = []): Partial<Limits> {
  const out: Partial<Limits> = {};
  for (const name of LIMIT_NAMES) {
    const v = env[envName(name)];
    if (v !== undefined && v !== '') out[name] = parseLimitValue(name, v);
  }
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const name = flag.slice(0, eq) as keyof Limits;
    if (eq < 0 || !LIMIT_NAMES.includes(name)) throw new Error(`--limit ${flag}: expected name=value with name one of ${LIMIT_NAMES.join(', ')}`);
    out[name] = parseLimitValue(name, flag.slice(eq + 1));
  }
  return out;
}

export function resolveLimits(partial: Partial<Limits> = {}): Limits {
  const l: Limits = { ...DEFAULT_LIMITS };
  for (const name of LIMIT_NAMES) if (partial[name] !== undefined) l[name] = partial[name]!;
  // A zero timeout would mean "never" to node; keep every timeout real.
  for (const name of LIMIT_NAMES) if (isDuration(name) && l[name] <= 0) throw new Error(`limit ${name} must be above 0`);
  return l;
}
