// Live updates: /api/events (SSE). We manage the EventSource ourselves so that a lost server gives a
// clear offline state, reconnection backs off (1 s … 30 s, with jitter, a session probe in between)
// and resumes from the last event id (`?since=`, the server's Last-Event-ID). Every change-making button
// carries `data-act`; while offline they are disabled and say why.
import { api, ApiFailure, onFailure } from './api.ts';

export interface FleetEvent { id: number; type: 'system' | 'status' | 'node' | 'volume' | 'template'; node: string | null; name: string; deleted: boolean; rev: string; doc: Record<string, any> | null }

type EventHandler = (e: FleetEvent | null) => void; // null: reset (reload everything)
const handlers = new Set<EventHandler>();
export const onEvent = (fn: EventHandler) => {
  handlers.add(fn);
  return () => handlers.delete(fn);
};

export const OFFLINE_REASON = 'Offline: the server cannot be reached, so nothing can be changed right now.';

let es: EventSource | null = null;
let lastId: string | null = null;
let attempt = 0;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let bannerTimer: ReturnType<typeof setTimeout> | undefined;
let nextTry = 0;
let offlineSince: number | null = null;
let stopped = true;
let onUnauthorized: () => void = () => {};

export const isOffline = () => offlineSince !== null;

const TYPES = ['system', 'status', 'node', 'volume', 'template'] as const;

export function startLive(unauthorized: () => void): void {
  onUnauthorized = unauthorized;
  stopped = false;
  connect();
}

export function stopLive(): void {
  stopped = true;
  es?.close();
  es = null;
  lastId = null;
  clearTimeout(retryTimer);
  setOnline();
}

function connect(): void {
  clearTimeout(retryTimer);
  es?.close();
  if (stopped) return;
  const src = new EventSource('/api/events' + (lastId ? `?since=${encodeURIComponent(lastId)}` : ''));
  es = src;
  src.onopen = () => {
    attempt = 0;
    if (isOffline()) {
      setOnline();
      handlers.forEach((h) => h(null)); // whatever we missed beyond the log: reload
    }
  };
  for (const t of TYPES) {
    src.addEventListener(t, (ev) => {
      const m = ev as MessageEvent;
      if (m.lastEventId) lastId = m.lastEventId;
      let data: FleetEvent;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      handlers.forEach((h) => h(data));
    });
  }
  src.addEventListener('reset', (ev) => {
    try {
      lastId = String(JSON.parse((ev as MessageEvent).data).lastEventId);
    } catch {
      lastId = null;
    }
    handlers.forEach((h) => h(null));
  });
  src.onerror = () => {
    // We handle retries ourselves (EventSource gives up on HTTP errors and never says why).
    src.close();
    if (es !== src || stopped) return;
    es = null;
    setOffline();
    retry();
  };
}

function retry(): void {
  clearTimeout(retryTimer);
  const delay = Math.min(30_000, 1000 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
  attempt++;
  nextTry = Date.now() + delay;
  retryTimer = setTimeout(probe, delay);
  renderBanner();
}

/** Is the server back, and are we still logged in? Then reconnect at once. */
let probing = false;
async function probe(): Promise<void> {
  retryTimer = undefined;
  if (stopped) return;
  probing = true;
  try {
    const s = await api<{ userCtx: { name: string | null } }>('GET', '/db/_session');
    if (!s.userCtx?.name) {
      stopLive();
      onUnauthorized();
      return;
    }
    connect();
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 401) {
      stopLive();
      onUnauthorized();
      return;
    }
    retry();
  } finally {
    probing = false;
  }
}

export function retryNow(): void {
  clearTimeout(retryTimer);
  void probe();
}

function setOffline(): void {
  if (offlineSince === null) offlineSince = Date.now();
  // A blip shorter than a second (a reconnect) shows nothing.
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(() => {
    document.body.classList.add('offline');
    renderBanner();
    syncActions();
  }, 1000);
}

function setOnline(): void {
  offlineSince = null;
  clearTimeout(bannerTimer);
  document.body.classList.remove('offline');
  renderBanner();
  syncActions();
}

// A request that could not reach the server: offline too, even while the event stream still looks open
// (it may be half dead); the probe reconnects the stream, whose opening ends the offline state.
onFailure((f) => {
  if (f.offline && !stopped) {
    setOffline();
    if (!retryTimer && !probing) retry();
  }
});

function renderBanner(): void {
  const banner = document.getElementById('offline');
  if (!banner) return;
  const show = document.body.classList.contains('offline');
  banner.hidden = !show;
  if (!show) return;
  const secs = Math.max(0, Math.ceil((nextTry - Date.now()) / 1000));
  const when = offlineSince ? new Date(offlineSince).toLocaleTimeString() : '';
  const text = document.getElementById('offline-text')!;
  const msg = `Offline since ${when}: the server cannot be reached. What you see may be out of date; changes are disabled. ${secs ? `Retrying in ${secs} s.` : 'Retrying…'}`;
  if (text.textContent !== msg) text.textContent = msg;
}
setInterval(renderBanner, 1000);

/** Disables every change-making control ([data-act]) while offline, with the reason. */
export function syncActions(root: ParentNode = document): void {
  const off = document.body.classList.contains('offline');
  for (const el of root.querySelectorAll<HTMLButtonElement | HTMLInputElement>('[data-act]')) {
    if (off) {
      if (!el.disabled) el.dataset.offlineDisabled = '1';
      el.disabled = true;
      el.title = OFFLINE_REASON;
      el.setAttribute('aria-describedby', 'offline-text');
    } else if (el.dataset.offlineDisabled) {
      delete el.dataset.offlineDisabled;
      el.disabled = false;
      el.removeAttribute('title');
      el.removeAttribute('aria-describedby');
    }
  }
}
