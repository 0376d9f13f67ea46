// Turns a request body into a full spec document (`_id`, `type`, `name` filled in) and checks it
// against the schema: one implementation for the REST API, the agent's local API and the CLI.
import { NAME_RE } from './schemas/index.ts';
import { docErrors, type FieldError } from './validate.ts';

export type SpecKind = 'system' | 'volume' | 'template';

export class DocError extends Error {
  constructor(message: string, readonly details: FieldError[]) {
    super(message);
  }
}

export function checkName(name: string, what: string): string {
  if (!NAME_RE.test(name)) throw new DocError(`${what} "${name.slice(0, 80)}" is not a valid name`, [{ path: '/name', message: 'must be a name: 1-63 of a-z, 0-9 and -, starting with a letter or digit' }]);
  return name;
}

/** Makes a full document from a body: fills `_id`, `type`, `name`; refuses contradictions. */
export function normalizeSpec(kind: SpecKind, body: unknown, name?: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new DocError('the body must be a JSON object', [{ path: '/', message: 'must be an object' }]);
  const b = body as Record<string, unknown>;
  const n = name ?? b.name;
  if (typeof n !== 'string') throw new DocError('name is required', [{ path: '/name', message: 'is required' }]);
  checkName(n, kind);
  if (b.name !== undefined && b.name !== n) throw new DocError(`name in the body (${String(b.name)}) differs from the URL (${n})`, [{ path: '/name', message: 'differs from the URL' }]);
  const id = `${kind}:${n}`;
  if (b._id !== undefined && b._id !== id) throw new DocError(`_id must be ${id}`, [{ path: '/_id', message: `must be ${id}` }]);
  if (b.type !== undefined && b.type !== kind) throw new DocError(`type must be ${kind}`, [{ path: '/type', message: `must be "${kind}"` }]);
  const doc: Record<string, unknown> = { ...b, _id: id, type: kind, name: n };
  delete doc._conflicts;
  return doc;
}

/** Throws DocError listing every schema error of `doc`. */
export function checkSpec(doc: Record<string, unknown>): void {
  const errors = docErrors(doc);
  if (errors.length) throw new DocError(`invalid ${String(doc.type)}: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, errors);
}
