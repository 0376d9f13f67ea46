// The REST API's one error shape: `{error, reason, details?}` with an HTTP status. CouchDB's own refusals
// (the API acts with the caller's credentials) are carried through with their status and reason.
import type { NextFunction, Request, Response } from 'express';
import type { FieldError } from '../../ddocs/validate.ts';

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: FieldError[]) {
    super(message);
  }
}

export const invalid = (message: string, details: FieldError[] = []) => new ApiError(400, 'invalid', message, details);
export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);

/** Maps a CouchDB (nano) failure to an ApiError. */
export function fromCouch(err: unknown, what = 'document'): ApiError {
  if (err instanceof ApiError) return err;
  const e = err as { statusCode?: number; error?: string; reason?: string; message?: string; code?: string };
  switch (e.statusCode) {
    case 400: return new ApiError(400, 'invalid', e.reason ?? 'bad request');
    case 401: return new ApiError(401, 'unauthorized', e.reason ?? 'log in first');
    case 403: return new ApiError(403, 'forbidden', e.reason ?? 'forbidden');
    case 404: return notFound(what);
    case 409: return new ApiError(409, 'conflict', `${what} was changed meanwhile (stale revision); get it again and retry`);
    case 412: return new ApiError(409, 'conflict', e.reason ?? 'exists already');
    // Limits (server/limits): too large, timed out, over quota, busy — the caller can act on each.
    case 408: case 413: case 503: case 507: return new ApiError(e.statusCode, e.error ?? 'error', e.reason ?? e.message ?? 'refused');
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'UND_ERR_SOCKET') return new ApiError(503, 'couch_unreachable', 'the database is unreachable');
  return new ApiError(500, 'internal', e.message ?? 'unexpected error');
}

export function errorHandler(log: (m: string) => void) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    const e = fromCouch(err);
    if (e.status >= 500) log(`api: ${(err as Error)?.stack ?? String(err)}`);
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(e.status).json({ error: e.code, reason: e.message, ...(e.details ? { details: e.details } : {}) });
  };
}
