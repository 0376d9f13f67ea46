// What the console knows of the fleet: nodes and systems from the API, refreshed (coalesced) whenever
// /api/events says something changed. Views subscribe and re-render.
import { api, type NodeRow, type SystemRow } from './api.ts';
import { onEvent } from './live.ts';

export interface Fleet { nodes: NodeRow[]; systems: SystemRow[]; conflicts: number; loaded: boolean; error: string | null }
export const fleet: Fleet = { nodes: [], systems: [], conflicts: 0, loaded: false, error: null };

const listeners = new Set<() => void>();
export const onFleet = (fn: () => void) => {
  listeners.add(fn);
  return () => listeners.delete(fn);
};

let loading: Promise<void> | null = null;
let again = false;

export async function loadFleet(): Promise<void> {
  if (loading) {
    again = true;
    return loading;
  }
  loading = (async () => {
    do {
      again = false;
      try {
        const [nodes, systems, conflicts] = await Promise.all([
          api<NodeRow[]>('GET', '/api/nodes'),
          api<SystemRow[]>('GET', '/api/systems'),
          api<unknown[]>('GET', '/api/conflicts').catch(() => []),
        ]);
        Object.assign(fleet, { nodes, systems, conflicts: conflicts.length, loaded: true, error: null });
      } catch (err) {
        fleet.error = (err as Error).message;
      }
      listeners.forEach((l) => l());
    } while (again);
  })().finally(() => (loading = null));
  return loading;
}

let timer: ReturnType<typeof setTimeout> | undefined;
onEvent(() => {
  clearTimeout(timer);
  timer = setTimeout(() => void loadFleet(), 150);
});

export const nodeOf = (id: string) => fleet.nodes.find((n) => n.id === id);

export function resetFleet(): void {
  Object.assign(fleet, { nodes: [], systems: [], conflicts: 0, loaded: false, error: null });
}

// ---- phase in words ----------------------------------------------------------------------------

export interface PhaseWords { word: string; cls: string; why: string }

/** What a system is doing, in words and a colour class, and why — the node's state included. */
export function explain(s: Pick<SystemRow, 'phase' | 'current' | 'state' | 'message'>, node: NodeRow | undefined): PhaseWords {
  const phase = s.phase;
  if (!node || !node.heartbeat) {
    return { word: phase ?? 'unknown', cls: 'unknown', why: `node never connected: no agent has reported from ${node?.id ?? 'this node'} yet, so nothing runs there` };
  }
  if (!node.online) {
    return { word: phase ? `${phase} (last known)` : 'unknown', cls: 'unknown', why: `node offline: it will act on changes when it reconnects` };
  }
  if (!phase) return { word: 'pending', cls: 'pending', why: 'waiting for the agent to report' };
  if (!s.current) return { word: phase, cls: 'pending', why: `the agent has not applied the latest change yet (wants ${s.state})` };
  return { word: phase, cls: phase, why: s.message ?? '' };
}

export const PHASES = ['running', 'stopped', 'failed', 'pending', 'materializing', 'unknown'] as const;
