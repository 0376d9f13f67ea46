// JSON bodies for the REST API, with the same limits as the CouchDB API: size, and nesting depth
// checked before parsing so deep input is refused cheaply.
import type { NextFunction, Request, Response } from 'express';
import { parseJson, readBody } from '../couch/http.ts';
import { CouchError } from '../couch/errors.ts';
import { ApiError } from './errors.ts';

export function jsonBody(limit = 1024 * 1024) {
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'DELETE') return next();
    try {
      const raw = await readBody(req, limit);
      req.body = raw.length ? parseJson(raw.toString('utf8')) : undefined;
      next();
    } catch (err) {
      const e = err as CouchError;
      next(err instanceof CouchError ? new ApiError(e.status, e.status === 413 ? 'too_large' : 'invalid', e.reason) : err);
    }
  };
}
