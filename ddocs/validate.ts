// Document checks for the API, the CLI, the agent and the web form: the very same compiled schemas and
// rules module that run inside validate_doc_update, loaded once through the ddoc sandbox.
import { buildDesignDoc } from './build.ts';
import { DdocFunction } from './sandbox.ts';

export interface FieldError { path: string; message: string }

let checker: DdocFunction | undefined;

/** Schema and naming errors of a document (empty array when it is valid). */
export function docErrors(doc: unknown): FieldError[] {
  checker ??= new DdocFunction(buildDesignDoc('node'), "function (doc) { return require('lib/rules').errorsOf(doc); }");
  return checker.run(doc) as FieldError[];
}
