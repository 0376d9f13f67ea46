// TypeScript shapes of the documents; test/ddocs/schemas.test.ts keeps them honest against the schemas.

export interface CouchMeta {
  _id: string;
  _rev?: string;
  _deleted?: boolean;
  _conflicts?: string[];
}

export interface TemplateDoc extends CouchMeta {
  /** Only templates carry attachments (a `tar` template's `rootfs.tar`). */
  _attachments?: Record<string, unknown>;
  type: 'template';
  name: string;
  description?: string;
  source: 'host' | 'dir' | 'tar';
  path?: string;
  sha256?: string;
  /** false: no node starts a system on it. */
  enabled?: boolean;
  labels?: Record<string, string>;
}

export interface MountSpec { volume: string; target: string; readOnly?: boolean }
export interface Resources { memory?: number; pids?: number; cpuWeight?: number }

export interface SystemDoc extends CouchMeta {
  type: 'system';
  name: string;
  description?: string;
  kind: 'os' | 'app';
  template: string;
  state: 'running' | 'stopped';
  init?: string[];
  command?: string[];
  env?: Record<string, string>;
  workdir?: string;
  hostname?: string;
  mounts?: MountSpec[];
  network?: 'none' | 'host';
  /** Root of the host inside (no user namespace, all capabilities, no seccomp): admins and operators only. */
  privileged?: boolean;
  restart?: 'always' | 'on-failure' | 'never';
  resources?: Resources;
  labels?: Record<string, string>;
  restartedAt?: string;
}

export interface VolumeDoc extends CouchMeta {
  type: 'volume';
  name: string;
  description?: string;
  labels?: Record<string, string>;
}

export interface NodeDoc extends CouchMeta {
  type: 'node';
  name: string;
  hostname?: string;
  heartbeat?: string;
  startedAt?: string;
  agentVersion?: string;
  capabilities?: Record<string, unknown>;
  versions?: Record<string, string>;
  labels?: Record<string, string>;
}

export type Phase = 'pending' | 'materializing' | 'running' | 'stopped' | 'failed';

export interface StatusDoc extends CouchMeta {
  type: 'status';
  name: string;
  phase: Phase;
  observedRev?: string | null;
  pid?: number | null;
  exitCode?: number | null;
  restarts?: number;
  code?: string | null;
  message?: string;
  diskUsed?: number | null;
  logTail?: string;
  conflict?: boolean;
  /** Phase transitions, oldest first (the newest N kept). */
  history?: StatusHistoryEntry[];
  updated: string;
}

export interface StatusHistoryEntry { at: string; phase: Phase; exitCode?: number | null; code?: string | null; message?: string }

export type AnyDoc = TemplateDoc | SystemDoc | VolumeDoc | NodeDoc | StatusDoc;
