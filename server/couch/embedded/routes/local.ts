// _local documents: never replicated, used for replication checkpoints. Members read and write them.
// Written through the one write path (writes.ts), so CouchDB's document rules hold here too; as in
// CouchDB they carry no attachments (dropped on write; an attachment URL under _local is a 400).
import { badRequest, conflict, methodNotAllowed } from '../../errors.ts';
import { readJsonObject, sendJson } from '../../http.ts';
import { type Ctx, requireReader } from '../context.ts';
import { checkRev, writeOne } from './writes.ts';

/** `/{db}/_local/{name}[/…]`: `rest` is what follows the name (an attachment path, refused). */
export async function localDoc(ctx: Ctx, dbName: string, name: string | undefined, rest: string[] = []): Promise<void> {
  if (!name) throw badRequest('Invalid _local document id.');
  if (rest.length) throw badRequest('_local documents do not accept attachments.');
  if (name.length > 4096) throw badRequest('a _local document needs a name of at most 4096 characters');
  await requireReader(ctx, dbName);
  const db = ctx.store.get(dbName);
  const id = `_local/${name}`;
  if (ctx.method === 'GET') {
    const { _attachments: _stored, ...doc } = (await db.get(id)) as Record<string, unknown>; // kept by an older version
    sendJson(ctx.res, 200, doc);
    return;
  }
  if (ctx.method === 'PUT') {
    const body = await readJsonObject(ctx.req, ctx.maxBody);
    if (body._id !== undefined && body._id !== id) throw badRequest('_id in the body differs from the URL');
    const rev = ctx.query.str('rev');
    const r = await writeOne(ctx, dbName, { ...body, _id: id, ...(rev !== undefined ? { _rev: checkRev(rev) } : {}) });
    sendJson(ctx.res, 201, { ok: true, id, rev: r.rev });
    return;
  }
  if (ctx.method === 'DELETE') {
    const rev = ctx.query.str('rev');
    if (!rev) throw conflict();
    await writeOne(ctx, dbName, { _id: id, _rev: checkRev(rev), _deleted: true });
    sendJson(ctx.res, 200, { ok: true, id, rev: '0-0' });
    return;
  }
  throw methodNotAllowed('GET,PUT,DELETE');
}
