// What an attachment's `content_type` may be, and how attachments are served.
//
// A stored `content_type` becomes a response header when the attachment is fetched; one with CR/LF (or
// any character a header cannot carry) made that GET fail, and an agent's pull, which fetches each
// attachment that way, stopped at that document forever. So every write path checks it (writes.ts),
// and every read sanitises what is already stored (a document written before the check, or one that
// reached the disk some other way) instead of failing.
//
// Attachments are served as CouchDB 3.2+ does, with `Content-Security-Policy: sandbox` (an HTML or
// SVG attachment cannot run script in the server's origin), plus `X-Content-Type-Options: nosniff`.

/** type/subtype, optional parameters; printable ASCII only (no CR, LF or other control characters). */
const MEDIA_TYPE_RE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(?:[ \t]*;[\x20-\x7e]*)?$/;
const MAX_LENGTH = 255;
export const FALLBACK_TYPE = 'application/octet-stream';

export const ATTACHMENT_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': 'sandbox',
  'X-Content-Type-Options': 'nosniff',
};

/** CouchDB refuses names starting with `_`; control characters would make the attachment's URL unusable. */
const NAME_RE = /^[^\u0000-\u001f\u007f]{1,1024}$/;

/** Why `name` cannot be a new attachment's name, or null when it can. */
export function attachmentNameProblem(name: string): string | null {
  if (!NAME_RE.test(name)) return 'must be 1-1024 characters without control characters';
  if (name.startsWith('_')) return 'must not start with _';
  return null;
}

/** Why `v` is not an acceptable `content_type`, or null when it is. */
export function contentTypeProblem(v: unknown): string | null {
  if (typeof v !== 'string') return 'must be a string';
  if (v.length > MAX_LENGTH) return `must be at most ${MAX_LENGTH} characters`;
  if (!MEDIA_TYPE_RE.test(v)) return 'must be a media type like text/plain (type/subtype, optional ;parameters, printable ASCII, no CR/LF)';
  return null;
}

/** A stored value as it can be served: itself when acceptable, else application/octet-stream. */
export function servedContentType(v: unknown): string {
  return contentTypeProblem(v) === null ? (v as string) : FALLBACK_TYPE;
}

/** Replaces unacceptable stored `content_type`s in a document read from the store (in place). */
export function cleanDoc<T>(doc: T): T {
  const atts = (doc as { _attachments?: unknown } | null)?._attachments;
  if (atts && typeof atts === 'object') {
    for (const att of Object.values(atts as Record<string, { content_type?: unknown } | null>)) {
      if (att && typeof att === 'object' && att.content_type !== undefined && contentTypeProblem(att.content_type) !== null) att.content_type = FALLBACK_TYPE;
    }
  }
  return doc;
}
