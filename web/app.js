// The anybios dashboard: fleet nodes and systems from the REST API, kept live by /api/events (SSE).
// Authentication is CouchDB's own session cookie (POST /db/_session), so the page can do exactly what
// the logged-in user could do in Fauxton, nothing more.
const $ = (sel) => document.querySelector(sel);
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

async function api(method, path, body) {
  const res = await fetch(path, { method, credentials: 'same-origin', headers: body ? { 'Content-Type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(data.reason || `HTTP ${res.status}`), { status: res.status });
  return data;
}

function ago(iso) {
  if (!iso) return '-';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

async function render() {
  try {
    const [nodes, systems] = await Promise.all([api('GET', '/api/nodes'), api('GET', '/api/systems')]);
    $('#nodes tbody').innerHTML = nodes.map((n) => `<tr><td>${esc(n.id)}</td><td>${n.online ? 'yes' : 'no'}</td><td>${esc(ago(n.heartbeat))}</td><td>${n.systems}</td><td>${esc(Object.entries(n.phases).map(([p, c]) => `${p}=${c}`).join(' '))}</td></tr>`).join('');
    $('#systems tbody').innerHTML = systems.map((s) => `<tr>
      <td>${esc(s.node)}</td><td>${esc(s.name)}</td><td>${esc(s.kind)}</td><td>${esc(s.state)}</td>
      <td class="phase-${esc(s.phase)}">${esc(s.phase ?? 'unknown')}${s.conflict ? ' ⚠ conflict' : ''}</td>
      <td>${s.current ? 'yes' : 'no'}</td><td>${esc(s.pid ?? '-')}</td><td>${esc(s.message ?? '')}</td>
      <td><button data-node="${esc(s.node)}" data-name="${esc(s.name)}" data-action="${s.state === 'running' ? 'stop' : 'start'}">${s.state === 'running' ? 'stop' : 'start'}</button>
          <button data-node="${esc(s.node)}" data-name="${esc(s.name)}" data-action="restart">restart</button></td></tr>`).join('');
    $('#error').textContent = '';
  } catch (err) {
    if (err.status === 401) return showLogin();
    $('#error').textContent = err.message;
  }
}

let events;
let timer;
function live() {
  events?.close();
  events = new EventSource('/api/events');
  events.onopen = () => ($('#live').textContent = 'live');
  events.onerror = () => ($('#live').textContent = 'reconnecting…');
  const refresh = () => { clearTimeout(timer); timer = setTimeout(render, 100); };
  for (const type of ['system', 'status', 'node', 'volume', 'template', 'reset']) events.addEventListener(type, refresh);
}

function showLogin() {
  events?.close();
  $('#fleet').hidden = true;
  $('#login').hidden = false;
  $('#logout').hidden = true;
  $('#who').textContent = '';
}

async function start() {
  const session = await api('GET', '/db/_session').catch(() => ({}));
  if (!session.userCtx?.name) return showLogin();
  $('#who').textContent = session.userCtx.name;
  $('#logout').hidden = false;
  $('#login').hidden = true;
  $('#fleet').hidden = false;
  await render();
  live();
}

$('#login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  try {
    await api('POST', '/db/_session', { name: form.get('name'), password: form.get('password') });
    $('#login-error').textContent = '';
    await start();
  } catch (err) {
    $('#login-error').textContent = err.message;
  }
});
$('#logout').addEventListener('click', async () => {
  await api('DELETE', '/db/_session').catch(() => {});
  showLogin();
});
$('#systems').addEventListener('click', async (e) => {
  const b = e.target.closest('button[data-action]');
  if (!b) return;
  b.disabled = true;
  try {
    await api('POST', `/api/nodes/${encodeURIComponent(b.dataset.node)}/systems/${encodeURIComponent(b.dataset.name)}/${b.dataset.action}`);
  } catch (err) {
    $('#error').textContent = err.message;
  } finally {
    b.disabled = false;
  }
});
start();
