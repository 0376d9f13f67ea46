// The agent's memory across restarts: what it applied, back-off, terminal and last errors.
// One JSON file written atomically; a lost file only costs adoption-by-revision (see the planner).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { AgentMemory } from './execute/executors.ts';

export function emptyMemory(): AgentMemory {
  return { applied: new Map(), backoff: new Map(), terminal: new Map(), lastError: new Map() };
}

export function loadMemory(path: string): AgentMemory {
  if (!existsSync(path)) return emptyMemory();
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8'));
    return {
      applied: new Map(Object.entries(raw.applied ?? {})),
      backoff: new Map(Object.entries(raw.backoff ?? {})),
      terminal: new Map(Object.entries(raw.terminal ?? {})),
      lastError: new Map(Object.entries(raw.lastError ?? {})),
    } as AgentMemory;
  } catch {
    return emptyMemory();
  }
}

export function serializeMemory(m: AgentMemory): string {
  return JSON.stringify({
    applied: Object.fromEntries(m.applied),
    backoff: Object.fromEntries(m.backoff),
    terminal: Object.fromEntries(m.terminal),
    lastError: Object.fromEntries(m.lastError),
  });
}

export function saveMemory(path: string, m: AgentMemory): void {
  const tmp = path + '.tmp';
  writeFileSync(tmp, serializeMemory(m), { mode: 0o600 });
  renameSync(tmp, path);
}
