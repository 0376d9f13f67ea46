// Quotas on what is stored, checked on the one write path (routes/writes.ts), replication included:
// - every database: a document's size without its attachments (CouchDB's max_document_size, 413
//   `document_too_large`);
// - node databases (anybios-node-*), which a node's credential can write: a request body limit, an
//   attachment size limit (413 `attachment_too_large`), and a quota on the database's size on disk.
//   Over the quota every write is refused with 507 `quota_exceeded` except deletions and `_local`
//   documents (replication checkpoints), so an operator can still make room and reads never stop.
import { NODE_DB_PREFIX } from '../../ddocs/build.ts';
import { CouchError } from '../couch/errors.ts';
import type { Limits } from './config.ts';

/** How long a measured database size is trusted; writes admitted meanwhile are added to it. */
const SIZE_TTL_MS = 1000;

export class NodeDbQuota {
  private readonly sizes = new Map<string, { bytes: number; at: number; pending: number }>();

  constructor(readonly limits: Pick<Limits, 'maxDocumentSize' | 'nodeMaxAttachment' | 'nodeDbQuota' | 'nodeMaxBody'>) {}

  isNodeDb(db: string): boolean {
    return db.startsWith(NODE_DB_PREFIX);
  }

  /**
   * The body limit of a request to `db` (path segments below it): node databases take small documents,
   * and an attachment upload no bigger than the attachment limit, refused before it is read.
   */
  bodyLimit(db: string, rest: string[], limit: number): number {
    if (!this.isNodeDb(db)) return limit;
    limit = Math.min(limit, this.limits.nodeMaxBody);
    const [a, b, c] = rest;
    const attachmentPath = a !== undefined && ((a === '_design' && c !== undefined && !c.startsWith('_')) || (!a.startsWith('_') && b !== undefined));
    return attachmentPath ? Math.min(limit, this.limits.nodeMaxAttachment) : limit;
  }

  /** Size limits of one document, before it is stored. */
  checkDoc(db: string, doc: Record<string, unknown>): void {
    const id = String(doc._id ?? '');
    const { _attachments: atts, ...rest } = doc;
    const size = Buffer.byteLength(JSON.stringify(rest));
    if (size > this.limits.maxDocumentSize) {
      throw new CouchError(413, 'document_too_large', `document ${id.slice(0, 200)} is ${size} bytes, more than the limit of ${this.limits.maxDocumentSize} (attachments not counted)`);
    }
    if (!this.isNodeDb(db) || !atts || typeof atts !== 'object') return;
    for (const [name, att] of Object.entries(atts as Record<string, { data?: unknown; stub?: boolean }>)) {
      if (!att || att.stub || typeof att.data !== 'string') continue;
      const bytes = base64Bytes(att.data);
      if (bytes > this.limits.nodeMaxAttachment) {
        throw new CouchError(413, 'attachment_too_large', `attachment ${name.slice(0, 100)} of ${id.slice(0, 200)} is ${bytes} bytes, more than the limit of ${this.limits.nodeMaxAttachment} for node databases`);
      }
    }
  }

  /**
   * The database quota: refuses a write of anything but deletions and `_local` documents once the
   * database is at its quota. `measure` gives the size on disk (cached for a second).
   */
  async checkWrite(db: string, docs: unknown[], measure: (db: string) => Promise<number>): Promise<void> {
    if (!this.isNodeDb(db)) return;
    const grows = docs.filter((d) => {
      const doc = d as { _id?: unknown; _deleted?: unknown } | null;
      return !(doc && typeof doc === 'object' && (doc._deleted === true || (typeof doc._id === 'string' && doc._id.startsWith('_local/'))));
    });
    if (!grows.length) return;
    const now = Date.now();
    let entry = this.sizes.get(db);
    if (!entry || now - entry.at > SIZE_TTL_MS) {
      entry = { bytes: await measure(db), at: now, pending: 0 };
      this.sizes.set(db, entry);
    }
    const used = entry.bytes + entry.pending;
    if (used >= this.limits.nodeDbQuota) {
      throw new CouchError(507, 'quota_exceeded', `database ${db} holds ${used} bytes, its quota is ${this.limits.nodeDbQuota}: only deletions are accepted until it is compacted below the quota`);
    }
    // Until the next measurement, count what this write adds (roughly its JSON) so a burst cannot run far past the quota.
    for (const d of grows) entry.pending += Buffer.byteLength(JSON.stringify(d) ?? '');
  }

  forget(db: string): void {
    this.sizes.delete(db);
  }
}

function base64Bytes(data: string): number {
  const pad = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return Math.floor((data.length * 3) / 4) - pad;
}
