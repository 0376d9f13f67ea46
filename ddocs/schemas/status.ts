// status: what the node's agent observed for one system. One writer: the node's own agent.
import { couchFields, idOf, name, isoTime } from './common.ts';

const nullableInt = { type: ['integer', 'null'] } as const;
const phase = { enum: ['pending', 'materializing', 'running', 'stopped', 'failed'] } as const;
const code = { type: ['string', 'null'], pattern: '^[A-Z][A-Z0-9_]{0,63}$' } as const;

/** Most entries a status history may hold (the agent keeps the newest N ≤ this; see docs/agent.md). */
export const STATUS_HISTORY_MAX = 100;

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
    phase,
    // The spec revision this status was computed from (like observedGeneration).
    observedRev: { type: ['string', 'null'], maxLength: 128 },
    pid: nullableInt,
    exitCode: nullableInt,
    restarts: { type: 'integer', minimum: 0 },
    code,
    message: { type: 'string', maxLength: 4096 },
    diskUsed: nullableInt,
    logTail: { type: 'string', maxLength: 16384 },
    conflict: { type: 'boolean' },
    // Phase transitions, oldest first, the newest N kept: what happened while the node was offline
    // (replication carries only the latest revision's body, so the history must live in the document).
    history: {
      type: 'array',
      maxItems: STATUS_HISTORY_MAX,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['at', 'phase'],
        properties: { at: isoTime, phase, exitCode: nullableInt, code, message: { type: 'string', maxLength: 512 } },
      },
    },
    updated: isoTime,
  },
} as const;
