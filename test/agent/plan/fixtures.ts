// Builders for planner tests: a spec, a template, what the runtime observes, and a whole PlanInput.
// Everything has plain defaults so a test only spells out what it is about.
import type { SystemDoc, TemplateDoc } from '../../../ddocs/schemas/types.ts';
import type { Applied, Backoff, DesiredSystem, PlanInput } from '../../../agent/model/types.ts';
import type { Observed, ObservedPhase } from '../../../agent/runtime/index.ts';
import { runtimeHash } from '../../../agent/plan/runtime-hash.ts';

export const NOW = 1_700_000_000_000;

export function template(over: Partial<TemplateDoc> = {}): TemplateDoc {
  return { _id: 'template:debian', _rev: '1-t', type: 'template', name: 'debian', source: 'dir', path: '/srv/templates/debian', sha256: 'a'.repeat(64), ...over };
}

export function spec(name: string, over: Partial<SystemDoc> = {}): SystemDoc & { _rev: string } {
  return {
    _id: `system:${name}`,
    _rev: '2-cur',
    type: 'system',
    name,
    kind: 'app',
    template: 'debian',
    state: 'running',
    command: ['/bin/sleep', 'infinity'],
    env: { A: '1' },
    ...over,
  } as SystemDoc & { _rev: string };
}

export function desired(s: SystemDoc & { _rev: string }, over: Partial<DesiredSystem> = {}): DesiredSystem {
  return { spec: s, template: template({ name: s.template, _id: `template:${s.template}` }), specErrors: [], conflict: false, ...over };
}

export function hashOf(d: DesiredSystem): string {
  return runtimeHash(d.spec, d.template);
}

/** What observe() reports; `exitCode` and `code` follow the phase unless given. */
export function observed(name: string, phase: ObservedPhase, over: Partial<Observed> = {}): Observed {
  const running = phase === 'running';
  return {
    name,
    phase,
    kind: 'app',
    template: 'debian',
    pid: running ? 4242 : null,
    startTime: running ? 123456 : null,
    supervisor: running ? { pid: 4241, startTime: 123450 } : null,
    exitCode: null,
    restarts: 0,
    specRev: '2-cur',
    strategy: 'overlay',
    startedAt: '2024-01-01T00:00:00.000Z',
    diskUsed: null,
    code: null,
    message: null,
    ...over,
  } as Observed;
}

export interface InputParts {
  desired?: DesiredSystem[];
  observed?: Observed[];
  tombstones?: string[];
  statuses?: string[];
  applied?: Record<string, Applied>;
  backoff?: Record<string, Backoff>;
  terminal?: Record<string, { rev: string; code: string }>;
  now?: number;
}

export function input(p: InputParts = {}): PlanInput {
  return {
    desired: new Map((p.desired ?? []).map((d) => [d.spec.name, d])),
    observed: new Map((p.observed ?? []).map((o) => [o.name, o])),
    tombstones: new Set(p.tombstones ?? []),
    statuses: new Set(p.statuses ?? []),
    applied: new Map(Object.entries(p.applied ?? {})),
    backoff: new Map(Object.entries(p.backoff ?? {})),
    terminal: new Map(Object.entries(p.terminal ?? {})),
    now: p.now ?? NOW,
  };
}
