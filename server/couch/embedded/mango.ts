// Mango selectors (CouchDB's `_changes?filter=_selector` now, `_find` later), compiled once per request
// into a plain predicate. Our own evaluator rather than PouchDB's, for one reason: PouchDB runs `$regex`
// with JavaScript's backtracking RegExp, so a request could freeze the event loop (`^(a+)+$` against 31
// `a` and a `!` stalled the whole server for 12 s). Here `$regex` runs on RE2 (the `re2js` package, a
// pure-JS port of RE2: no backtracking, no native build), whose syntax is close to the PCRE CouchDB
// uses; what RE2 refuses (backreferences, lookaround) is a 400 naming the field.
//
// Linear is not yet cheap: when RE2's lazy DFA gives up (`a[ab]{500}c`), matching costs about the
// input length times the program size, seconds on a 1 MB string. So a match that could cost more than
// a few milliseconds (length × program size above COST_DIRECT) runs under a time budget (a `vm`
// timeout, which interrupts any JavaScript, re2js included), and one that exceeds it fails the request
// with a 400 naming the field, instead of holding the event loop.
//
// Semantics follow CouchDB's: a field condition on a missing field is false (`$exists: false` aside);
// `$eq`, `$gt`, ... compare by CouchDB's collation (null < false < true < numbers < strings < arrays <
// objects; strings by code point, as PouchDB does, not ICU); `$in`/`$nin` against an array field look
// at its elements; `$regex` matches anywhere in a string field.
import vm from 'node:vm';
import { RE2JS } from 're2js';
import { badRequest } from '../errors.ts';
import { isObject } from '../http.ts';

export type Predicate = (value: unknown) => boolean;

/** Patterns are small by nature; a huge one is a request meant to cost, not to match. */
const MAX_PATTERN = 8192;
/** RE2's own rough cost measure (instructions); `a{1000}` alone is 1000. */
const MAX_PROGRAM = 20_000;
/** Input length × program size below which a match runs directly (well under 10 ms even on the NFA). */
const COST_DIRECT = 200_000;
/** The most one `$regex` match on one document may take; then the request fails. */
export const REGEX_BUDGET_MS = 250;
const TYPES = new Set(['null', 'boolean', 'number', 'string', 'array', 'object']);

const join = (where: string, part: string) => (where ? `${where}.${part}` : part);
const fail = (where: string, reason: string) => badRequest(`selector at ${where}: ${reason}`);

function rank(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (v === false) return 1;
  if (v === true) return 2;
  if (typeof v === 'number') return 3;
  if (typeof v === 'string') return 4;
  if (Array.isArray(v)) return 5;
  return 6;
}

/** CouchDB's view collation (strings by code point). */
export function collate(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra === 3 || ra === 4) return (a as number | string) < (b as number | string) ? -1 : (a as number | string) > (b as number | string) ? 1 : 0;
  if (ra === 5) {
    const x = a as unknown[];
    const y = b as unknown[];
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = collate(x[i], y[i]);
      if (c) return c;
    }
    return x.length - y.length;
  }
  if (ra === 6) {
    const x = Object.entries(a as object);
    const y = Object.entries(b as object);
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = collate(x[i][0], y[i][0]) || collate(x[i][1], y[i][1]);
      if (c) return c;
    }
    return x.length - y.length;
  }
  return 0;
}

/** `a.b\.c` → ['a', 'b.c']. */
export function splitField(field: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < field.length; i++) {
    const ch = field[i];
    if (ch === '\\' && field[i + 1] === '.') {
      cur += '.';
      i++;
    } else if (ch === '.') {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

export function getField(value: unknown, path: string[]): unknown {
  let v = value;
  for (const p of path) {
    if (Array.isArray(v) && /^(0|[1-9]\d{0,8})$/.test(p)) v = v[Number(p)];
    else if (isObject(v) && Object.prototype.hasOwnProperty.call(v, p)) v = v[p];
    else return undefined;
  }
  return v;
}

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function selectors(arg: unknown, op: string, where: string): Predicate[] {
  if (!Array.isArray(arg) || (op !== '$and' && arg.length === 0)) throw fail(where || '(document)', `${op} needs a non-empty array of selectors`);
  return arg.map((s, i) => {
    if (!isObject(s)) throw fail(join(where, `${op}[${i}]`), 'must be a selector object');
    return compile(s, join(where, `${op}[${i}]`));
  });
}

function regex(arg: unknown, where: string): Predicate {
  if (typeof arg !== 'string') throw fail(where, '$regex needs a string');
  if (arg.length > MAX_PATTERN) throw fail(where, `$regex pattern is longer than ${MAX_PATTERN} characters`);
  let re: RE2JS;
  try {
    re = RE2JS.compile(arg);
  } catch (err) {
    throw fail(where, `$regex ${JSON.stringify(arg.slice(0, 100))} is not a valid RE2 pattern (no backreferences or lookaround): ${(err as Error).message}`);
  }
  const size = re.programSize();
  if (size > MAX_PROGRAM) throw fail(where, `$regex ${JSON.stringify(arg.slice(0, 100))} is too complex (RE2 program size ${size}, at most ${MAX_PROGRAM})`);
  return (v) => {
    if (typeof v !== 'string') return false;
    if (v.length * size <= COST_DIRECT) return re.test(v);
    return budgeted(() => re.test(v), () => fail(where, `$regex ${JSON.stringify(arg.slice(0, 100))} took longer than ${REGEX_BUDGET_MS} ms on a string of ${v.length} characters; the server stops a selector there rather than hold every other request`));
  };
}

// One vm context for budgeted calls: its timeout (a watchdog thread) terminates whatever JavaScript runs
// inside, host functions included. Starting that watchdog costs ~0.1 ms, hence only for costly matches.
const guard = vm.createContext({ __run: (): unknown => undefined });
const call = new vm.Script('__run()');

function budgeted(fn: () => boolean, tooSlow: () => Error): boolean {
  guard.__run = fn;
  try {
    return call.runInContext(guard, { timeout: REGEX_BUDGET_MS }) as boolean;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') throw tooSlow();
    throw err;
  } finally {
    guard.__run = () => undefined;
  }
}

/**
 * Membership in a `$in`/`$nin` list by collation. Scalars are looked up in a Set (a list of 100,000
 * values must not cost 100,000 comparisons per document); arrays and objects are compared one by one.
 */
function member(list: unknown[]): (x: unknown) => boolean {
  const scalars = new Set<unknown>();
  const others: unknown[] = [];
  for (const a of list) {
    if (a === null || typeof a !== 'object') scalars.add(a);
    else others.push(a);
  }
  return (x) => (x === null || typeof x !== 'object' ? scalars.has(x) : others.some((a) => collate(x, a) === 0));
}

/** One `$operator: argument` applied to the current value. */
function condition(op: string, arg: unknown, where: string): Predicate {
  const here = where || '(document)';
  const defined = (p: Predicate): Predicate => (v) => v !== undefined && p(v);
  switch (op) {
    case '$and': {
      const all = selectors(arg, op, where);
      return (v) => all.every((p) => p(v));
    }
    case '$or': {
      const any = selectors(arg, op, where);
      return (v) => any.some((p) => p(v));
    }
    case '$nor': {
      const any = selectors(arg, op, where);
      return (v) => !any.some((p) => p(v));
    }
    case '$not': {
      if (!isObject(arg)) throw fail(here, '$not needs a selector object');
      const p = compile(arg, join(where, '$not'));
      return (v) => !p(v);
    }
    case '$eq': return defined((v) => collate(v, arg) === 0);
    case '$ne': return defined((v) => collate(v, arg) !== 0);
    case '$lt': return defined((v) => collate(v, arg) < 0);
    case '$lte': return defined((v) => collate(v, arg) <= 0);
    case '$gt': return defined((v) => collate(v, arg) > 0);
    case '$gte': return defined((v) => collate(v, arg) >= 0);
    case '$exists':
      if (typeof arg !== 'boolean') throw fail(here, '$exists needs true or false');
      return (v) => (v !== undefined) === arg;
    case '$type':
      if (typeof arg !== 'string' || !TYPES.has(arg)) throw fail(here, `$type needs one of: ${[...TYPES].join(', ')}`);
      return defined((v) => typeOf(v) === arg);
    case '$in':
    case '$nin': {
      if (!Array.isArray(arg)) throw fail(here, `${op} needs an array`);
      const hit = member(arg);
      const found = (v: unknown) => (Array.isArray(v) ? v.some(hit) : hit(v));
      return op === '$in' ? defined(found) : defined((v) => !found(v));
    }
    case '$size':
      if (!Number.isSafeInteger(arg) || (arg as number) < 0) throw fail(here, '$size needs a non-negative integer');
      return (v) => Array.isArray(v) && v.length === arg;
    case '$mod': {
      if (!Array.isArray(arg) || arg.length !== 2 || !arg.every((n) => Number.isSafeInteger(n)) || arg[0] === 0) throw fail(here, '$mod needs [divisor, remainder]: two integers, divisor not 0');
      const [d, r] = arg as number[];
      return (v) => Number.isSafeInteger(v) && (v as number) % d === r;
    }
    case '$regex': return regex(arg, here);
    case '$beginsWith':
      if (typeof arg !== 'string') throw fail(here, '$beginsWith needs a string');
      return (v) => typeof v === 'string' && v.startsWith(arg);
    case '$all':
      if (!Array.isArray(arg)) throw fail(here, '$all needs an array');
      return (v) => Array.isArray(v) && arg.every((a) => v.some((x) => collate(x, a) === 0));
    case '$elemMatch':
    case '$allMatch': {
      if (!isObject(arg)) throw fail(here, `${op} needs a selector object`);
      const p = compile(arg, join(where, op));
      return op === '$elemMatch' ? (v) => Array.isArray(v) && v.some(p) : (v) => Array.isArray(v) && v.length > 0 && v.every(p);
    }
    case '$keyMapMatch': {
      if (!isObject(arg)) throw fail(here, '$keyMapMatch needs a selector object');
      const p = compile(arg, join(where, '$keyMapMatch'));
      return (v) => isObject(v) && Object.keys(v).some(p);
    }
    default:
      throw fail(here, `unknown operator ${op.slice(0, 40)}`);
  }
}

/**
 * A selector object applied to one value (the document at the top): every member must hold. `$`
 * members are conditions on the value itself; other members name (dotted) fields below it, whose
 * value is matched by a nested selector (an object) or compared with `$eq` (anything else).
 */
function compile(sel: Record<string, unknown>, where: string): Predicate {
  const parts: Predicate[] = [];
  for (const [key, arg] of Object.entries(sel)) {
    if (key.startsWith('$')) {
      parts.push(condition(key, arg, where));
      continue;
    }
    const path = splitField(key);
    const at = join(where, key);
    const inner = isObject(arg) ? compile(arg, at) : condition('$eq', arg, at);
    parts.push((v) => inner(getField(v, path)));
  }
  return (v) => parts.every((p) => p(v));
}

/** Conditions one selector may hold: each is evaluated on every document a query reads. */
export const MAX_CONDITIONS = 10_000;
/** `$regex` conditions one selector may hold: each match may take up to REGEX_BUDGET_MS. */
export const MAX_REGEXES = 16;

/** Counts the selector's members (list arguments of `$in`, `$nin`, `$all` are one each) and its `$regex`es. */
function size(v: unknown, n = { conditions: 0, regexes: 0 }): { conditions: number; regexes: number } {
  if (Array.isArray(v)) for (const x of v) size(x, n);
  else if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      n.conditions++;
      if (k === '$regex') n.regexes++;
      if (k !== '$in' && k !== '$nin' && k !== '$all' && k !== '$eq' && k !== '$ne') size(x, n);
    }
  }
  return n;
}

/** Compiles a request's selector; a malformed one is a 400 naming where and why. */
export function compileSelector(selector: unknown): Predicate {
  if (!isObject(selector)) throw badRequest('selector must be a JSON object');
  const n = size(selector);
  if (n.conditions > MAX_CONDITIONS) throw badRequest(`the selector holds ${n.conditions} conditions; at most ${MAX_CONDITIONS} are evaluated per document`);
  if (n.regexes > MAX_REGEXES) throw badRequest(`the selector holds ${n.regexes} $regex conditions; at most ${MAX_REGEXES}, each may take ${REGEX_BUDGET_MS} ms per document`);
  const p = compile(selector, '');
  return (doc) => p(doc);
}
