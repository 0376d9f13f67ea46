// GET /metrics: Prometheus text exposition — requests by route and status, index lag, nodes online,
// systems by observed phase.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { NextFunction, Request, Response } from 'express';
import type { FleetIndex } from '../fleet/fleet-index.ts';
import type { EventStats } from './events.ts';

export class Metrics {
  private readonly requests = new Map<string, number>();
  /** Event-loop delay since the last scrape: a stalled loop delays every caller, so it is worth a gauge. */
  private readonly loop = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.loop.enable();
  }

  /** Event-loop delay quantiles (seconds) since the last call; resets the histogram. */
  loopDelay(): { p50: number; p99: number; max: number } {
    const s = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
    const out = { p50: s(this.loop.percentile(50)), p99: s(this.loop.percentile(99)), max: s(this.loop.max) };
    this.loop.reset();
    return out;
  }

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
    const loop = this.loopDelay();
    lines.push('# HELP anybios_event_loop_delay_seconds Event-loop delay since the previous scrape (10 ms resolution).', '# TYPE anybios_event_loop_delay_seconds gauge');
    for (const [q, v] of [['0.5', loop.p50], ['0.99', loop.p99], ['1', loop.max]] as const) lines.push(`anybios_event_loop_delay_seconds{quantile="${q}"} ${v.toFixed(4)}`);
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
