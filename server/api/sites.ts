// Site links (issue 6): mounted by the router. Filled in by the site-link work.
import type express from 'express';
import type { ApiContext } from './context.ts';

export function mountSiteRoutes(_router: express.Router, _ctx: ApiContext): void {}
