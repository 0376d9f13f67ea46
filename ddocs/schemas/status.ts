// status: what the node's agent observed for one system. One writer: the node's own agent.
import { couchFields, idOf, name, isoTime } from './common.ts';

const nullableInt = { type: ['integer', 'null'] } as const;

export const statusSchema = {
  $id: 'status',
  type: 'object',
  additionalProperties: false,
  required: ['_id', 'type', 'name', 'phase', 'updated'],
  properties: {
    ...couchFields,
    _id: idOf('status'),
    type: { const: 'status' },
    name,
    phase: { enum: ['pending', 'materializing', 'running', 'stopped', 'failed'] },
    // The spec revision this status was computed from (like observedGeneration).
    observedRev: { type: ['string', 'null'], maxLength: 128 },
    pid: nullableInt,
    exitCode: nullableInt,
    restarts: { type: 'integer', minimum: 0 },
    code: { type: ['string', 'null'], pattern: '^[A-Z][A-Z0-9_]{0,63}$' },
    message: { type: 'string', maxLength: 4096 },
    diskUsed: nullableInt,
    logTail: { type: 'string', maxLength: 16384 },
    conflict: { type: 'boolean' },
    updated: isoTime,
  },
} as const;
