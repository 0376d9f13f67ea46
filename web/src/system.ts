// A system's page: live status (phase in words, restarts, exit code, disk used), a log tail that
// follows, start/stop/restart/clone/delete, the spec as a schema form or JSON, its revision history with
// restore, and — when two sites edited it apart — its conflicting versions side by side (keep or merge).
// Also the "new system" page (blank or a clone).
import { api, ApiFailure, systemPath, type FieldError } from './api.ts';
import { announce, bytes, confirmDialog, h, replace, since, newId } from './dom.ts';
import { onEvent, syncActions } from './live.ts';
import { ensureFleet, explain, fleet, nodeOf, onFleet } from './store.ts';
import { schemaForm, type SchemaForm } from './form.ts';
import { systemSchema } from '../../ddocs/schemas/system.ts';
import { systemAction, deleteSystem, pendingReason } from './actions.ts';
import { phaseBadge } from './fleet.ts';
import { go, canReadCatalog, canWrite } from './session.ts';

type Doc = Record<string, any>;
const show = (v: unknown) => (v === undefined ? '—' : JSON.stringify(v));
const href = (node: string, name: string) => `#/nodes/${encodeURIComponent(node)}/systems/${encodeURIComponent(name)}`;

/** The catalog's template names as suggestions for the template field (when the user may read it). */
function suggestTemplates(form: SchemaForm): void {
  if (!canReadCatalog()) return; // asking would only earn a 403
  api<{ name: string }[]>('GET', '/api/templates').then((ts) => form.suggest('/template', ts.map((t) => t.name)), () => {});
}

/** Saves through the API; a 400's field errors go to their fields. Returns the API answer or null. */
async function save(form: SchemaForm, method: 'POST' | 'PUT', path: string, doc: Doc): Promise<{ rev: string } | null> {
  try {
    return await api(method, path, doc);
  } catch (err) {
    const f = err as ApiFailure;
    if (f.details?.length) form.showErrors(f.details as FieldError[]);
    else form.showErrors([{ path: '/', message: f.message }]);
    return null;
  }
}

export function systemView(page: HTMLElement, params: Record<string, string>): () => void {
  const { node, name } = params;
  let spec: Doc | null = null;
  let status: Doc | null = null;
  let form: SchemaForm | null = null;
  const offs: (() => void)[] = [];

  const title = h('h1', null, name);
  const sub = h('p', { class: 'muted' });
  const actions = h('div', { class: 'action-bar' });
  const notice = h('div', { class: 'notice', role: 'status', hidden: true });
  const statusBox = h('dl', { class: 'status-grid' });
  const follow = h('input', { type: 'checkbox', id: newId('follow'), checked: true });
  const log = h('pre', { class: 'log', tabindex: '0', role: 'log', 'aria-label': `Log of ${name}`, 'aria-live': 'off' });
  const conflictBox = h('section', { class: 'conflicts', hidden: true, 'aria-labelledby': 'conf-h' });
  const editBox = h('section', { 'aria-labelledby': 'edit-h' });
  const historyBox = h('div', { class: 'history' });
  const err = h('p', { class: 'error', role: 'alert' });
  page.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Fleet'), ' / ', `${node} / ${name}`),
    title, sub, err, notice, actions,
    h('section', { 'aria-labelledby': 'status-h' }, h('h2', { id: 'status-h' }, 'Status'), statusBox),
    h('section', { 'aria-labelledby': 'log-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'log-h' }, 'Log'), h('div', { class: 'check' }, follow, h('label', { for: follow.id }, 'Follow'))),
      log),
    conflictBox,
    editBox,
    h('section', { 'aria-labelledby': 'hist-h' }, h('div', { class: 'section-head' }, h('h2', { id: 'hist-h' }, 'History'), h('button', { type: 'button', on: { click: () => void loadHistory() } }, 'Show revisions')), historyBox),
  );

  function renderHead() {
    if (!spec) return;
    const w = explain({ phase: status?.phase ?? null, current: !!status && status.observedRev === spec._rev, state: spec.state, message: status?.message ?? null }, nodeOf(node));
    replace(sub, `${spec.kind} system on node `, h('strong', null, node), ` · template ${spec.template} · wanted ${spec.state}`, spec.description ? h('span', { class: 'desc' }, ` · ${spec.description}`) : null);
    const toggle = spec.state === 'running' ? 'stop' : 'start';
    const focused = actions.contains(document.activeElement) ? (document.activeElement as HTMLElement).dataset.act : undefined;
    replace(actions,
      phaseBadge(w.word, w.cls, w.why),
      canWrite(node) ? [
        h('button', { type: 'button', 'data-act': toggle, class: toggle === 'stop' ? 'danger' : 'primary', on: { click: () => void systemAction(node, name, spec!.state, toggle) } }, toggle === 'stop' ? `Stop ${name}` : `Start ${name}`),
        h('button', { type: 'button', 'data-act': 'restart', on: { click: () => void systemAction(node, name, spec!.state, 'restart') } }, spec.state === 'stopped' ? `Restart (starts) ${name}` : `Restart ${name}`),
        h('a', { class: 'button', href: `#/new?clone=${encodeURIComponent(`${node}/${name}`)}` }, `Clone ${name}`),
        h('button', { type: 'button', 'data-act': 'delete', class: 'danger', on: { click: async () => { if (await deleteSystem(node, name, spec!._rev)) go('#/'); } } }, `Delete ${name}`),
      ] : null,
    );
    syncActions(actions);
    // Status events re-render this bar: keep the keyboard where it was (start ↔ stop count as one).
    if (focused) actions.querySelector<HTMLElement>(`[data-act="${focused === 'start' || focused === 'stop' ? toggle : focused}"]`)?.focus();
  }

  function renderStatus() {
    if (!spec) return;
    const s = status;
    const item = (k: string, v: Node | string) => [h('dt', null, k), h('dd', null, v)];
    const pending = pendingReason(node);
    replace(statusBox,
      item('Phase', s ? String(s.phase) : 'none reported'),
      item('Wanted', String(spec.state)),
      item('Applied', !s ? '—' : s.observedRev === spec._rev ? 'the current spec' : `an older spec (${s.observedRev ?? '—'}); ${pending ?? 'the agent is applying the change'}`),
      item('PID', s?.pid == null ? '—' : String(s.pid)),
      item('Restarts', s?.restarts == null ? '—' : String(s.restarts)),
      item('Exit code', s?.exitCode == null ? '—' : String(s.exitCode)),
      item('Disk used', bytes(s?.diskUsed)),
      item('Updated', s?.updated ? since(s.updated) : '—'),
      item('Message', s?.message ? `${s.code ? `${s.code}: ` : ''}${s.message}` : '—'),
    );
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    const text = s?.logTail ? String(s.logTail) : '(no output reported)';
    if (log.textContent !== text) {
      log.textContent = text;
      if (follow.checked || atBottom) log.scrollTop = log.scrollHeight;
    }
  }

  function renderEdit() {
    if (!spec) return;
    form = schemaForm(systemSchema, spec, { type: 'system', nameLocked: true, label: `system ${name}` });
    const saveBtn = h('button', { class: 'primary', 'data-act': 'save' }, 'Save changes');
    const f = h('form', { novalidate: true, 'aria-labelledby': 'edit-h' }, form.el, canWrite(node)
      ? h('div', { class: 'actions' }, saveBtn, h('button', { type: 'button', on: { click: () => { form!.set(spec!); form!.showErrors([]); } } }, 'Discard changes'))
      : h('p', { class: 'muted' }, 'Read only: you may not change systems on this node.'));
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (form!.check().length) return;
      saveBtn.disabled = true;
      const r = await save(form!, 'PUT', systemPath(node, name), form!.value()!);
      saveBtn.disabled = false;
      if (r) {
        announce(`Saved ${name}.${pendingReason(node) ? ` ${pendingReason(node)}.` : ''}`);
        await reload(true);
      }
    });
    replace(editBox, h('h2', { id: 'edit-h' }, 'Spec'), f);
    suggestTemplates(form);
    syncActions(editBox);
  }

  /** Reads spec and status again; unsaved edits in the form are kept (a notice says if the spec moved on). */
  async function reload(force = false) {
    try {
      const r = await api<{ spec: Doc; status: Doc | null }>('GET', systemPath(node, name));
      const keepEdits = !force && !!form?.dirty();
      const moved = spec !== null && r.spec._rev !== spec._rev;
      spec = r.spec;
      status = r.status;
      err.textContent = '';
      renderHead();
      renderStatus();
      if (keepEdits) {
        if (moved) showChanged(String(r.spec._rev));
        return;
      }
      notice.hidden = true;
      // The same revision: leave the form as it is (a JSON view stays open, the focus stays put).
      if (force || moved || !form) renderEdit();
      if ((spec._conflicts ?? []).length) void loadConflicts();
      else conflictBox.hidden = true;
    } catch (e) {
      err.textContent = (e as ApiFailure).status === 404 ? `System ${name} on node ${node} does not exist (any more).` : `Could not load ${name}: ${(e as Error).message}`;
    }
  }

  function showChanged(rev: string) {
    notice.hidden = false;
    replace(notice, `${name} was changed elsewhere (revision ${rev}) while you edit it; saving now would be refused. `, h('button', { type: 'button', on: { click: () => void reload(true) } }, 'Load the new version (drops your edits)'));
  }

  async function loadHistory() {
    replace(historyBox, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const entries = await api<{ rev: string; status: string; doc?: Doc; changes: { path: string; kind: string; before?: unknown; after?: unknown }[] }[]>('GET', `${systemPath(node, name)}/history`);
      replace(historyBox, h('ol', { class: 'revisions' }, entries.map((e, i) => h('li', null,
        h('div', { class: 'section-head' }, h('code', null, e.rev), i === 0 ? h('span', { class: 'badge phase-running' }, 'current') : e.status !== 'available' ? h('span', { class: 'muted' }, e.status) : null,
          i > 0 && e.doc ? h('button', { type: 'button', class: 'small', 'data-act': 'restore', 'aria-label': `Restore revision ${e.rev}`, on: { click: () => void restore(e.rev) } }, 'Restore') : null),
        e.changes.length ? h('ul', { class: 'diff' }, e.changes.map((c) => h('li', { class: `d-${c.kind}` }, h('code', null, c.path), ': ', c.kind === 'added' ? `added ${show(c.after)}` : c.kind === 'removed' ? `removed ${show(c.before)}` : `${show(c.before)} → ${show(c.after)}`))) : h('p', { class: 'muted' }, e.status === 'available' ? 'no earlier revision to compare' : 'content no longer stored (compacted)'),
      ))));
      syncActions(historyBox);
    } catch (e) {
      replace(historyBox, h('p', { class: 'error' }, `Could not load the history: ${(e as Error).message}`));
    }
  }

  async function restore(rev: string) {
    if (!(await confirmDialog(`Restore ${name}?`, `Make revision ${rev} of ${name} on node ${node} the current spec again? It is written as a new revision.`, `Restore ${name}`))) return;
    try {
      const r = await api<{ unchanged?: boolean }>('POST', `${systemPath(node, name)}/restore`, { rev });
      announce(r.unchanged ? `${name} already has that content.` : `Restored ${name} to ${rev}.`);
      await reload(true);
      await loadHistory();
    } catch (e) {
      announce(`Could not restore: ${(e as Error).message}`, 'error');
    }
  }

  async function loadConflicts() {
    conflictBox.hidden = false;
    replace(conflictBox, h('h2', { id: 'conf-h' }, 'Conflict'), h('p', { class: 'muted' }, 'Loading…'));
    try {
      const v = await api<{ winner: { rev: string; doc: Doc }; others: { rev: string; doc: Doc; diff: { path: string; kind: string; winner?: unknown; other?: unknown }[] }[] }>('GET', `${systemPath(node, name)}/conflicts`);
      const revs = [v.winner.rev, ...v.others.map((o) => o.rev)];
      const resolve = async (body: Doc, what: string) => {
        if (!(await confirmDialog(`Resolve the conflict of ${name}?`, `${what} The other versions of ${name} on node ${node} are deleted (they stay in the history).`, `Resolve ${name}`))) return;
        try {
          await api('POST', `${systemPath(node, name)}/conflicts/resolve`, { ...body, revs });
          announce(`Resolved the conflict of ${name}.`);
          await reload(true);
        } catch (e) {
          announce(`Could not resolve: ${(e as Error).message}`, 'error');
        }
      };
      const col = (title: string, leaf: { rev: string; doc: Doc }, diff?: { path: string; winner?: unknown; other?: unknown }[]) => h('div', { class: 'leaf' },
        h('h3', null, title, ' ', h('code', null, leaf.rev)),
        diff ? h('ul', { class: 'diff' }, diff.map((d) => h('li', null, h('code', null, d.path), `: the winner has ${show(d.winner)}, this version ${show(d.other)}`))) : null,
        h('pre', { class: 'json-view' }, JSON.stringify(leaf.doc, null, 2)),
        h('button', { type: 'button', 'data-act': 'keep', 'aria-label': `Keep version ${leaf.rev} of ${name}`, on: { click: () => void resolve({ keep: leaf.rev }, `Keep version ${leaf.rev}.`) } }, 'Keep this version'));
      const merged = h('textarea', { class: 'json', rows: 12, spellcheck: 'false', id: newId('merged') });
      merged.value = JSON.stringify(v.winner.doc, null, 2);
      const mergeErr = h('p', { class: 'field-error', role: 'alert' });
      replace(conflictBox,
        h('h2', { id: 'conf-h' }, 'Conflict'),
        h('p', null, `${name} was edited at two sites while they were apart. The node runs CouchDB's winner until you decide.`),
        h('div', { class: 'side-by-side' }, col('Winner', v.winner), v.others.map((o, i) => col(`Other ${i + 1}`, o, o.diff.map((d) => ({ path: d.path, winner: d.winner, other: d.other }))))),
        h('label', { for: merged.id }, 'Or write a merged version (JSON)'), merged, mergeErr,
        h('button', { type: 'button', 'data-act': 'merge', on: { click: () => {
          let doc: Doc;
          try { doc = JSON.parse(merged.value); } catch (e) { mergeErr.textContent = `Not valid JSON: ${(e as Error).message}`; return; }
          mergeErr.textContent = '';
          void resolve({ merged: { ...doc, _rev: v.winner.rev } }, 'Save the merged version.');
        } } }, 'Save merged version'));
      syncActions(conflictBox);
    } catch (e) {
      replace(conflictBox, h('h2', { id: 'conf-h' }, 'Conflict'), h('p', { class: 'error' }, `Could not load the versions: ${(e as Error).message}`));
    }
  }

  offs.push(onEvent((e) => {
    if (!e) return void reload();
    if (e.node !== node || e.name !== name) return;
    if (e.type === 'status') {
      status = e.deleted ? null : e.doc;
      renderStatus();
      renderHead();
    } else if (e.type === 'system') {
      if (e.deleted) {
        notice.hidden = false;
        replace(notice, `System ${name} was deleted elsewhere.`);
      } else if (form?.dirty()) showChanged(e.rev);
      else void reload();
    }
  }));
  offs.push(onFleet(() => {
    renderHead();
    renderStatus();
  }));
  follow.addEventListener('change', () => follow.checked && (log.scrollTop = log.scrollHeight));
  ensureFleet();
  void reload();
  return () => offs.forEach((o) => o());
}

const NEW_SYSTEM: Doc = { kind: 'app', template: 'host', state: 'running', command: ['/bin/sh', '-c', 'while :; do date; sleep 10; done'], network: 'none', restart: 'on-failure' };

export function newSystemView(page: HTMLElement, _p: Record<string, string>, query: URLSearchParams): () => void {
  const clone = query.get('clone');
  const nodeId = newId('node');
  const nodeSel = h('select', { id: nodeId, required: true, 'aria-describedby': `${nodeId}-err` });
  const nodeErr = h('p', { class: 'field-error', id: `${nodeId}-err` });
  const fillNodes = () => {
    const cur = nodeSel.value || query.get('node') || clone?.split('/')[0] || '';
    replace(nodeSel, fleet.nodes.map((n) => h('option', { value: n.id }, `${n.id}${n.online ? '' : n.heartbeat ? ' (offline)' : ' (never connected)'}`)));
    if (fleet.nodes.some((n) => n.id === cur)) nodeSel.value = cur;
  };
  fillNodes();
  const off = onFleet(fillNodes);
  const form = schemaForm(systemSchema, NEW_SYSTEM, { type: 'system', label: 'new system' });
  suggestTemplates(form);
  const saveBtn = h('button', { class: 'primary', 'data-act': 'create' }, 'Create system');
  const f = h('form', { novalidate: true, 'aria-labelledby': 'new-h' },
    h('div', { class: 'field' }, h('label', { for: nodeId }, 'node *'), nodeSel, nodeErr),
    form.el, h('div', { class: 'actions' }, saveBtn, h('a', { class: 'button', href: '#/' }, 'Cancel')));
  page.append(h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Fleet'), ' / new'), h('h1', { id: 'new-h' }, clone ? `Clone ${clone.split('/')[1] ?? ''}` : 'New system'), f);
  if (clone) {
    const [cn, cs] = clone.split('/');
    api<{ spec: Doc }>('GET', systemPath(cn, cs)).then((r) => {
      const { _id, _rev, _conflicts, restartedAt, ...rest } = r.spec;
      void _id; void _rev; void _conflicts; void restartedAt;
      form.set({ ...rest, name: `${cs}-copy`.slice(0, 63) });
    }, (e) => announce(`Could not load ${cs} to clone it: ${(e as Error).message}`, 'error'));
  }
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    nodeErr.textContent = nodeSel.value ? '' : 'pick the node the system runs on';
    const errs = form.check();
    if (errs.length || !nodeSel.value) return;
    saveBtn.disabled = true;
    const doc = form.value()!;
    const r = await save(form, 'POST', `/api/nodes/${encodeURIComponent(nodeSel.value)}/systems`, doc);
    saveBtn.disabled = false;
    if (!r) return;
    const pending = pendingReason(nodeSel.value);
    announce(`Created ${doc.name} on node ${nodeSel.value}.${pending ? ` Note: ${pending}.` : ''}`);
    off();
    go(href(nodeSel.value, String(doc.name)));
  });
  syncActions(f);
  ensureFleet();
  return () => off();
}
