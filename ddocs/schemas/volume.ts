// volume: a named data directory under the node's volume root, mounted into systems by name.
import { couchFields, idOf, name, labels } from './common.ts';

export const volumeSchema = {
  $id: 'volume',
  type: 'object',
  additionalProperties: false,
  required: ['_id', 'type', 'name'],
  properties: {
    ...couchFields,
    _id: idOf('volume'),
    type: { const: 'volume' },
    name,
    description: { type: 'string', maxLength: 1024 },
    labels,
  },
} as const;
