// The OCI runtime config (config.json) of one system run, for crun (pure).
//
// What a default system gets (the security model in docs/runtime.md): its own pid, mount, uts, ipc,
// cgroup and (network `none`) network namespaces; a user namespace with a private range of host ids
// (root inside is an unprivileged id outside); pivot_root into its root (crun detaches the old root);
// Docker's default capability set (os systems add what an init needs, all of it confined to the user
// namespace); no_new_privs for app systems; the seccomp deny list of seccomp.ts; /proc paths that
// reach the host masked or read-only; /sys read-only. `privileged` gives up all of that but the
// namespaces and pivot_root: root of the host, every capability, no filter.
import { seccompProfile, type SeccompProfile } from './seccomp.ts';
import type { VolumeMount } from './mounts.ts';

export interface IdRange {
  /** First host id: container id 0 is host id `hostId` (uid and gid alike). */
  hostId: number;
  size: number;
}

export interface OciInput {
  /** The system's root as crun must see it (already mounted: the overlay, inside our mount namespace). */
  rootfs: string;
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  hostname: string;
  kind: 'os' | 'app';
  privileged: boolean;
  network: 'none' | 'host';
  /** Container ids 0..size-1 → host ids; null: no user namespace (privileged). */
  ids: IdRange | null;
  /** We are not root: crun itself runs in a user namespace where only our uid is mapped (to root). */
  rootless?: boolean;
  /** Volumes through an idmapped bind (crun's `idmap`): on disk they keep the system's own ids. */
  idmapVolumes?: boolean;
  volumes: VolumeMount[];
  /** Capabilities we hold ourselves (our bounding set): a system can be given no more. */
  bound?: string[];
}

/** Docker's default bounding set: enough for package managers, daemons that drop privileges, ping. */
export const APP_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/**
 * An init (systemd, busybox init, OpenRC) mounts, configures its network, sets limits and powers off.
 * Inside a user namespace each of these counts only for the system's own namespaces (the kernel checks
 * the namespace that owns the object), as with systemd-nspawn's --private-users.
 */
export const OS_EXTRA_CAPS = ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN', 'CAP_SYS_RESOURCE', 'CAP_SYS_BOOT', 'CAP_SYS_PTRACE', 'CAP_IPC_LOCK', 'CAP_LEASE', 'CAP_SYS_NICE'];

/** Every capability of Linux 6.x (privileged systems). */
export const ALL_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** /proc and /sys paths that show or change the host: covered (masked) or made read-only. */
export const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/proc/sysrq-trigger', '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys'];

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciConfig {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>;
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string }[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    maskedPaths?: string[];
    readonlyPaths?: string[];
    seccomp?: SeccompProfile;
    rootfsPropagation: string;
  };
}

export function capabilitySet(kind: 'os' | 'app', privileged: boolean, bound: string[] = ALL_CAPS): string[] {
  const want = privileged ? ALL_CAPS : kind === 'os' ? [...APP_CAPS, ...OS_EXTRA_CAPS] : APP_CAPS;
  return want.filter((c) => bound.includes(c));
}

/** The names of the capabilities in a CapBnd mask of /proc/<pid>/status (bit n = ALL_CAPS[n]). */
export function capsOfMask(hex: string): string[] {
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPS.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

export function systemMounts(i: OciInput): OciMount[] {
  const userns = i.ids !== null || !!i.rootless;
  // gid 5 (tty) for pty slaves only where it exists inside.
  const ptsGid = !userns || (i.ids?.size ?? 0) > 5 ? ['gid=5'] : [];
  const m: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', ...ptsGid] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  // Only the owner of the network namespace may mount a sysfs: with the host's network, bind it.
  if (userns && i.network === 'host') m.push({ destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'ro', 'nosuid', 'noexec', 'nodev'] });
  else m.push({ destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['ro', 'nosuid', 'noexec', 'nodev'] });
  m.push({ destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] });
  m.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
  for (const v of i.volumes) {
    m.push({ destination: v.target, type: 'bind', source: v.source, options: ['bind', 'nosuid', 'nodev', ...(v.readOnly ? ['ro'] : []), ...(i.idmapVolumes ? ['idmap'] : [])] });
  }
  return m;
}

export function ociConfig(i: OciInput): OciConfig {
  const caps = capabilitySet(i.kind, i.privileged, i.bound);
  const namespaces = ['pid', 'mount', 'uts', 'ipc', 'cgroup'];
  if (i.network === 'none') namespaces.push('network');
  if (i.ids) namespaces.push('user');
  const c: OciConfig = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: i.argv,
      env: Object.entries(i.env).map(([k, v]) => `${k}=${v}`),
      cwd: i.cwd,
      // Ambient stays empty: root keeps its set across exec; a program run as another user gets none.
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: i.kind === 'app' && !i.privileged,
    },
    root: { path: i.rootfs, readonly: false },
    hostname: i.hostname,
    mounts: systemMounts(i),
    linux: { namespaces: namespaces.map((type) => ({ type })), rootfsPropagation: 'private' },
  };
  if (i.ids) {
    const map = [{ containerID: 0, hostID: i.ids.hostId, size: i.ids.size }];
    c.linux.uidMappings = map;
    c.linux.gidMappings = map;
  }
  if (!i.privileged) {
    c.linux.maskedPaths = MASKED_PATHS;
    c.linux.readonlyPaths = READONLY_PATHS;
    c.linux.seccomp = seccompProfile(i.kind);
  }
  return c;
}
