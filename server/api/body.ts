// JSON bodies for the REST API, with the same limits as the CouchDB API: size, and nesting depth
// checked before parsing so deep input is refused cheaply. Read only after the caller is authenticated
// (router.ts `h`), so an unknown caller's body is refused unread.
import type { Request } from 'express';
import { parseJson, readBody } from '../couch/http.ts';
import { CouchError } from '../couch/errors.ts';
import { ApiError } from './errors.ts';

export function jsonBody(limit = 1024 * 1024) {
  return async (req: Request): Promise<void> => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'DELETE') return;
    try {
      const raw = await readBody(req, limit);
      req.body = raw.length ? parseJson(raw.toString('utf8')) : undefined;
    } catch (err) {
      if (!(err instanceof CouchError)) throw err;
      // Size, time-out and budget refusals keep their status and CouchDB error name; bad JSON is 400 invalid.
      throw new ApiError(err.status, err.status === 400 ? 'invalid' : err.error, err.reason);
    }
  };
}
