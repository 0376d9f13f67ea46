// system: the desired state of one system on the node whose database holds it.
import { couchFields, idOf, name, absolutePath, labels, isoTime } from './common.ts';

const argv = { type: 'array', minItems: 1, maxItems: 256, items: { type: 'string', maxLength: 4096 } } as const;

export const systemSchema = {
  $id: 'system',
  type: 'object',
  additionalProperties: false,
  required: ['_id', 'type', 'name', 'kind', 'template', 'state'],
  properties: {
    ...couchFields,
    _id: idOf('system'),
    type: { const: 'system' },
    name,
    description: { type: 'string', maxLength: 1024 },
    // os boots its own init; app runs one command on a shared template rootfs.
    kind: { enum: ['os', 'app'] },
    template: name,
    // The desired run state is explicit, never inferred from the restart policy.
    state: { enum: ['running', 'stopped'] },
    init: argv,
    command: argv,
    env: {
      type: 'object',
      maxProperties: 256,
      propertyNames: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' },
      additionalProperties: { type: 'string', maxLength: 4096 },
    },
    workdir: absolutePath,
    hostname: name,
    mounts: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['volume', 'target'],
        properties: { volume: name, target: absolutePath, readOnly: { type: 'boolean' } },
      },
    },
    network: { enum: ['none', 'host'] },
    // Root of the host inside: no user namespace, every capability, no seccomp filter, /proc unmasked.
    // Written only by admins and operators (lib/rules.js), never by the node's own credential.
    privileged: { type: 'boolean' },
    restart: { enum: ['always', 'on-failure', 'never'] },
    resources: {
      type: 'object',
      additionalProperties: false,
      properties: {
        memory: { type: 'integer', minimum: 4194304, description: 'bytes' },
        pids: { type: 'integer', minimum: 1, maximum: 4194304 },
        cpuWeight: { type: 'integer', minimum: 1, maximum: 10000 },
      },
    },
    labels,
    // Changing it asks for a restart with an otherwise unchanged spec (`anybios restart`).
    restartedAt: isoTime,
  },
  allOf: [
    { if: { properties: { kind: { const: 'os' } } }, then: { not: { required: ['command'] } } },
    { if: { properties: { kind: { const: 'app' } } }, then: { required: ['command'], not: { required: ['init'] } } },
  ],
} as const;
