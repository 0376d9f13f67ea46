// The other pages: templates (host, dir, tar with a rootfs upload and progress), volumes per node,
// nodes (enrol one: its agent config is shown once), site links, and the fleet's conflicts.
import { api, ApiFailure, enc, type NodeRow } from './api.ts';
import { announce, bytes, confirmDialog, h, newId, replace, since } from './dom.ts';
import { onEvent, syncActions } from './live.ts';
import { ensureFleet, fleet, loadFleet, onFleet } from './store.ts';
import { nodeCard } from './fleet.ts';
import { canReadCatalog, canWrite, currentUser } from './session.ts';
import { docErrors } from './form.ts';

type Doc = Record<string, any>;

/** A labelled input with its error line; `name` is the document field it edits. */
function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string) {
  const id = newId('p');
  input.id = id;
  const err = h('p', { class: 'field-error', id: `${id}-err` });
  input.setAttribute('aria-describedby', `${id}-err${hint ? ` ${id}-hint` : ''}`);
  return { el: h('div', { class: 'field', 'data-path': `/${input.name}` }, h('label', { for: id }, label), input, hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null, err), err, input };
}

/** Puts API/rules errors at the fields of a small form (by `name`); the rest into `rest`. */
function showFieldErrors(form: HTMLFormElement, errs: { path: string; message: string }[], rest: HTMLElement) {
  for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
  for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
  const left: string[] = [];
  const nameWrong = errs.some((e) => e.path === '/name');
  for (const e of errs) {
    if ((e.path === '/_id' || e.path === '/type') && nameWrong) continue; // made from the name: its message says it
    const path = e.path === '/_id' || e.path === '/type' ? '/name' : e.path;
    const wrap = form.querySelector(`.field[data-path="${CSS.escape(path.split('/').slice(0, 2).join('/'))}"]`);
    const out = wrap?.querySelector('.field-error');
    if (out) {
      out.textContent = (out.textContent ? `${out.textContent}; ` : '') + e.message;
      wrap!.querySelector('input,select,textarea')?.setAttribute('aria-invalid', 'true');
    } else if (!out) left.push(`${e.path} ${e.message}`);
  }
  rest.textContent = left.join('; ');
  (form.querySelector('[aria-invalid]') as HTMLElement | null)?.focus();
}

/** A select of the fleet's nodes; `fill()` refreshes it from the fleet, keeping the choice. */
function nodeSelect(onChange: (node: string) => void): { sel: HTMLSelectElement; fill: () => void } {
  const sel = h('select', { name: 'node' });
  const fill = () => {
    const cur = sel.value;
    replace(sel, fleet.nodes.map((n) => h('option', { value: n.id }, n.id)));
    if (fleet.nodes.some((n) => n.id === cur)) sel.value = cur;
  };
  fill();
  sel.addEventListener('change', () => onChange(sel.value));
  return { sel, fill };
}

// ---- templates -------------------------------------------------------------------------------

async function sha256Hex(file: File): Promise<string | null> {
  if (!globalThis.crypto?.subtle) return null; // only in a secure context (https or localhost)
  const d = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** PUTs the rootfs as the template's attachment straight to CouchDB (with the session cookie), with progress. */
function uploadRootfs(name: string, rev: string, file: File, progress: HTMLProgressElement): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/db/anybios/${enc(`template:${name}`)}/rootfs.tar?rev=${enc(rev)}`);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-Type', file.name.endsWith('gz') ? 'application/gzip' : 'application/x-tar');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        progress.max = e.total;
        progress.value = e.loaded;
        progress.textContent = `${Math.round((100 * e.loaded) / e.total)} %`;
      }
    };
    xhr.onload = () => {
      if (xhr.status < 300) return resolve();
      let reason = `HTTP ${xhr.status}`;
      try {
        reason = JSON.parse(xhr.responseText).reason ?? reason;
      } catch {
        // not JSON (a proxy's page): keep the status
      }
      reject(new Error(`the upload was refused: ${reason}`));
    };
    xhr.onerror = () => reject(new Error('the upload was cut off (server unreachable?)'));
    xhr.send(file);
  });
}

export function templatesView(page: HTMLElement): () => void {
  const list = h('tbody');
  const err = h('p', { class: 'error', role: 'alert' });
  const mayWrite = canWrite();
  const load = async () => {
    if (!canReadCatalog()) return void (err.textContent = 'You may not read the catalog of templates (it is for operators and nodes).');
    try {
      const ts = await api<Doc[]>('GET', '/api/templates');
      replace(list, ts.map((t) => h('tr', null,
        h('th', { scope: 'row', 'data-label': 'Template' }, t.name),
        h('td', { 'data-label': 'Source' }, t.source),
        h('td', { 'data-label': 'Where' }, t.source === 'dir' ? t.path : t.source === 'tar' ? (t._attachments?.['rootfs.tar'] ? `rootfs.tar, ${bytes(t._attachments['rootfs.tar'].length)}` : 'rootfs.tar not uploaded yet') : 'this machine\'s root, read-only'),
        h('td', { 'data-label': 'Description' }, t.description ?? ''),
        h('td', { class: 'actions' }, mayWrite ? h('button', { type: 'button', class: 'danger', 'data-act': 'delete', 'aria-label': `Delete template ${t.name}`, on: { click: () => void remove(t) } }, 'Delete') : null))));
      err.textContent = '';
      syncActions(list);
    } catch (e) {
      err.textContent = `Could not load the templates: ${(e as Error).message}`;
    }
  };
  const remove = async (t: Doc) => {
    if (!(await confirmDialog(`Delete template ${t.name}?`, `Delete template ${t.name} from the catalog? Systems using it can no longer be made on new nodes.`, `Delete ${t.name}`, true))) return;
    try {
      await api('DELETE', `/api/templates/${enc(t.name)}`);
      announce(`Deleted template ${t.name}.`);
    } catch (e) {
      announce(`Could not delete ${t.name}: ${(e as Error).message}`, 'error');
    }
  };

  const name = field('name *', h('input', { name: 'name', autocomplete: 'off' }), 'lowercase letters, digits and -');
  const source = field('source *', h('select', { name: 'source' }, ['tar', 'dir', 'host'].map((s) => h('option', { value: s }, s))));
  const path = field('path (dir)', h('input', { name: 'path', autocomplete: 'off' }), 'a directory under each node\'s template roots');
  const description = field('description', h('input', { name: 'description', autocomplete: 'off' }));
  const file = field('rootfs (tar)', h('input', { name: 'file', type: 'file', accept: '.tar,.tar.gz,.tgz,application/x-tar,application/gzip' }), 'a tar of the root filesystem (optionally gzip); its sha256 is computed here');
  const sha = field('sha256 (tar)', h('input', { name: 'sha256', autocomplete: 'off' }), 'filled in from the file when the browser can hash it (https or localhost)');
  const progress = h('progress', { max: 1, value: 0, 'aria-label': 'Upload progress', hidden: true });
  const rest = h('p', { class: 'error', role: 'alert' });
  const btn = h('button', { class: 'primary', 'data-act': 'create' }, 'Add template');
  const form = h('form', { novalidate: true, 'aria-labelledby': 'tpl-new-h' }, h('h2', { id: 'tpl-new-h' }, 'Add a template'), name.el, source.el, path.el, file.el, sha.el, description.el, progress, rest, btn);
  const syncSource = () => {
    const s = source.input.value;
    path.el.hidden = s !== 'dir';
    file.el.hidden = s !== 'tar';
    sha.el.hidden = s !== 'tar';
  };
  source.input.addEventListener('change', syncSource);
  syncSource();
  file.input.addEventListener('change', async () => {
    const f = (file.input as HTMLInputElement).files?.[0];
    if (!f) return;
    (sha.input as HTMLInputElement).value = 'hashing…';
    (sha.input as HTMLInputElement).value = (await sha256Hex(f)) ?? '';
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const s = source.input.value;
    const doc: Doc = { _id: `template:${name.input.value}`, type: 'template', name: name.input.value, source: s };
    if (s === 'dir' && path.input.value) doc.path = path.input.value;
    if (s === 'tar' && sha.input.value) doc.sha256 = sha.input.value.trim();
    if (description.input.value) doc.description = description.input.value;
    const f = (file.input as HTMLInputElement).files?.[0];
    const errs = docErrors(doc);
    if (s === 'tar' && !f) errs.push({ path: '/file', message: 'choose the rootfs tar to upload' });
    showFieldErrors(form, errs, rest);
    if (errs.length) return;
    btn.disabled = true;
    try {
      const { _id, type, ...body } = doc;
      void _id; void type;
      const r = await api<{ rev: string }>('POST', '/api/templates', body);
      if (s === 'tar' && f) {
        progress.hidden = false;
        await uploadRootfs(doc.name, r.rev, f, progress);
      }
      announce(`Added template ${doc.name}.`);
      form.reset();
      syncSource();
      progress.hidden = true;
      void load();
    } catch (e2) {
      const fail = e2 as ApiFailure;
      showFieldErrors(form, fail.details?.length ? fail.details : [{ path: '/', message: fail.message }], rest);
    } finally {
      btn.disabled = false;
    }
  });
  page.append(h('h1', null, 'Templates'), err,
    h('table', { class: 'responsive' }, h('thead', null, h('tr', null, ['Template', 'Source', 'Where', 'Description'].map((t) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), list),
    mayWrite ? form : h('p', { class: 'muted' }, 'Only admins and operators add templates.'));
  syncActions(form);
  void load();
  const off = onEvent((ev) => (!ev || ev.type === 'template') && void load());
  return () => off();
}

// ---- volumes ---------------------------------------------------------------------------------

export function volumesView(page: HTMLElement): () => void {
  const list = h('tbody');
  const err = h('p', { class: 'error', role: 'alert' });
  let node = '';
  const { sel, fill: fillNodes } = nodeSelect((n) => { node = n; void load(); });
  const selId = newId('vn');
  sel.id = selId;
  const load = async () => {
    if (!node) return replace(list, h('tr', null, h('td', { colspan: '3' }, fleet.loaded ? 'No nodes.' : 'Loading…')));
    try {
      const vs = await api<Doc[]>('GET', `/api/nodes/${enc(node)}/volumes`);
      replace(list, vs.length ? vs.map((v) => h('tr', null,
        h('th', { scope: 'row', 'data-label': 'Volume' }, v.name),
        h('td', { 'data-label': 'Description' }, v.description ?? ''),
        h('td', { class: 'actions' }, canWrite(node) ? h('button', { type: 'button', class: 'danger', 'data-act': 'delete', 'aria-label': `Delete volume ${v.name} on ${node}`, on: { click: () => void remove(v.name) } }, 'Delete') : null))) : h('tr', null, h('td', { colspan: '3' }, `No volumes on ${node}.`)));
      err.textContent = '';
      syncActions(list);
    } catch (e) {
      err.textContent = `Could not load the volumes: ${(e as Error).message}`;
    }
  };
  const remove = async (name: string) => {
    if (!(await confirmDialog(`Delete volume ${name}?`, `Delete volume ${name} on node ${node}? The node removes its data directory.`, `Delete ${name}`, true))) return;
    try {
      await api('DELETE', `/api/nodes/${enc(node)}/volumes/${enc(name)}`);
      announce(`Deleted volume ${name}.`);
    } catch (e) {
      announce(`Could not delete ${name}: ${(e as Error).message}`, 'error');
    }
  };
  const name = field('name *', h('input', { name: 'name', autocomplete: 'off' }), 'lowercase letters, digits and -');
  const description = field('description', h('input', { name: 'description', autocomplete: 'off' }));
  const rest = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { novalidate: true, 'aria-labelledby': 'vol-new-h' }, h('h2', { id: 'vol-new-h' }, 'Add a volume'), name.el, description.el, rest, h('button', { class: 'primary', 'data-act': 'create' }, 'Add volume'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const doc: Doc = { _id: `volume:${name.input.value}`, type: 'volume', name: name.input.value };
    if (description.input.value) doc.description = description.input.value;
    const errs = docErrors(doc);
    showFieldErrors(form, errs, rest);
    if (errs.length || !node) return;
    try {
      await api('POST', `/api/nodes/${enc(node)}/volumes`, { name: doc.name, ...(doc.description ? { description: doc.description } : {}) });
      announce(`Added volume ${doc.name} on ${node}.`);
      form.reset();
      void load();
    } catch (e2) {
      const f = e2 as ApiFailure;
      showFieldErrors(form, f.details?.length ? f.details : [{ path: '/', message: f.message }], rest);
    }
  });
  page.append(h('h1', null, 'Volumes'), h('div', { class: 'ctl' }, h('label', { for: selId }, 'Node'), sel), err,
    h('table', { class: 'responsive' }, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Volume'), h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), list), form);
  const refresh = () => {
    fillNodes();
    if (!node && sel.value) {
      node = sel.value;
      void load();
    }
  };
  refresh();
  ensureFleet();
  syncActions(form);
  const offs = [onFleet(refresh), onEvent((ev) => (!ev || (ev.type === 'volume' && ev.node === node)) && void load())];
  return () => offs.forEach((o) => o());
}

// ---- nodes -----------------------------------------------------------------------------------

export function nodesView(page: HTMLElement): () => void {
  const list = h('ul', { class: 'node-cards', 'aria-label': 'Nodes' });
  const admin = currentUser()?.admin ?? false;
  const render = () => {
    replace(list, fleet.nodes.map((n: NodeRow) => {
      const card = nodeCard(n);
      if (admin) card.append(h('button', { type: 'button', class: 'danger small', 'data-act': 'remove', 'aria-label': `Remove node ${n.id}`, on: { click: () => void remove(n.id) } }, 'Remove'));
      return card;
    }));
    syncActions(list);
  };
  const remove = async (id: string) => {
    if (!(await confirmDialog(`Remove node ${id}?`, `Remove node ${id}? Its database (every system, volume and status in it) and its credentials are deleted; its agent can no longer connect.`, `Remove ${id}`, true))) return;
    try {
      await api('DELETE', `/api/nodes/${enc(id)}`);
      announce(`Removed node ${id}.`);
      void loadFleet();
    } catch (e) {
      announce(`Could not remove ${id}: ${(e as Error).message}`, 'error');
    }
  };
  const id = field('node id *', h('input', { name: 'id', autocomplete: 'off' }), 'lowercase letters, digits and -; usually the machine\'s hostname');
  const out = h('div', { class: 'enrolled', 'aria-live': 'polite' });
  const rest = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { novalidate: true, 'aria-labelledby': 'enrol-h' }, h('h2', { id: 'enrol-h' }, 'Enrol a node'), id.el, rest, h('button', { class: 'primary', 'data-act': 'enrol' }, 'Enrol'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(out);
    const v = id.input.value.trim();
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(v)) return showFieldErrors(form, [{ path: '/id', message: 'must be a name: 1-63 of a-z, 0-9 and -, starting with a letter or digit' }], rest);
    showFieldErrors(form, [], rest);
    try {
      const r = await api<{ config: Doc }>('POST', '/api/nodes', { id: v });
      const text = JSON.stringify(r.config, null, 2);
      const pre = h('pre', { class: 'json-view', tabindex: '0', 'aria-label': `Agent config of ${v}` }, text);
      replace(out, h('p', null, h('strong', null, `Node ${v} is enrolled. Its agent config is shown this once`), ' — save it on the node (mode 0600) and run ', h('code', null, 'anybios agent --config FILE'), '. The password is not stored anywhere else.'), pre,
        h('button', { type: 'button', on: { click: () => navigator.clipboard?.writeText(text).then(() => announce('Copied.'), () => announce('Copy failed: select the text instead.', 'error')) } }, 'Copy config'));
      form.querySelector('input')!.value = '';
      void loadFleet();
    } catch (e2) {
      const f = e2 as ApiFailure;
      showFieldErrors(form, f.details?.length ? f.details : [{ path: '/', message: f.message }], rest);
    }
  });
  page.append(h('h1', null, 'Nodes'), list, admin ? form : h('p', { class: 'muted' }, 'Only server admins enrol nodes.'));
  render();
  syncActions(form);
  ensureFleet();
  const off = onFleet(render);
  return () => off();
}

// ---- site links ------------------------------------------------------------------------------

export function sitesView(page: HTMLElement): () => void {
  const list = h('tbody');
  const err = h('p', { class: 'error', role: 'alert' });
  const load = async () => {
    if (!currentUser()?.admin) return void (err.textContent = 'Site links are for server admins only.');
    try {
      const sites = await api<Doc[]>('GET', '/api/sites');
      replace(list, sites.length ? sites.map((s) => h('tr', null,
        h('th', { scope: 'row', 'data-label': 'Remote' }, s.url ?? s.id),
        h('td', { 'data-label': 'State' }, h('span', { class: `badge ${s.state === 'up' ? 'phase-running' : s.state === 'degraded' ? 'phase-pending' : 'phase-failed'}` }, String(s.state))),
        h('td', { 'data-label': 'Last sync' }, s.lastSync ? since(s.lastSync) : 'never'),
        h('td', { 'data-label': 'Pending' }, String(s.pending ?? '—')),
        h('td', { 'data-label': 'Last error' }, s.lastError ? String(typeof s.lastError === 'object' ? s.lastError.message ?? JSON.stringify(s.lastError) : s.lastError) : '—'),
        h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', 'data-act': 'unlink', 'aria-label': `Unlink ${s.url ?? s.id}`, on: { click: () => void unlink(s) } }, 'Unlink')))) : h('tr', null, h('td', { colspan: '6' }, 'No site links.')));
      err.textContent = '';
      syncActions(list);
    } catch (e) {
      err.textContent = (e as ApiFailure).status === 403 ? 'Site links are for server admins only.' : `Could not load the site links: ${(e as Error).message}`;
    }
  };
  const unlink = async (s: Doc) => {
    if (!(await confirmDialog(`Unlink ${s.url}?`, `Stop replicating with ${s.url}? Data already copied stays on both sides.`, 'Unlink', true))) return;
    try {
      await api('DELETE', `/api/sites/${enc(s.id)}`);
      announce(`Unlinked ${s.url}.`);
      void load();
    } catch (e) {
      announce(`Could not unlink: ${(e as Error).message}`, 'error');
    }
  };
  const url = field('remote URL *', h('input', { name: 'url', type: 'url', autocomplete: 'off', placeholder: 'http://site-b.example:8080' }));
  const user = field('remote admin user *', h('input', { name: 'user', autocomplete: 'off', value: 'admin' }));
  const password = field('remote admin password *', h('input', { name: 'password', type: 'password', autocomplete: 'off' }));
  const rest = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { novalidate: true, 'aria-labelledby': 'link-h' }, h('h2', { id: 'link-h' }, 'Link a site'), url.el, user.el, password.el, rest, h('button', { class: 'primary', 'data-act': 'link' }, 'Link'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('POST', '/api/sites', { url: url.input.value, user: user.input.value, password: password.input.value });
      (password.input as HTMLInputElement).value = '';
      announce(`Linked ${url.input.value}.`);
      void load();
    } catch (e2) {
      showFieldErrors(form, [{ path: '/', message: (e2 as Error).message }], rest);
    }
  });
  page.append(h('h1', null, 'Site links'), err, h('table', { class: 'responsive' }, h('thead', null, h('tr', null, ['Remote', 'State', 'Last sync', 'Pending', 'Last error'].map((t) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))), list), currentUser()?.admin ? form : h('p', { class: 'muted' }, 'Only server admins link sites.'));
  syncActions(form);
  void load();
  const timer = setInterval(() => void load(), 5_000); // link states are not events: poll while shown
  return () => clearInterval(timer);
}

// ---- conflicts -------------------------------------------------------------------------------

export function conflictsView(page: HTMLElement): () => void {
  const list = h('ul', { class: 'plain' });
  const load = async () => {
    try {
      const rows = await api<{ node: string | null; id: string; type: string; name: string; winner: string; conflicts: string[] }[]>('GET', '/api/conflicts');
      replace(list, rows.length ? rows.map((c) => h('li', null,
        c.type === 'system' && c.node ? h('a', { href: `#/nodes/${enc(c.node)}/systems/${enc(c.name)}` }, `${c.type} ${c.name}`) : `${c.type} ${c.name}`,
        ` ${c.node ? `on node ${c.node}` : 'in the catalog'}: ${c.conflicts.length + 1} versions`,
        c.type !== 'system' ? h('span', { class: 'muted' }, ` (resolve with anybios conflicts resolve ${c.name}${c.node ? ` --node ${c.node}` : ''})`) : null)) : h('li', null, 'No conflicts.'));
    } catch (e) {
      replace(list, h('li', { class: 'error' }, `Could not load the conflicts: ${(e as Error).message}`));
    }
  };
  page.append(h('h1', null, 'Conflicts'), h('p', { class: 'muted' }, 'Documents edited at two sites while they were apart. Each node runs CouchDB\'s winner until you decide.'), list);
  void load();
  const off = onEvent(() => void load());
  return () => off();
}
