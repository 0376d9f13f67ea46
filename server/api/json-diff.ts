// A small recursive JSON diff for showing two versions of a document side by side (conflicts, history).
// Pure: objects are compared key by key, arrays index by index, anything else by value. Each difference
// names its place as a JSON Pointer (RFC 6901: `~` → `~0`, `/` → `~1`); a value present on one side
// only has the other side absent (undefined, so it is left out of the JSON).

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Difference {
  /** JSON Pointer of the differing value, e.g. `/command/2` ('' for the whole document). */
  path: string;
  /** `added`: only in b; `removed`: only in a; `changed`: in both, different. */
  kind: 'added' | 'removed' | 'changed';
  a?: unknown;
  b?: unknown;
}

export interface DiffOptions {
  /** Top-level members left out of the comparison (e.g. CouchDB's `_rev`, `_conflicts`). */
  ignore?: readonly string[];
}

/** CouchDB's bookkeeping members, which differ between any two revisions and say nothing of content. */
export const COUCH_META = ['_rev', '_conflicts', '_deleted_conflicts', '_revs_info', '_revisions', '_local_seq'] as const;

export const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** True when `a` and `b` are the same JSON value (key order of objects does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** Every difference from `a` to `b`, in document order (keys of `a` first, then keys only in `b`). */
export function jsonDiff(a: unknown, b: unknown, opts: DiffOptions = {}): Difference[] {
  const out: Difference[] = [];
  const ignore = new Set(opts.ignore ?? []);
  walk(a, b, '', out, ignore);
  return out;
}

function walk(a: unknown, b: unknown, path: string, out: Difference[], ignoreHere?: Set<string>): void {
  if (a === undefined && b === undefined) return;
  if (a === undefined) {
    out.push({ path, kind: 'added', b });
    return;
  }
  if (b === undefined) {
    out.push({ path, kind: 'removed', a });
    return;
  }
  if (isObject(a) && isObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !Object.hasOwn(a, k))];
    for (const k of keys) {
      if (ignoreHere?.has(k)) continue;
      walk(a[k], b[k], `${path}/${escapePointer(k)}`, out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) walk(i < a.length ? a[i] : undefined, i < b.length ? b[i] : undefined, `${path}/${i}`, out);
    return;
  }
  if (!jsonEqual(a, b)) out.push({ path, kind: 'changed', a, b });
}
