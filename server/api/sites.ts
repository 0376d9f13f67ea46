// Site links (issue 6), admin only: GET /api/sites (status of each link), GET /api/sites/:id,
// POST /api/sites {url, user, password} (checked against the remote before it is saved),
// DELETE /api/sites/:id (an id or the remote's URL, URL-encoded).
import type express from 'express';
import type { ApiContext } from './context.ts';
import type { Caller } from './caller.ts';
import { ApiError, notFound } from './errors.ts';
import { SiteError, type SiteSupervisor } from '../sites/supervisor.ts';

export function mountSiteRoutes(router: express.Router, ctx: ApiContext): void {
  const { h, param } = ctx;
  const sites = (): SiteSupervisor => {
    const s = ctx.services.sites as SiteSupervisor | undefined;
    if (!s) throw new ApiError(503, 'sites_unavailable', 'site links are not available on this server');
    return s;
  };
  const adminOnly = (caller: Caller) => {
    if (!caller.roles.includes('_admin')) throw new ApiError(403, 'forbidden', 'site links are for server admins only');
  };
  const asApi = (err: unknown): never => {
    if (err instanceof SiteError) throw new ApiError(err.status, err.code, err.message);
    throw err;
  };

  router.get('/sites', h(async (_req, _res, caller) => {
    adminOnly(caller);
    return sites().list();
  }));
  router.get('/sites/:id', h(async (req, _res, caller) => {
    adminOnly(caller);
    const s = sites().get(param(req, 'id'));
    if (!s) throw notFound(`site link ${param(req, 'id')}`);
    return s;
  }));
  router.post('/sites', h(async (req, _res, caller) => {
    adminOnly(caller);
    const b = (req.body ?? {}) as Record<string, unknown>;
    return { ok: true, ...(await sites().link({ url: b.url as string, user: b.user as string, password: b.password as string, fingerprint: b.fingerprint as string | undefined, insecureHttp: b.insecureHttp === true }).catch(asApi)) };
  }, 201));
  router.delete('/sites/:id', h(async (req, _res, caller) => {
    adminOnly(caller);
    return { ok: true, ...(await sites().unlink(param(req, 'id')).catch(asApi)) };
  }));
}
