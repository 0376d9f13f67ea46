// `<data>/sites.json`: the links of this server, read at start, written on every change (atomically,
// mode 0600: it holds each remote's admin credentials).
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LinkRecord {
  /** Stable id of the link (also names its replication checkpoints and `_replicator` documents). */
  id: string;
  /** The remote's CouchDB API root, without credentials, e.g. http://home:8080/db */
  url: string;
  user: string;
  password: string;
  createdAt: string;
  /** The remote certificate's pinned SHA-256 (sites/trust.ts); absent when a trusted CA signs it. */
  fingerprint?: string;
  /** Plain http:// to a non-loopback remote was allowed when linking. */
  insecureHttp?: boolean;
  /**
   * Databases seen on both sides at least once. A database in this list that one side no longer has
   * was deleted there: it is neither re-created nor deleted on the other side (see docs/architecture.md).
   */
  known: string[];
}

interface SitesFile { version: 1; links: LinkRecord[] }

export class SiteStore {
  readonly path: string;

  constructor(dataDir: string) {
    this.path = join(dataDir, 'sites.json');
  }

  load(): LinkRecord[] {
    if (!existsSync(this.path)) return [];
    chmodSync(this.path, 0o600);
    const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as Partial<SitesFile>;
    if (!Array.isArray(parsed.links)) throw new Error(`${this.path}: "links" must be an array`);
    return parsed.links.map((l) => ({ ...l, known: Array.isArray(l.known) ? l.known : [] }));
  }

  save(links: LinkRecord[]): void {
    const tmp = `${this.path}.${process.pid}.tmp`;
    const file: SitesFile = { version: 1, links };
    writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
  }
}
