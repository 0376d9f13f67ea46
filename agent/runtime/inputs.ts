// Input checks of the runtime: names (NAME_RE) in every call, and specs and templates against the
// schemas through the caller's `checkDoc` (the runtime never builds the design-doc rules itself).
import type { SystemDoc, TemplateDoc } from '../../ddocs/schemas/types.ts';
import { NAME_RE } from '../../ddocs/schemas/index.ts';
import { RuntimeError } from './errors.ts';

/** Schema and naming errors of a document, empty when it is valid (ddocs/validate.ts `docErrors`). */
export type CheckDoc = (doc: unknown) => { path: string; message: string }[];

export function checkName(name: unknown, what = 'system'): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new RuntimeError('INVALID_NAME', `${what} name ${JSON.stringify(name)} must match ${NAME_RE.source}`);
  return name;
}

/**
 * The check of a materialize/start's spec and template. docErrors runs the ddoc rules in a sandbox that
 * JSON-copies its argument (~0.1 ms a call), so its verdict is a function of the JSON text: documents
 * already found valid are remembered by that text (per validator, at most 256).
 */
export function inputValidator(checkDoc: CheckDoc): (spec: SystemDoc, template: TemplateDoc) => void {
  const validDocs = new Set<string>();
  const knownValid = (doc: unknown): boolean => {
    const key = JSON.stringify(doc);
    if (validDocs.has(key)) return true;
    if (checkDoc(doc).length) return false;
    if (validDocs.size >= 256) validDocs.clear();
    validDocs.add(key);
    return true;
  };
  return (spec, template) => {
    checkName(spec?.name);
    if (knownValid(spec) && knownValid(template)) {
      checkName(template?.name, 'template');
      if (template.name !== spec.template) throw new RuntimeError('INVALID_TEMPLATE', `system ${spec.name} wants template ${spec.template}, got ${template.name}`);
      return;
    }
    const se = checkDoc(spec);
    if (se.length) throw new RuntimeError('INVALID_SPEC', `system ${spec.name}: ${se.map((e) => `${e.path} ${e.message}`).join('; ')}`);
    checkName(template?.name, 'template');
    const te = checkDoc(template);
    if (te.length) throw new RuntimeError('INVALID_TEMPLATE', `template ${template.name}: ${te.map((e) => `${e.path} ${e.message}`).join('; ')}`);
    if (template.name !== spec.template) throw new RuntimeError('INVALID_TEMPLATE', `system ${spec.name} wants template ${spec.template}, got ${template.name}`);
  };
}
