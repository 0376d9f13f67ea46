// Building blocks shared by every document schema. Plain JSON Schema (draft-07) objects:
// they are compiled by ajv in the API, the web form and the agent, and to standalone ES5 for the ddocs.

/** Names become directory names, hostnames and database names: lowercase, digits, dashes. */
export const NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
export const NAME_RE = new RegExp(NAME_PATTERN);

export const name = { type: 'string', pattern: NAME_PATTERN } as const;

/** `_id` is `<type>:<name>`. */
export function idOf(type: string) {
  return { type: 'string', pattern: `^${type}:[a-z0-9][a-z0-9-]{0,62}$` } as const;
}

/**
 * CouchDB's own fields, allowed on every document (they arrive from replication and from PUT).
 * Not `_attachments`: see `attachments`.
 */
export const couchFields = {
  _rev: { type: 'string' },
  _deleted: { type: 'boolean' },
  _revisions: { type: 'object' },
  _conflicts: { type: 'array' },
  _revs_info: { type: 'array' },
  _local_seq: {},
} as const;

/**
 * `_attachments`, allowed only where a schema names it: template documents (a `tar` template's
 * `rootfs.tar`). Anything served from a node's database would otherwise be a way to put content
 * under the server's origin; a system, volume, node or status document with `_attachments` is refused.
 */
export const attachments = { type: 'object' } as const;

/** An absolute path with no `.`/`..` components and no NUL; resolved later inside a root. */
export const absolutePath = {
  type: 'string',
  maxLength: 1024,
  pattern: '^(/(?!\\.\\.?(/|$))[^/\\u0000]+)+/?$|^/$',
} as const;

export const labels = {
  type: 'object',
  maxProperties: 64,
  propertyNames: { type: 'string', pattern: '^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,62}$' },
  additionalProperties: { type: 'string', maxLength: 256 },
} as const;

export const isoTime = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$' } as const;
