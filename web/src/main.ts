// The anybios web console: routes (#/…), login with CouchDB's own session cookie (POST /db/_session),
// the header's fleet counts, the ticker that keeps every "… ago" current, and the offline banner.
// The page can do exactly what the logged-in user could do in Fauxton: the API acts with their cookie.
import { api, ApiFailure, onFailure, type Session } from './api.ts';
import { $, h, replace, tick } from './dom.ts';
import { retryNow, startLive, stopLive, syncActions } from './live.ts';
import { ensureFleet, fleet, onFleet, resetFleet } from './store.ts';
import { fleetView } from './fleet.ts';
import { systemView, newSystemView } from './system.ts';
import { conflictsView, nodesView, sitesView, templatesView, volumesView } from './pages.ts';

import { currentUser, setUser } from './session.ts';

type View = (page: HTMLElement, params: Record<string, string>, query: URLSearchParams) => (() => void) | void;
const routes: [RegExp, View, string][] = [
  [/^\/?$/, fleetView, 'Fleet'],
  [/^\/new$/, newSystemView, 'New system'],
  [/^\/nodes\/([^/]+)\/systems\/([^/]+)$/, systemView, 'System'],
  [/^\/templates$/, templatesView, 'Templates'],
  [/^\/volumes$/, volumesView, 'Volumes'],
  [/^\/nodes$/, nodesView, 'Nodes'],
  [/^\/sites$/, sitesView, 'Sites'],
  [/^\/conflicts$/, conflictsView, 'Conflicts'],
];

let cleanup: (() => void) | void;

let navigated = false;

function route(): void {
  if (!currentUser()) return;
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  const page = $('#page')!;
  cleanup?.();
  cleanup = undefined;
  replace(page);
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#nav a')) {
    const target = a.getAttribute('href')!.slice(1);
    const on = target === '/' ? path === '/' || path.startsWith('/nodes/') || path === '/new' : path === target;
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const [re, view, title] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    if (view === systemView) Object.assign(params, { node: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]) });
    document.title = `${params.name ?? title} · anybios`;
    cleanup = view(page, params, new URLSearchParams(qs ?? ''));
    syncActions(page);
    // After a navigation, screen readers and keyboards start at the new page's heading.
    if (navigated) {
      const h1 = page.querySelector<HTMLElement>('h1');
      if (h1) {
        h1.tabIndex = -1;
        h1.focus();
      }
    }
    return;
  }
  page.append(h('h1', null, 'Not found'), h('p', null, 'No such page. ', h('a', { href: '#/' }, 'Back to the fleet')));
}

function renderCounts(): void {
  const el = $('#counts')!;
  if (!fleet.loaded) return;
  const online = fleet.nodes.filter((n) => n.online).length;
  const byPhase: Record<string, number> = {};
  for (const s of fleet.systems) byPhase[s.phase ?? 'unknown'] = (byPhase[s.phase ?? 'unknown'] ?? 0) + 1;
  replace(el,
    h('span', null, h('strong', null, String(fleet.nodes.length)), ` node${fleet.nodes.length === 1 ? '' : 's'} (${online} online)`),
    h('span', null, h('strong', null, String(fleet.systems.length)), ` system${fleet.systems.length === 1 ? '' : 's'}`),
    Object.entries(byPhase).sort().map(([p, n]) => h('span', { class: `chip phase-${p}` }, `${n} ${p}`)),
  );
  const cc = $('#conflict-count')!;
  cc.textContent = fleet.conflicts ? `(${fleet.conflicts})` : '';
}

function showLogin(message = ''): void {
  setUser(null);
  stopLive();
  resetFleet();
  cleanup?.();
  cleanup = undefined;
  replace($('#page')!);
  $('#nav')!.hidden = true;
  $('#me')!.hidden = true;
  $('#counts')!.hidden = true;
  const form = $<HTMLFormElement>('#login')!;
  form.hidden = false;
  $<HTMLInputElement>('#login-password')!.value = '';
  $('#login-error')!.textContent = message;
  document.title = 'Log in · anybios';
  ($<HTMLInputElement>('#login-name')!.value ? $<HTMLInputElement>('#login-password') : $<HTMLInputElement>('#login-name'))!.focus();
}

async function start(): Promise<void> {
  let session: Session;
  try {
    session = await api<Session>('GET', '/db/_session');
  } catch (err) {
    showLogin(err instanceof ApiFailure && err.offline ? err.message : '');
    return;
  }
  if (!session.userCtx?.name) return showLogin();
  const roles = session.userCtx.roles ?? [];
  const me = setUser({ name: session.userCtx.name, roles, admin: roles.includes('_admin'), operator: roles.includes('_admin') || roles.includes('operator') });
  $('#login')!.hidden = true;
  $('#nav')!.hidden = false;
  $('#me')!.hidden = false;
  $('#counts')!.hidden = false;
  $('#who')!.textContent = `${me.name}${me.admin ? ' (admin)' : me.operator ? ' (operator)' : ''}`;
  startLive(() => showLogin('Your session ended; please log in again.'));
  route();
  ensureFleet();

}

$('#login')!.addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = new FormData(e.target as HTMLFormElement);
  const btn = $<HTMLButtonElement>('#login button')!;
  btn.disabled = true;
  try {
    await api('POST', '/db/_session', { name: form.get('name'), password: form.get('password') });
    $<HTMLInputElement>('#login-password')!.value = '';
    $('#login-error')!.textContent = '';
    await start();
  } catch (err) {
    $('#login-error')!.textContent = err instanceof ApiFailure && err.status === 401 ? 'Wrong user name or password.' : (err as Error).message;
  } finally {
    btn.disabled = false;
  }
});
$('#logout')!.addEventListener('click', async () => {
  await api('DELETE', '/db/_session').catch(() => {});
  showLogin();
});
$('#retry')!.addEventListener('click', () => retryNow());
window.addEventListener('hashchange', () => {
  navigated = true;
  route();
});
onFleet(renderCounts);
// A session that expires (or is deleted elsewhere) mid-use: back to the login form, saying why.
onFailure((f) => {
  if (f.status === 401 && currentUser()) showLogin('Your session ended; please log in again.');
});
setInterval(() => tick(), 1000);
void start();
