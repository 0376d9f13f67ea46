// DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing a document says — a
// system's name, description or log — can become markup. Events are listeners, never inline handlers.
export type Child = Node | string | number | null | undefined | false | Child[];
type Listener = (e: Event) => void;
export interface Attrs { [name: string]: string | number | boolean | null | undefined | Listener | Record<string, Listener> | undefined; on?: Record<string, Listener> }

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'on') {
        for (const [ev, fn] of Object.entries(v as Record<string, Listener>)) el.addEventListener(ev, fn);
      } else if (v === null || v === undefined || v === false) {
        continue;
      } else if (k === 'value') {
        (el as HTMLInputElement).value = String(v);
      } else if (k === 'checked') {
        (el as HTMLInputElement).checked = !!v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

export const $ = <T extends Element = HTMLElement>(sel: string, root: ParentNode = document) => root.querySelector(sel) as T | null;

let uid = 0;
export const newId = (base: string) => `${base}-${++uid}`;

/** "12 s ago", "3 min ago" … from an ISO time; the ticker (main.ts) keeps every [data-since] current. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return 'never';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A <time> that the ticker keeps saying how long ago it was. */
export function since(iso: string | null | undefined, prefix = ''): HTMLElement {
  if (!iso) return h('span', null, `${prefix}never`);
  return h('time', { datetime: iso, 'data-since': iso, 'data-prefix': prefix, title: new Date(iso).toLocaleString() }, prefix + ago(iso));
}

export function tick(root: ParentNode = document): void {
  const now = Date.now();
  for (const el of root.querySelectorAll<HTMLElement>('[data-since]')) {
    const text = (el.dataset.prefix ?? '') + ago(el.dataset.since, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

// ---- confirmation dialog and announcements ---------------------------------------------------------

/** A modal confirmation naming what will happen; resolves true only when the user confirms. */
export function confirmDialog(title: string, text: string, action: string, danger = false): Promise<boolean> {
  return new Promise((resolve) => {
    const titleId = newId('dlg-title');
    const textId = newId('dlg-text');
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': titleId, 'aria-describedby': textId });
    const done = (ok: boolean) => {
      dlg.close();
      dlg.remove();
      resolve(ok);
    };
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', on: { click: () => done(true) } }, action);
    const cancel = h('button', { type: 'button', on: { click: () => done(false) } }, 'Cancel');
    append(dlg, [h('h2', { id: titleId }, title), h('p', { id: textId }, text), h('div', { class: 'actions' }, cancel, ok)]);
    dlg.addEventListener('cancel', (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** A short message in the polite live region (and visible as a toast). */
export function announce(text: string, kind: 'info' | 'error' = 'info'): void {
  const region = $('#toasts');
  if (!region) return;
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : undefined }, text);
  region.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 10_000 : 5_000);
}
