// Conflicts and revision history (issue 6): mounted by the router. Filled in by the conflicts work.
import type express from 'express';
import type { ApiContext } from './context.ts';

export function mountConflictRoutes(_router: express.Router, _ctx: ApiContext): void {}
