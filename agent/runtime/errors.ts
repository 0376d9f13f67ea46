// The runtime's one catalog of error codes: every refusal and failure carries a code and a clear message.
// docs/runtime.md documents every code (test/agent/runtime/errors.test.ts checks it).

export const RUNTIME_ERRORS = {
  INVALID_NAME: 'a system, volume or template name must match ^[a-z0-9][a-z0-9-]{0,62}$',
  INVALID_SPEC: 'the system spec does not pass the schema',
  INVALID_TEMPLATE: 'the template does not pass the schema or does not match the spec',
  TEMPLATE_OUTSIDE_ROOTS: 'a dir template must lie under one of the configured template roots',
  TEMPLATE_NOT_FOUND: 'the template directory or tarball does not exist',
  TEMPLATE_SHA_MISMATCH: 'the tarball does not match the sha256 of the template',
  TEMPLATE_UNPACK_FAILED: 'the tarball could not be unpacked',
  TEMPLATE_HOST_COPY: 'the copy strategy cannot copy the host root; the host template needs overlayfs',
  TEMPLATE_HOST_ROOTLESS: 'the host template needs root: in a user namespace overlayfs cannot take / as its lower layer',
  TEMPLATE_HOST_DENIED: 'this node does not allow the host template (agent option --host-template deny, or not root)',
  TEMPLATE_DISABLED: 'the catalog document of the template says enabled: false',
  TEMPLATE_PULL_FAILED: 'the template\'s rootfs.tar could not be pulled or did not match its sha256 (retried)',
  TEMPLATE_NO_SPACE: 'pulling the template would fill the disk: refused before it started',
  PATH_INVALID: 'a path must be absolute, without "." or ".." components or NUL',
  PATH_RESERVED: 'the path is reserved by the runtime (/, /proc, /sys, /dev, /run, /tmp or a hidden host path)',
  PATH_SYMLINK: 'a component of the path is a symlink; mount targets must be real directories inside the rootfs',
  PATH_NOT_DIR: 'a component of the path exists and is not a directory',
  PATH_NESTED: 'a mount target lies inside another mount target of the same system',
  VOLUME_SYMLINK: 'the volume directory is a symlink',
  VOLUME_ROOT_SYMLINK: 'the volume root is a symlink',
  VOLUME_OUTSIDE_ROOT: 'the volume resolves outside the volume root',
  VOLUME_NOT_DIR: 'the volume path exists and is not a directory',
  NOT_PRIVILEGED: 'not root and no user namespace is available (unshare --user --map-root-user failed): rootless operation is impossible here',
  TOOL_MISSING: 'a required host tool (crun, unshare, nsenter, mount, sh, tar) was not found',
  IDS_EXHAUSTED: 'every private id range of this node is taken (one per system)',
  OVERLAY_UNAVAILABLE: 'overlayfs cannot be mounted here and the copy strategy was not allowed',
  BUSY: 'another operation on this system is in progress',
  NOT_FOUND: 'no such system in this data directory',
  NOT_RUNNING: 'the system is not running',
  RUNNING: 'the system is running; stop it first',
  START_FAILED: 'the system failed before its init or command was started (see message and log)',
  STOP_FAILED: 'the system did not exit after SIGKILL',
  SYSTEM_EXITED: 'the system exited with a non-zero code',
  SYSTEM_LOST: 'the system is gone and its supervisor recorded no exit code',
  CGROUP_FAILED: 'a cgroup could not be created or configured',
} as const;

export type RuntimeErrorCode = keyof typeof RUNTIME_ERRORS;

export class RuntimeError extends Error {
  override readonly name = 'RuntimeError';
  constructor(
    readonly code: RuntimeErrorCode,
    detail?: string,
    options?: { cause?: unknown },
  ) {
    super(detail ? `${detail}` : RUNTIME_ERRORS[code], options);
  }
}

export function isRuntimeError(e: unknown, code?: RuntimeErrorCode): e is RuntimeError {
  return e instanceof RuntimeError && (code === undefined || e.code === code);
}

export function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}
