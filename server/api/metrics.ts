// GET /metrics: Prometheus text exposition — requests by route and status, index lag, nodes online,
// systems by observed phase.
import type { NextFunction, Request, Response } from 'express';
import type { FleetIndex } from '../fleet/fleet-index.ts';
import type { EventStats } from './events.ts';

export class Metrics {
  private readonly requests = new Map<string, number>();

  middleware() {
    return (req: Request, res: Response, next: NextFunction) => {
      res.on('finish', () => {
        const route = typeof res.locals.route === 'string' ? res.locals.route : req.route?.path ? `${req.baseUrl}${req.route.path}` : req.baseUrl === '/db' || req.originalUrl.startsWith('/db/') ? '/db/*' : 'other';
        const key = `${req.method}\u0000${route}\u0000${res.statusCode}`;
        this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
      });
      next();
    };
  }

  render(index: FleetIndex | undefined, events?: EventStats): string {
    const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const lines = ['# HELP anybios_http_requests_total HTTP requests by method, route and status.', '# TYPE anybios_http_requests_total counter'];
    for (const [key, n] of [...this.requests].sort()) {
      const [method, route, status] = key.split('\u0000');
      lines.push(`anybios_http_requests_total{method="${method}",route="${esc(route)}",status="${status}"} ${n}`);
    }
    if (events) {
      lines.push('# HELP anybios_event_clients Connected /api/events clients.', '# TYPE anybios_event_clients gauge', `anybios_event_clients ${events.clients}`);
      lines.push('# HELP anybios_event_clients_dropped_total /api/events clients dropped for not reading.', '# TYPE anybios_event_clients_dropped_total counter', `anybios_event_clients_dropped_total ${events.dropped}`);
    }
    if (index) {
      lines.push('# HELP anybios_index_lag_seconds Age of the oldest database change the fleet index has not processed.', '# TYPE anybios_index_lag_seconds gauge', `anybios_index_lag_seconds ${index.lagSeconds().toFixed(3)}`);
      const nodes = index.nodeIds().map((n) => index.nodeRow(n)!);
      lines.push('# HELP anybios_nodes Nodes known to the fleet index.', '# TYPE anybios_nodes gauge', `anybios_nodes ${nodes.length}`);
      lines.push('# HELP anybios_nodes_online Nodes whose heartbeat is recent.', '# TYPE anybios_nodes_online gauge', `anybios_nodes_online ${nodes.filter((n) => n.online).length}`);
      const phases = new Map<string, number>();
      for (const s of index.systemRows()) phases.set(s.phase ?? 'unknown', (phases.get(s.phase ?? 'unknown') ?? 0) + 1);
      lines.push('# HELP anybios_systems Systems by observed phase (unknown: no status yet).', '# TYPE anybios_systems gauge');
      for (const p of ['pending', 'materializing', 'running', 'stopped', 'failed', 'unknown']) lines.push(`anybios_systems{phase="${p}"} ${phases.get(p) ?? 0}`);
    }
    return lines.join('\n') + '\n';
  }
}
