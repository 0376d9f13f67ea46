// The single source of document rules: one JSON Schema per document type, and which database holds it.
import { templateSchema } from './template.ts';
import { systemSchema } from './system.ts';
import { volumeSchema } from './volume.ts';
import { nodeSchema } from './node.ts';
import { statusSchema } from './status.ts';

export const schemas = {
  template: templateSchema,
  system: systemSchema,
  volume: volumeSchema,
  node: nodeSchema,
  status: statusSchema,
} as const;

export type DocType = keyof typeof schemas;
export const DOC_TYPES = Object.keys(schemas) as DocType[];

/** Document types per database kind. Specs are written by people; `node`/`status` by the node's agent. */
export const CATALOG_TYPES: readonly DocType[] = ['template'];
export const NODE_TYPES: readonly DocType[] = ['system', 'volume', 'node', 'status'];
export const AGENT_ONLY_TYPES: readonly DocType[] = ['node', 'status'];

export { NAME_PATTERN, NAME_RE } from './common.ts';
export * from './types.ts';
