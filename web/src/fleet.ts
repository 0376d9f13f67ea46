// The fleet page: nodes (online or not, with a ticking age, agent version, systems by phase) and the
// systems list with search, filters (node, kind, phase, label) and sort. Rows become cards on a phone.
import type { NodeRow, SystemRow } from './api.ts';
import { h, replace, since, newId } from './dom.ts';
import { syncActions } from './live.ts';
import { ensureFleet, explain, fleet, nodeOf, onFleet, PHASES } from './store.ts';
import { systemAction } from './actions.ts';
import { canWrite, currentUser } from './session.ts';

const filters = { q: '', node: '', kind: '', phase: '', label: '', sort: 'name' };

const systemHref = (s: { node: string; name: string }) => `#/nodes/${encodeURIComponent(s.node)}/systems/${encodeURIComponent(s.name)}`;

export function phaseBadge(word: string, cls: string, why: string): HTMLElement {
  return h('span', { class: 'phase' }, h('span', { class: `badge phase-${cls}` }, word), why ? h('span', { class: 'why' }, why) : null);
}

export function nodeCard(n: NodeRow): HTMLElement {
  const never = !n.heartbeat;
  return h('li', { class: 'node-card' },
    h('div', { class: 'node-head' },
      h('strong', null, n.id),
      h('span', { class: `badge ${n.online ? 'phase-running' : never ? 'phase-unknown' : 'phase-failed'}` }, n.online ? 'online' : never ? 'never connected' : 'offline')),
    h('div', { class: 'muted' }, never ? 'no agent has connected yet' : since(n.heartbeat, 'heartbeat ')),
    h('div', { class: 'muted' }, `agent ${n.agentVersion ?? '—'}${n.hostname ? ` · ${n.hostname}` : ''}`),
    h('div', { class: 'chips' }, `${n.systems} system${n.systems === 1 ? '' : 's'}`, Object.entries(n.phases).sort().map(([p, c]) => h('span', { class: `chip phase-${p}` }, `${c} ${p}`))),
  );
}

function matches(s: SystemRow, words: PhaseWordsCache): boolean {
  if (filters.node && s.node !== filters.node) return false;
  if (filters.kind && s.kind !== filters.kind) return false;
  if (filters.phase && words.get(s)!.cls !== filters.phase && (s.phase ?? 'unknown') !== filters.phase) return false;
  if (filters.label) {
    const eq = filters.label.indexOf('=');
    const k = eq < 0 ? filters.label.trim() : filters.label.slice(0, eq).trim();
    const v = eq < 0 ? undefined : filters.label.slice(eq + 1).trim();
    if (v === undefined ? !(k in s.labels) : s.labels[k] !== v) return false;
  }
  if (filters.q) {
    const q = filters.q.toLowerCase();
    const hay = `${s.name} ${s.node} ${s.template} ${s.kind} ${s.message ?? ''} ${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`.toLowerCase();
    if (!hay.includes(q)) return false;
  }
  return true;
}
type PhaseWordsCache = Map<SystemRow, ReturnType<typeof explain>>;

const sorters: Record<string, (a: SystemRow, b: SystemRow, w: PhaseWordsCache) => number> = {
  name: (a, b) => a.name.localeCompare(b.name) || a.node.localeCompare(b.node),
  node: (a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name),
  phase: (a, b, w) => w.get(a)!.word.localeCompare(w.get(b)!.word) || a.name.localeCompare(b.name),
  kind: (a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name),
  updated: (a, b) => (b.updated ?? '').localeCompare(a.updated ?? '') || a.name.localeCompare(b.name),
};

function systemRow(s: SystemRow, w: ReturnType<typeof explain>): HTMLElement {
  const label = `${s.name} on ${s.node}`;
  const toggle = s.state === 'running' ? 'stop' : 'start';
  return h('tr', { 'data-node': s.node, 'data-name': s.name },
    h('th', { scope: 'row', 'data-label': 'System' }, h('a', { href: systemHref(s) }, s.name), s.conflict ? h('span', { class: 'badge phase-failed', title: 'edited at two sites: resolve on its page' }, 'conflict') : null),
    h('td', { 'data-label': 'Node' }, s.node),
    h('td', { 'data-label': 'Kind' }, s.kind),
    h('td', { 'data-label': 'Wanted' }, s.state),
    h('td', { 'data-label': 'Phase' }, phaseBadge(w.word, w.cls, w.why)),
    h('td', { 'data-label': 'Labels', class: 'labels' }, Object.entries(s.labels).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`))),
    h('td', { class: 'actions' }, !canWrite(s.node) ? h('span', { class: 'muted' }, 'read only') : [
      h('button', { type: 'button', 'data-act': toggle, 'aria-label': `${toggle === 'stop' ? 'Stop' : 'Start'} ${label}`, on: { click: () => void systemAction(s.node, s.name, s.state, toggle) } }, toggle === 'stop' ? 'Stop' : 'Start'),
      h('button', { type: 'button', 'data-act': 'restart', 'aria-label': `Restart ${label}`, on: { click: () => void systemAction(s.node, s.name, s.state, 'restart') } }, 'Restart')]),
  );
}

export function fleetView(page: HTMLElement): () => void {
  const nodesList = h('ul', { class: 'node-cards', 'aria-label': 'Nodes' });
  const tbody = h('tbody');
  const shown = h('p', { class: 'muted', 'aria-live': 'polite' });
  const err = h('p', { class: 'error', role: 'alert' });
  const opt = (v: string, t = v) => h('option', { value: v }, t);
  const ctl = <T extends HTMLInputElement | HTMLSelectElement>(label: string, el: T, key: keyof typeof filters) => {
    const id = newId('flt');
    el.id = id;
    el.value = filters[key];
    el.addEventListener('input', () => {
      filters[key] = el.value;
      renderSystems();
    });
    return h('div', { class: 'ctl' }, h('label', { for: id }, label), el);
  };
  const nodeSel = h('select', null, opt('', 'all nodes'));
  const toolbar = h('div', { class: 'toolbar', role: 'search', 'aria-label': 'Find systems' },
    ctl('Search', h('input', { type: 'search', placeholder: 'name, template, message…', autocomplete: 'off' }), 'q'),
    ctl('Node', nodeSel, 'node'),
    ctl('Kind', h('select', null, opt('', 'any kind'), opt('app'), opt('os')), 'kind'),
    ctl('Phase', h('select', null, opt('', 'any phase'), PHASES.map((p) => opt(p))), 'phase'),
    ctl('Label', h('input', { type: 'text', placeholder: 'key or key=value', autocomplete: 'off' }), 'label'),
    ctl('Sort by', h('select', null, opt('name'), opt('node'), opt('phase'), opt('kind'), opt('updated', 'last update')), 'sort'),
  );
  const mayCreate = currentUser()?.operator || fleet.nodes.some((n) => canWrite(n.id));
  page.append(
    h('section', { 'aria-labelledby': 'nodes-h' }, h('h1', { id: 'nodes-h' }, 'Nodes'), nodesList),
    h('section', { 'aria-labelledby': 'systems-h' },
      h('div', { class: 'section-head' }, h('h1', { id: 'systems-h' }, 'Systems'), mayCreate ? h('a', { class: 'button primary', href: '#/new' }, 'New system') : null),
      toolbar, shown, err,
      h('table', { class: 'systems responsive' },
        h('caption', { class: 'sr-only' }, 'Systems'),
        h('thead', null, h('tr', null, ['System', 'Node', 'Kind', 'Wanted', 'Phase', 'Labels'].map((t) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
  );

  function renderNodes() {
    replace(nodesList, fleet.nodes.length ? fleet.nodes.map(nodeCard) : h('li', { class: 'muted' }, fleet.loaded ? 'No nodes you may read. ' : 'Loading…', fleet.loaded && currentUser()?.admin ? h('a', { href: '#/nodes' }, 'Enrol one') : null));
    const cur = nodeSel.value;
    replace(nodeSel, opt('', 'all nodes'), fleet.nodes.map((n) => opt(n.id)));
    nodeSel.value = fleet.nodes.some((n) => n.id === cur) ? cur : '';
  }
  function renderSystems() {
    const words: PhaseWordsCache = new Map(fleet.systems.map((s) => [s, explain(s, nodeOf(s.node))]));
    const rows = fleet.systems.filter((s) => matches(s, words)).sort((a, b) => (sorters[filters.sort] ?? sorters.name)(a, b, words));
    // Keep keyboard focus where it was across the re-render (same row, same control).
    const active = document.activeElement as HTMLElement | null;
    const tr = active && tbody.contains(active) ? active.closest('tr') : null;
    const keep = tr ? { node: tr.dataset.node, name: tr.dataset.name, act: active!.dataset.act ?? (active!.tagName === 'A' ? 'link' : '') } : null;
    replace(tbody, rows.map((s) => systemRow(s, words.get(s)!)));
    if (keep) {
      const row = [...tbody.rows].find((r) => r.dataset.node === keep.node && r.dataset.name === keep.name);
      const again = keep.act === 'link' ? row?.querySelector('a') : keep.act ? row?.querySelector<HTMLElement>(`[data-act="${keep.act}"]`) ?? row?.querySelector<HTMLElement>('[data-act]') : null;
      again?.focus();
    }
    shown.textContent = fleet.loaded ? `${rows.length} of ${fleet.systems.length} systems shown` : 'Loading…';
    err.textContent = fleet.error ? `Could not load the fleet: ${fleet.error}` : '';
    syncActions(tbody);
  }
  /** A status patch re-renders only its rows, unless a phase filter or sort could move them. */
  const render = (changed?: SystemRow[]) => {
    renderNodes();
    if (!changed || filters.phase || filters.sort === 'phase' || filters.sort === 'updated' || filters.q) return renderSystems();
    for (const s of changed) {
      const tr = [...tbody.rows].find((r) => r.dataset.node === s.node && r.dataset.name === s.name);
      if (!tr) continue;
      const hadFocus = tr.contains(document.activeElement) ? (document.activeElement as HTMLElement).dataset.act : undefined;
      const fresh = systemRow(s, explain(s, nodeOf(s.node)));
      tr.replaceWith(fresh);
      syncActions(fresh);
      if (hadFocus) fresh.querySelector<HTMLElement>(`[data-act="${hadFocus}"]`)?.focus();
    }
  };
  render();
  ensureFleet();
  const off = onFleet(render);
  return () => off();
}
