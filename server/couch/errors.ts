// One error funnel for the CouchDB API: every failure becomes `{error, reason}` with an HTTP status,
// as CouchDB itself renders it, so PouchDB, nano and Fauxton understand our errors.

export class CouchError extends Error {
  constructor(readonly status: number, readonly error: string, readonly reason: string) {
    super(reason);
  }
}

export const badRequest = (reason: string) => new CouchError(400, 'bad_request', reason);
export const unauthorized = (reason = 'You are not authorized to access this db.') => new CouchError(401, 'unauthorized', reason);
export const forbidden = (reason: string) => new CouchError(403, 'forbidden', reason);
export const notFound = (reason = 'missing') => new CouchError(404, 'not_found', reason);
export const methodNotAllowed = (allowed: string) => new CouchError(405, 'method_not_allowed', `Only ${allowed} allowed`);
export const conflict = () => new CouchError(409, 'conflict', 'Document update conflict.');
export const tooLarge = (limit: number) => new CouchError(413, 'too_large', `the request body is larger than ${limit} bytes`);
export const unsupportedMedia = (reason: string) => new CouchError(415, 'bad_content_type', reason);

/** Maps anything thrown (PouchDB errors included) to a CouchError; unknown failures become 500. */
export function toCouchError(err: unknown): CouchError {
  if (err instanceof CouchError) return err;
  const e = err as { status?: number; name?: string; error?: unknown; reason?: string; message?: string };
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 600) {
    const name = typeof e.name === 'string' && e.name !== 'Error' ? e.name : typeof e.error === 'string' ? e.error : 'error';
    // PouchDB reports some malformed input as 500 (badarg, doc_validation); CouchDB answers 400.
    const status = e.status === 500 && (name === 'badarg' || name === 'doc_validation') ? 400 : e.status;
    return new CouchError(status, name, String(e.reason ?? e.message ?? name));
  }
  if (err instanceof RangeError || err instanceof SyntaxError || err instanceof TypeError) {
    // Thrown by PouchDB on malformed options (bad keys, bad selectors): the request's fault.
    return badRequest(err.message);
  }
  return new CouchError(500, 'internal_server_error', e?.message ? String(e.message) : 'unexpected error');
}
