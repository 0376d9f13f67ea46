// What the console knows of the fleet: nodes and systems from the API, refreshed (coalesced) whenever
// /api/events says something changed. Views subscribe and re-render.
import { api, type NodeRow, type SystemRow } from './api.ts';
import { onEvent, type FleetEvent } from './live.ts';

export interface Fleet { nodes: NodeRow[]; systems: SystemRow[]; conflicts: number; loaded: boolean; error: string | null }
export const fleet: Fleet = { nodes: [], systems: [], conflicts: 0, loaded: false, error: null };

/** `changed`: the only system rows that changed (a status patch), or undefined when anything may have. */
type FleetListener = (changed?: SystemRow[]) => void;
const listeners = new Set<FleetListener>();
export const onFleet = (fn: FleetListener) => {
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

// Events patch the rows at once (a status or a spec change shows within a frame); anything else, and
// a while after spec changes (conflicts, counts the server derives), reloads the lists.
let timer: ReturnType<typeof setTimeout> | undefined;
const reloadSoon = (ms: number) => {
  clearTimeout(timer);
  timer = setTimeout(() => void loadFleet(), ms);
};
let frame = 0;
let changedRows: Set<SystemRow> | null = new Set();
const notifySoon = (row?: SystemRow) => {
  if (row && changedRows) changedRows.add(row);
  else changedRows = null;
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const changed = changedRows ? [...changedRows] : undefined;
    changedRows = new Set();
    listeners.forEach((l) => l(changed));
  });
};
/** The server calls a node online while its heartbeat is younger than this (FleetIndex default). */
export const ONLINE_WITHIN_MS = 90_000;

function recount(node: string): void {
  const n = fleet.nodes.find((x) => x.id === node);
  if (!n) return;
  const phases: Record<string, number> = {};
  let systems = 0;
  for (const s of fleet.systems) {
    if (s.node !== node) continue;
    systems++;
    if (s.phase) phases[s.phase] = (phases[s.phase] ?? 0) + 1;
  }
  Object.assign(n, { systems, phases });
}

/** Applies an event to the rows: false when it needs a reload, true, or the one row it changed. */
export function applyEvent(e: FleetEvent): boolean | SystemRow {
  if (!fleet.loaded || !e.node) return false;
  const i = fleet.systems.findIndex((s) => s.node === e.node && s.name === e.name);
  if (e.type === 'status') {
    if (i < 0) return true;
    const row = fleet.systems[i];
    const d = e.deleted ? null : e.doc;
    Object.assign(row, { phase: d?.phase ?? null, observedRev: d?.observedRev ?? null, pid: d?.pid ?? null, message: d?.message ?? null, updated: d?.updated ?? null });
    row.current = !!d && row.observedRev === row.rev;
    recount(e.node);
    return row;
  } else if (e.type === 'system') {
    if (e.deleted || !e.doc) {
      if (i >= 0) fleet.systems.splice(i, 1);
    } else {
      const d = e.doc;
      const base: SystemRow = i >= 0 ? fleet.systems[i] : { node: e.node, name: e.name, phase: null, observedRev: null, current: false, pid: null, message: null, updated: null, conflict: false } as unknown as SystemRow;
      Object.assign(base, { kind: d.kind, template: d.template, state: d.state, labels: d.labels ?? {}, rev: e.rev, conflict: Array.isArray(d._conflicts) && d._conflicts.length > 0 });
      base.current = base.observedRev === base.rev;
      if (i < 0) fleet.systems.push(base);
    }
    reloadSoon(1000);
  } else if (e.type === 'node') {
    const n = fleet.nodes.find((x) => x.id === e.node);
    if (!n || !e.doc) return false;
    const hb = e.doc.heartbeat ?? null;
    Object.assign(n, { heartbeat: hb, hostname: e.doc.hostname ?? null, agentVersion: e.doc.agentVersion ?? null, online: !!hb && Date.now() - Date.parse(hb) < ONLINE_WITHIN_MS });
    return true;
  } else return false;
  recount(e.node);
  return true;
}

onEvent((e) => {
  const r = e ? applyEvent(e) : false;
  if (r === false) reloadSoon(150);
  else notifySoon(r === true ? undefined : r);
});

/** Loads the lists unless they are loaded or loading. */
export function ensureFleet(): void {
  if (!fleet.loaded && !loading) void loadFleet();
}

// Nobody tells us when a node goes quiet: its heartbeat just ages. Re-judge online-ness as time passes.
setInterval(() => {
  let changed = false;
  for (const n of fleet.nodes) {
    const online = !!n.heartbeat && Date.now() - Date.parse(n.heartbeat) < ONLINE_WITHIN_MS;
    if (online !== n.online) {
      n.online = online;
      changed = true;
    }
  }
  if (changed) notifySoon();
}, 5000);

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
    return { word: phase ?? 'unknown', cls: 'unknown', why: `node never connected: no agent has reported from ${node?.id ?? 'this node'} yet, so nothing runs there; it will be ${s.state} once it connects` };
  }
  if (!node.online) {
    const pending = !s.current ? `change pending (wants ${s.state}): ` : '';
    return { word: phase ? `${phase} (last known)` : 'unknown', cls: 'unknown', why: `${pending}node offline; it acts on changes when it reconnects` };
  }
  if (!phase) return { word: 'pending', cls: 'pending', why: 'waiting for the agent to report' };
  if (!s.current) return { word: phase, cls: 'pending', why: `the agent has not applied the latest change yet (wants ${s.state})` };
  return { word: phase, cls: phase, why: s.message && s.message !== phase ? s.message : '' };
}

export const PHASES = ['running', 'stopped', 'failed', 'pending', 'materializing', 'unknown'] as const;
