// node: the node's own info and heartbeat, written only by that node's agent.
import { couchFields, idOf, name, isoTime, labels } from './common.ts';

export const nodeSchema = {
  $id: 'node',
  type: 'object',
  additionalProperties: false,
  required: ['_id', 'type', 'name'],
  properties: {
    ...couchFields,
    _id: idOf('node'),
    type: { const: 'node' },
    name,
    hostname: { type: 'string', maxLength: 255 },
    heartbeat: isoTime,
    startedAt: isoTime,
    agentVersion: { type: 'string', maxLength: 64 },
    // Open-ended on purpose: newer agents report more than older servers know of.
    capabilities: { type: 'object' },
    versions: { type: 'object', additionalProperties: { type: 'string', maxLength: 128 } },
    labels,
  },
} as const;
