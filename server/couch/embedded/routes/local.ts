// _local documents: never replicated, used for replication checkpoints. Members read and write them.
import { badRequest, conflict, methodNotAllowed } from '../../errors.ts';
import { readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, requireReader } from '../context.ts';

export async function localDoc(ctx: Ctx, dbName: string, name: string): Promise<void> {
  if (!name || name.length > 4096) throw badRequest('a _local document needs a name of at most 4096 characters');
  await requireReader(ctx, dbName);
  const db = ctx.store.get(dbName);
  const id = `_local/${name}`;
  if (ctx.method === 'GET') {
    sendJson(ctx.res, 200, await db.get(id));
    return;
  }
  if (ctx.method === 'PUT') {
    const body = await readJsonObject(ctx.req, ctx.maxBody);
    const r = await db.put({ ...body, _id: id } as PouchDB.Core.PutDocument<object>);
    sendJson(ctx.res, 201, { ok: true, id, rev: r.rev });
    return;
  }
  if (ctx.method === 'DELETE') {
    const rev = ctx.query.str('rev');
    if (!rev) throw conflict();
    await db.remove(id, rev);
    sendJson(ctx.res, 200, { ok: true, id, rev: '0-0' });
    return;
  }
  throw methodNotAllowed('GET,PUT,DELETE');
}
