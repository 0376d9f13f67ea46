// What route modules get from the router: the index, read rights, and the handler wrapper, so each
// feature (conflicts, history, sites …) lives in its own file and mounts itself.
import type { NextFunction, Request, Response } from 'express';
import type { ServerScope } from 'nano';
import type { FleetIndex } from '../fleet/fleet-index.ts';
import type { Access } from './access.ts';
import type { Caller } from './caller.ts';

export type Handler = (req: Request, res: Response, caller: Caller) => Promise<unknown>;

export interface ApiContext {
  index: FleetIndex;
  /** nano with admin rights (server-side work only: never to act for a caller). */
  admin: ServerScope;
  access: Access;
  /** Wraps a handler: authenticates the caller, runs, sends JSON with `status`. */
  h(fn: Handler, status?: number): (req: Request, res: Response, next: NextFunction) => Promise<void>;
  param(req: Request, name: string): string;
  /** 404 unless the node exists, 403 unless the caller may read it; returns its database name. */
  nodeExists(caller: Caller, node: string): Promise<string>;
  revOf(req: Request): string | undefined;
  /** Extra services the server wires in (e.g. the site link supervisor). */
  services: Record<string, unknown>;
}
