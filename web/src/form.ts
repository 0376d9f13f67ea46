// A form generated from a document's JSON Schema (ddocs/schemas/), checked in the browser by the very
// rules the design documents run (ddocs/lib/rules.js with the ajv-compiled schemas, bundled by
// server/web.ts): the same messages at the same fields as CouchDB would answer. A JSON view edits the
// same document. Fields: enum → select, boolean → checkbox, integer → number text, string list → one
// per line, string map → KEY=value per line, object → fieldset, list of objects → repeated fieldsets.
import { errorsOf } from 'anybios:rules';
import { type FieldError } from './api.ts';
import { h, newId, replace, type Child } from './dom.ts';

type Schema = Record<string, any>;
type Doc = Record<string, any>;

export const docErrors = (doc: unknown): FieldError[] => errorsOf(doc);

/** Hints shown under a field (the schema says what, this says how to type it). */
const HINTS: Record<string, string> = {
  '/name': 'lowercase letters, digits and -',
  '/command': 'one argument per line (app systems)',
  '/init': 'one argument per line (os systems; default /sbin/init)',
  '/env': 'one VAR=value per line',
  '/labels': 'one key=value per line',
  '/resources/memory': 'bytes, at least 4194304',
  '/path': 'a directory under the node\'s template roots',
};
const SKIP = new Set(['type', 'restartedAt']);

interface Field { path: string; schema: Schema; read(): unknown; write(v: unknown): void; wrap: HTMLElement; err: HTMLElement; input: HTMLElement | null }

export interface SchemaForm {
  el: HTMLElement;
  /** The document as the form (or the JSON view) says; `null` when the JSON does not parse. */
  value(): Doc | null;
  set(doc: Doc): void;
  /** Shows errors at their fields (the rest above the form); returns how many. */
  showErrors(errs: FieldError[]): number;
  /** Offers `values` as suggestions for the text field at `path` (e.g. the catalog's templates). */
  suggest(path: string, values: string[]): void;
  /** Checks with the design document's rules; shows and returns the errors. */
  check(): FieldError[];
  dirty(): boolean;
}

export function schemaForm(schema: Schema, initial: Doc, opts: { type: string; nameLocked?: boolean; label: string }): SchemaForm {
  const fields: Field[] = [];
  let base: Doc = { ...initial };
  let jsonMode = false;
  let touched = false;
  let changed = false;
  const summary = h('div', { class: 'form-errors', role: 'alert', hidden: true });
  const body = h('div', { class: 'fields' });
  const json = h('textarea', { class: 'json', rows: 18, spellcheck: 'false', 'aria-label': `${opts.label} as JSON` });
  const jsonErr = h('p', { class: 'field-error', role: 'alert' });
  const jsonBox = h('div', { hidden: true }, json, jsonErr);
  const tabForm = h('button', { type: 'button', 'aria-pressed': 'true', on: { click: () => mode(false) } }, 'Form');
  const tabJson = h('button', { type: 'button', 'aria-pressed': 'false', on: { click: () => mode(true) } }, 'JSON');
  const el = h('div', { class: 'schema-form' }, h('div', { class: 'tabs', role: 'group', 'aria-label': 'Edit as' }, tabForm, tabJson), summary, body, jsonBox);

  const build = (sch: Schema, path: string, parent: HTMLElement, required: boolean) => {
    const key = path.split('/').pop()!;
    const id = newId('f');
    const errId = `${id}-err`;
    const hintId = `${id}-hint`;
    const hint = HINTS[path] ?? (sch.description && sch.description !== 'bytes' ? sch.description : '');
    const err = h('p', { class: 'field-error', id: errId });
    const describe = [hint ? hintId : '', errId].filter(Boolean).join(' ');
    const labelText = key + (required ? ' *' : '');
    const wrap = h('div', { class: 'field', 'data-path': path });
    let input: HTMLElement | null = null;
    let read: () => unknown;
    let write: (v: unknown) => void;
    const hintEl = hint ? h('p', { class: 'hint', id: hintId }, hint) : null;

    if (sch.enum) {
      const sel = h('select', { id, name: path, 'aria-describedby': describe }, required ? null : h('option', { value: '' }, '—'), sch.enum.map((v: string) => h('option', { value: v }, v)));
      input = sel;
      read = () => sel.value || undefined;
      write = (v) => (sel.value = v === undefined ? '' : String(v));
      wrap.append(h('label', { for: id }, labelText), sel);
    } else if (sch.type === 'boolean') {
      const cb = h('input', { type: 'checkbox', id, name: path, 'aria-describedby': describe });
      input = cb;
      read = () => (cb.checked ? true : undefined);
      write = (v) => (cb.checked = v === true);
      wrap.classList.add('check');
      wrap.append(cb, h('label', { for: id }, labelText));
    } else if (sch.type === 'integer' || sch.type === 'string') {
      const inp = h('input', { id, name: path, type: 'text', autocomplete: 'off', spellcheck: 'false', inputmode: sch.type === 'integer' ? 'numeric' : undefined, 'aria-describedby': describe, readonly: path === '/name' && opts.nameLocked ? true : undefined });
      input = inp;
      read = () => {
        const t = inp.value.trim();
        if (t === '') return undefined;
        return sch.type === 'integer' && /^-?\d+$/.test(t) ? Number(t) : sch.type === 'integer' ? t : inp.value;
      };
      write = (v) => (inp.value = v === undefined || v === null ? '' : String(v));
      wrap.append(h('label', { for: id }, labelText), inp);
    } else if (sch.type === 'array' && sch.items?.type === 'string') {
      const ta = h('textarea', { id, name: path, rows: 3, spellcheck: 'false', 'aria-describedby': describe });
      input = ta;
      read = () => {
        const lines = ta.value.split('\n').filter((l) => l.trim() !== '');
        return lines.length ? lines : undefined;
      };
      write = (v) => (ta.value = Array.isArray(v) ? v.join('\n') : '');
      wrap.append(h('label', { for: id }, labelText), ta);
    } else if (sch.type === 'object' && sch.additionalProperties && !sch.properties) {
      const ta = h('textarea', { id, name: path, rows: 3, spellcheck: 'false', 'aria-describedby': describe });
      input = ta;
      read = () => {
        const out: Record<string, string> = {};
        let any = false;
        for (const line of ta.value.split('\n')) {
          if (!line.trim()) continue;
          const eq = line.indexOf('=');
          out[eq < 0 ? line.trim() : line.slice(0, eq).trim()] = eq < 0 ? '' : line.slice(eq + 1);
          any = true;
        }
        return any ? out : undefined;
      };
      write = (v) => (ta.value = v && typeof v === 'object' ? Object.entries(v).map(([k, x]) => `${k}=${x}`).join('\n') : '');
      wrap.append(h('label', { for: id }, labelText), ta);
    } else if (sch.type === 'object' && sch.properties) {
      const fs = h('fieldset', null, h('legend', null, key));
      const subs: [string, Field][] = [];
      for (const [k, s] of Object.entries(sch.properties as Record<string, Schema>)) {
        subs.push([k, build(s, `${path}/${k}`, fs, (sch.required ?? []).includes(k))]);
      }
      read = () => {
        const out: Doc = {};
        for (const [k, f] of subs) {
          const v = f.read();
          if (v !== undefined) out[k] = v;
        }
        return Object.keys(out).length ? out : undefined;
      };
      write = (v) => subs.forEach(([k, f]) => f.write((v as Doc | undefined)?.[k]));
      wrap.append(fs);
      fs.append(err);
    } else if (sch.type === 'array' && sch.items?.type === 'object') {
      // Repeated fieldsets; each item's fields are built fresh (paths carry the index).
      const list = h('div', { class: 'items' });
      const itemFields = new WeakMap<Element, [string, Field][]>();
      let items: Doc[] = [];
      const renderItems = () => {
        for (let i = fields.length - 1; i >= 0; i--) if (fields[i].path.startsWith(path + '/')) fields.splice(i, 1);
        replace(list);
        items.forEach((item, i) => {
          const fs = h('fieldset', { class: 'item' }, h('legend', null, `${key} ${i + 1}`));
          const subs: [string, Field][] = [];
          for (const [k, s] of Object.entries(sch.items.properties as Record<string, Schema>)) subs.push([k, build(s, `${path}/${i}/${k}`, fs, (sch.items.required ?? []).includes(k))]);
          subs.forEach(([k, f]) => f.write(item[k]));
          fs.append(h('button', { type: 'button', class: 'small', 'aria-label': `Remove ${key} ${i + 1}`, on: { click: () => { items = readItems(); items.splice(i, 1); renderItems(); } } }, 'Remove'));
          itemFields.set(fs, subs);
          list.append(fs);
        });
      };
      const readItems = (): Doc[] => [...list.children].map((fs) => {
        const out: Doc = {};
        for (const [k, f] of itemFields.get(fs) ?? []) {
          const v = f.read();
          if (v !== undefined) out[k] = v;
        }
        return out;
      });
      read = () => {
        const v = readItems();
        return v.length ? v : undefined;
      };
      write = (v) => {
        items = Array.isArray(v) ? v.map((x) => ({ ...x })) : [];
        renderItems();
      };
      const fs = h('fieldset', null, h('legend', null, key), list, h('button', { type: 'button', class: 'small', on: { click: () => { items = readItems(); items.push({}); renderItems(); } } }, `Add ${key.replace(/s$/, '')}`), err);
      wrap.append(fs);
    } else {
      // Anything else (open objects): edited in the JSON view, kept as it is.
      let kept: unknown;
      read = () => kept;
      write = (v) => (kept = v);
      return { path, schema: sch, read, write, wrap, err, input } as Field;
    }
    if (input) {
      if (hintEl) wrap.append(hintEl);
      wrap.append(err);
      input.addEventListener('change', () => {
        if (touched) check();
      });
    }
    parent.append(wrap);
    const f: Field = { path, schema: sch, read, write, wrap, err, input };
    fields.push(f);
    return f;
  };

  const top: Field[] = [];
  for (const [k, s] of Object.entries(schema.properties as Record<string, Schema>)) {
    if (k.startsWith('_') || SKIP.has(k)) continue;
    top.push(build(s, `/${k}`, body, (schema.required ?? []).includes(k)));
  }

  const fromForm = (): Doc => {
    const doc: Doc = {};
    // Members the form does not show (_rev, restartedAt, …) are carried through unchanged.
    for (const [k, v] of Object.entries(base)) if (k.startsWith('_') || SKIP.has(k)) doc[k] = v;
    for (const f of top) {
      const v = f.read();
      if (v !== undefined) doc[f.path.slice(1)] = v;
    }
    doc.type = opts.type;
    if (typeof doc.name === 'string') doc._id = `${opts.type}:${doc.name}`;
    delete doc._conflicts;
    return doc;
  };
  const set = (doc: Doc) => {
    base = { ...doc };
    changed = false;
    for (const f of top) f.write(doc[f.path.slice(1)]);
    json.value = JSON.stringify(doc, null, 2);
  };
  const value = (): Doc | null => {
    if (!jsonMode) return fromForm();
    try {
      const d = JSON.parse(json.value);
      jsonErr.textContent = '';
      if (!d || typeof d !== 'object' || Array.isArray(d)) {
        jsonErr.textContent = 'The document must be a JSON object.';
        return null;
      }
      // As the API does (ddocs/normalize.ts): type and _id may be left out; they follow from the name.
      d.type ??= opts.type;
      if (typeof d.name === 'string') d._id ??= `${opts.type}:${d.name}`;
      return d;
    } catch (e) {
      jsonErr.textContent = `Not valid JSON: ${(e as Error).message}`;
      return null;
    }
  };
  function mode(toJson: boolean) {
    if (toJson === jsonMode) return;
    if (toJson) json.value = JSON.stringify(fromForm(), null, 2);
    else {
      const d = value();
      if (!d) return; // stay in the JSON view until it parses
      set(d);
    }
    jsonMode = toJson;
    tabForm.setAttribute('aria-pressed', String(!toJson));
    tabJson.setAttribute('aria-pressed', String(toJson));
    body.hidden = toJson;
    jsonBox.hidden = !toJson;
    (toJson ? json : tabForm).focus();
  }

  const fieldFor = (path: string): Field | undefined => {
    const p = path === '/_id' || path === '/type' ? '/name' : path;
    let best: Field | undefined;
    for (const f of fields) if ((p === f.path || p.startsWith(f.path + '/')) && (!best || f.path.length > best.path.length)) best = f;
    return best;
  };
  const showErrors = (errs: FieldError[]): number => {
    for (const f of fields) {
      f.err.textContent = '';
      f.wrap.classList.remove('invalid');
      f.input?.removeAttribute('aria-invalid');
    }
    const rest: Child[] = [];
    let first: HTMLElement | null = null;
    // `_id` and `type` are made from the name: when the name is wrong, its own message says it all.
    const nameWrong = errs.some((e) => e.path === '/name');
    for (const e of errs) {
      const f = jsonMode ? undefined : fieldFor(e.path);
      if (f && (e.path === '/_id' || e.path === '/type') && nameWrong) continue;
      if (f) {
        const sub = e.path !== f.path && e.path !== '/_id' ? `${e.path.slice(f.path.length + 1)}: ` : '';
        f.err.textContent = (f.err.textContent ? f.err.textContent + '; ' : '') + sub + e.message;
        f.wrap.classList.add('invalid');
        f.input?.setAttribute('aria-invalid', 'true');
        first ??= f.input;
      } else rest.push(h('li', null, `${e.path} ${e.message}`));
    }
    replace(summary, rest.length ? [h('p', null, errs.length === 1 ? 'Please fix this:' : `Please fix ${errs.length} problems:`), h('ul', null, rest)] : []);
    summary.hidden = rest.length === 0;
    if (errs.length) (first ?? summary).focus?.();
    return errs.length;
  };
  function check(): FieldError[] {
    touched = true;
    const doc = value();
    if (!doc) return [{ path: '/', message: 'not valid JSON' }];
    const errs = docErrors(doc);
    showErrors(errs);
    return errs;
  }
  set(initial);
  summary.tabIndex = -1;
  el.addEventListener('input', () => (changed = true));
  const suggest = (path: string, values: string[]) => {
    const f = fields.find((x) => x.path === path);
    if (!(f?.input instanceof HTMLInputElement)) return;
    const list = h('datalist', { id: `${f.input.id}-list` }, values.map((v) => h('option', { value: v })));
    f.wrap.querySelector('datalist')?.remove();
    f.wrap.append(list);
    f.input.setAttribute('list', list.id);
  };
  return { el, value, set, showErrors, check, suggest, dirty: () => changed };
}
