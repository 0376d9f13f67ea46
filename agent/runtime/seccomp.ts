// The default seccomp filter of a system (pure data, in the OCI runtime spec's format; crun compiles it).
//
// A deny list, not Docker's allow list: systems are whole OSes as often as single apps, and an allow
// list that is too short breaks an init in ways that are hard to see. What is denied is what reaches
// the host kernel's most sensitive or least namespaced parts; everything else is already bounded by the
// user namespace (capabilities count only inside it) and by the capability bounding set.
// Denied calls fail with EPERM (an "unsupported" answer programs already handle), never kill.

export interface SeccompRule {
  names: string[];
  action: 'SCMP_ACT_ERRNO';
  errnoRet: number;
}

export interface SeccompProfile {
  defaultAction: 'SCMP_ACT_ALLOW';
  architectures: string[];
  syscalls: SeccompRule[];
}

const EPERM = 1;

/** System calls no system may make, by what they would reach. */
export const DENIED_SYSCALLS: Record<string, string[]> = {
  // Code into the host kernel, or replace it.
  'kernel modules and kexec': ['init_module', 'finit_module', 'delete_module', 'create_module', 'query_module', 'get_kernel_syms', 'kexec_load', 'kexec_file_load'],
  // The kernel keyring is not namespaced: keys of the host and of other systems live there.
  keyring: ['keyctl', 'add_key', 'request_key'],
  // eBPF programs, perf events and userfaultfd: large kernel attack surface, host-wide observation.
  'bpf, perf, userfaultfd': ['bpf', 'perf_event_open', 'userfaultfd'],
  // File handles bypass the mount tree: the "shocker" escape (open_by_handle_at on the host's fs).
  'file handles': ['open_by_handle_at', 'name_to_handle_at'],
  // Host-wide state: clocks, swap, accounting, quotas, the kernel log, NFS server, old ABIs.
  'host-wide state': [
    'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64', 'settimeofday', 'stime', 'adjtimex',
    'swapon', 'swapoff', 'acct', 'quotactl', 'quotactl_fd', 'syslog', 'nfsservctl', 'lookup_dcookie',
    'uselib', 'ustat', 'sysfs', '_sysctl', 'vm86', 'vm86old', 'iopl', 'ioperm',
  ],
  // Another process's memory (the pid namespace hides the host's; this closes the rest).
  'cross-process memory': ['process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd'],
};

/**
 * Denied to app systems only. An os system's init powers off with reboot(2) (which only ends its own pid
 * namespace) and a modern systemd sets up its services with the new mount API; an app needs neither, and
 * the mount API on detached trees is the newest, least reviewed way to reach mounts.
 */
export const APP_ONLY_DENIED = ['reboot', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr'];

const ARCHES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  arm: ['SCMP_ARCH_ARM'],
  ia32: ['SCMP_ARCH_X86'],
};

export function seccompProfile(kind: 'os' | 'app', arch: string = process.arch): SeccompProfile {
  const names = Object.values(DENIED_SYSCALLS).flat();
  if (kind === 'app') names.push(...APP_ONLY_DENIED);
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    // Every ABI this machine's kernel accepts (a 32-bit call must not slip past the filter), and no
    // more: each architecture listed is one more filter section to build at every start.
    architectures: ARCHES[arch] ?? ['SCMP_ARCH_NATIVE'],
    syscalls: [{ names: [...new Set(names)].sort(), action: 'SCMP_ACT_ERRNO', errnoRet: EPERM }],
  };
}
