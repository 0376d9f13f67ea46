// Where the fleet commands find a spec document in the API: systems and volumes under a node,
// templates in the catalog; and how a document is named in messages ("system web on node a").
import { path } from './api.ts';
import { usageError } from './args.ts';

export const SPEC_KINDS = ['system', 'volume', 'template'] as const;
export type SpecKind = (typeof SPEC_KINDS)[number];

export interface SpecRef { kind: SpecKind; name: string; node?: string }

/** True for the kinds that live in a node's database. */
export const onNode = (kind: SpecKind) => kind !== 'template';

/** The API path of one spec document. */
export function specPath(ref: SpecRef): string {
  return onNode(ref.kind) ? path('nodes', ref.node!, `${ref.kind}s`, ref.name) : path('templates', ref.name);
}

export function specLabel(ref: SpecRef): string {
  return onNode(ref.kind) ? `${ref.kind} ${ref.name} on node ${ref.node}` : `${ref.kind} ${ref.name}`;
}

/** Checks that a system or volume has its node (usage error otherwise). */
export function needNode(kind: SpecKind, node: string | undefined, usage: string): string | undefined {
  if (onNode(kind) && !node) throw usageError(`${kind}s live on a node: pass --node NODE`, usage);
  return onNode(kind) ? node : undefined;
}
