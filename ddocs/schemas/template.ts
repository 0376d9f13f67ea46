// template: where a system's read-only lower layer comes from. Lives in the catalog `anybios`.
import { attachments, couchFields, idOf, name, absolutePath, labels } from './common.ts';

export const templateSchema = {
  $id: 'template',
  type: 'object',
  additionalProperties: false,
  required: ['_id', 'type', 'name', 'source'],
  properties: {
    ...couchFields,
    _attachments: attachments,
    _id: idOf('template'),
    type: { const: 'template' },
    name,
    description: { type: 'string', maxLength: 1024 },
    // host: this machine's own root, read-only; dir: a tree under the node's template roots;
    // tar: a tarball attachment `rootfs.tar` (optionally gzip) verified by sha256.
    source: { enum: ['host', 'dir', 'tar'] },
    path: absolutePath,
    sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    // false: no node starts a system on it (systems already running keep running). The only way to
    // forbid `host`, which every node has built in whether or not the catalog describes it.
    enabled: { type: 'boolean' },
    labels,
  },
  allOf: [
    { if: { properties: { source: { const: 'dir' } } }, then: { required: ['path'] } },
    { if: { properties: { source: { const: 'tar' } } }, then: { required: ['sha256'] } },
    { if: { properties: { source: { const: 'host' } } }, then: { not: { anyOf: [{ required: ['path'] }, { required: ['sha256'] }] } } },
    // `host` names every node's own root: its catalog document may describe or disable it, never redefine it.
    { if: { properties: { name: { const: 'host' } } }, then: { properties: { source: { const: 'host' } } } },
  ],
} as const;
