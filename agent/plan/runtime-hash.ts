// The part of a spec (and its template) that a running system depends on. A change here needs a
// restart; a change elsewhere (labels, description, state handled separately) is only adopted.
import { createHash } from 'node:crypto';
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';

const RUNTIME_FIELDS = ['kind', 'template', 'init', 'command', 'env', 'workdir', 'hostname', 'mounts', 'network', 'resources', 'restartedAt'] as const;

/** Stable JSON (sorted keys) so equal content always hashes equal. */
function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  return JSON.stringify(v ?? null);
}

export function runtimeHash(spec: SystemDoc, template: TemplateDoc | null): string {
  const picked: Record<string, unknown> = {};
  for (const f of RUNTIME_FIELDS) picked[f] = spec[f];
  const tpl = template ? { source: template.source, path: template.path ?? null, sha256: template.sha256 ?? null } : null;
  return createHash('sha256').update(stable({ spec: picked, template: tpl })).digest('hex').slice(0, 24);
}
