// What every route of the embedded CouchDB API gets: the parsed request, the caller and the services.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Query } from '../http.ts';
import type { Auth, UserCtx } from './auth.ts';
import type { DbStore, SecurityObject } from './store.ts';
import type { Validator } from './validation.ts';
import type { NodeDbQuota } from '../../limits/quota.ts';
import type { Replicator } from './replicator/scheduler.ts';
import { forbidden, unauthorized } from '../errors.ts';

export interface Services {
  store: DbStore;
  auth: Auth;
  validator: Validator;
  maxBody: number;
  uuid: string;
  /** Document size limits and node database quotas (server/limits/quota.ts); none when not configured. */
  quota?: NodeDbQuota;
  /** `_replicate`, the `_replicator` database's jobs, `_scheduler` (replicator/scheduler.ts). */
  replicator: Replicator;
}

export interface Ctx extends Services {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  /** Decoded path segments below the API root. */
  path: string[];
  query: Query;
  userCtx: UserCtx;
  authVia: 'default' | 'cookie' | null;
  /** True once the client has gone away; long feeds stop on it. */
  closed: () => boolean;
}

export const isServerAdmin = (u: UserCtx) => u.roles.includes('_admin');

function matches(part: { names: string[]; roles: string[] }, u: UserCtx): boolean {
  return (u.name !== null && part.names.includes(u.name)) || u.roles.some((r) => part.roles.includes(r));
}

export function isDbAdmin(u: UserCtx, sec: SecurityObject): boolean {
  return isServerAdmin(u) || matches(sec.admins, u);
}

/**
 * CouchDB 3 semantics with `admin_only` default security: a database whose members list is empty is
 * readable by admins only; otherwise by its admins and members.
 */
export function isDbReader(u: UserCtx, sec: SecurityObject): boolean {
  return isDbAdmin(u, sec) || matches(sec.members, u);
}

export function requireUser(ctx: Ctx): void {
  if (ctx.userCtx.name === null) throw unauthorized('You are not authorized to access this db.');
}

export function requireServerAdmin(ctx: Ctx): void {
  requireUser(ctx);
  if (!isServerAdmin(ctx.userCtx)) throw unauthorized('You are not a server admin.');
}

export async function requireReader(ctx: Ctx, db: string): Promise<void> {
  requireUser(ctx);
  if (!isDbReader(ctx.userCtx, await ctx.store.getSecurity(db))) throw forbidden('You are not allowed to access this db.');
}

export async function requireDbAdmin(ctx: Ctx, db: string): Promise<void> {
  requireUser(ctx);
  if (!isDbAdmin(ctx.userCtx, await ctx.store.getSecurity(db))) throw unauthorized('You are not a db or server admin.');
}
