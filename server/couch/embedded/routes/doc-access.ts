// Who may read one document: the database's readers, and in _users a user its own document only.
import { forbidden } from '../../errors.ts';
import { type Ctx, isServerAdmin, requireReader } from '../context.ts';
import { USERS_DB, USER_PREFIX } from '../auth.ts';

/** _users: a non-admin may read only their own user document. */
export async function requireDocReader(ctx: Ctx, dbName: string, id: string): Promise<void> {
  if (dbName === USERS_DB && ctx.userCtx.name !== null && !isServerAdmin(ctx.userCtx)) {
    if (id !== USER_PREFIX + ctx.userCtx.name) throw forbidden('You may only read your own user document.');
    return;
  }
  await requireReader(ctx, dbName);
}
