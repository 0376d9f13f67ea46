# anybios PE: the shell runtime's functions, sourced by /init and by /lib/anybios/start-system (which
# the agent's PE runtime runs). Needs DISK (the data disk's mount point) and SYSTEMS (anybios.systems).
# Per started system, /run/anybios holds NAME.pid (the process whose child is the system's init),
# NAME.since (when it was started, UTC) and NAME.log (its output, also shown on the console).

# load_system NAME: reads <systems>/NAME/system.conf (key=value lines, not sourced) into S_*.
load_system() {
  S_DIR=$DISK$SYSTEMS/$1 S_TEMPLATE= S_INIT=/sbin/init S_ERR=
  [ -f "$S_DIR/system.conf" ] || return 1
  while IFS='=' read -r k v; do
    case "$k" in template) S_TEMPLATE=$v ;; init) S_INIT=$v ;; esac
  done < "$S_DIR/system.conf"
  S_LOWER=$DISK$S_TEMPLATE
  [ -n "$S_TEMPLATE" ] && [ -d "$S_LOWER" ] || { S_ERR="its template \"$S_TEMPLATE\" is not a directory on the disk"; return 2; }
  mkdir -p "$S_DIR/upper" "$S_DIR/work"
}
# The system's root: its template, read-only, under its own layer (the runtime's overlay, by hand).
mount_system() {
  mount -t overlay "anybios-$1" -o "lowerdir=$S_LOWER,upperdir=$S_DIR/upper,workdir=$S_DIR/work" "$2"
}

# --- resident: each system runs in its own namespaces ------------------------------------------------
# The shell runtime of the PE: mount, uts, ipc and pid namespaces and a chroot (no user namespace, no
# seccomp: see docs/boot.md). Messages go to stdout; returns 1 when the system was not started.
start_system() {
  n=$1
  load_system "$n" || { say "system $n: not started: ${S_ERR:-no such system in $SYSTEMS}"; return 1; }
  r=/run/anybios/systems/$n
  mkdir -p "$r"
  mount_system "$n" "$r" || { say "system $n: not started: cannot mount its root"; return 1; }
  if [ ! -e "$r$S_INIT" ] && [ ! -L "$r$S_INIT" ]; then
    umount "$r"; say "system $n: not started: its init $S_INIT is not in its root"; return 1
  fi
  # Its own /dev: a few nodes, not the machine's disks, and no console: the console is the PE's (a
  # systemd system would start a getty on it and take the operator's keystrokes). Its init's output
  # still reaches the console through the descriptors it inherits; systemd's status goes to its journal.
  if [ -d "$r/dev" ]; then
    mount -t tmpfs -o mode=755,size=1m "anybios-dev-$n" "$r/dev"
    mknod -m 666 "$r/dev/null" c 1 3; mknod -m 666 "$r/dev/zero" c 1 5; mknod -m 666 "$r/dev/full" c 1 7
    mknod -m 666 "$r/dev/random" c 1 8; mknod -m 666 "$r/dev/urandom" c 1 9; mknod -m 666 "$r/dev/tty" c 5 0
    mkdir -p "$r/dev/pts" "$r/dev/shm"
  fi
  # Its own cgroup (systemd keeps its units' cgroups below it; busybox unshare has no cgroup namespace,
  # so systemd finds its place from /proc/self/cgroup).
  cg=/sys/fs/cgroup/anybios/$n
  mkdir -p "$cg"
  # In its namespaces (the inner shell is pid 1 of the new pid namespace, then execs the init): its own
  # /proc, /sys and cgroup2, its hostname, container=anybios (so systemd acts as in a container), then
  # chroot. (busybox's --mount-proc fails here: it makes the target private, which is not a mount point.)
  # Its output: to the console (as it always was) and to /run/anybios/NAME.log (the agent's logs and the
  # status' logTail; the agent keeps its size), through a fifo and tee, which ends with the system.
  out=/run/anybios/$n.out
  rm -f "$out"; mkfifo -m 600 "$out"
  tee -a "/run/anybios/$n.log" < "$out" > /dev/console 2>&1 &
  setsid sh -c 'echo $$ > "$0/cgroup.procs"; exec unshare -m -u -i -p -f sh -c "$@"' "$cg" \
    'mount --make-rprivate /; [ -d "$1/proc" ] && mount -t proc proc "$1/proc"
     if [ -d "$1/sys" ]; then mount -t sysfs sysfs "$1/sys"; [ -d "$1/sys/fs/cgroup" ] && mount -t cgroup2 cgroup2 "$1/sys/fs/cgroup"; fi
     hostname "$0"; exec env -i container=anybios TERM=linux PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$1" "$2"' \
    "$n" "$r" "$S_INIT" </dev/null >"$out" 2>&1 &
  echo $! > "/run/anybios/$n.pid"
  date -u +%Y-%m-%dT%H:%M:%SZ > "/run/anybios/$n.since"
  say "resident: system $n starting (template $S_TEMPLATE, init $S_INIT, pid $!)"
}

# init_children NAME: the pids of system NAME's init (the child of its recorded process), if running.
init_children() {
  [ -f "/run/anybios/$1.pid" ] || return 0
  p=$(cat "/run/anybios/$1.pid")
  cat "/proc/$p/task/$p/children" 2>/dev/null
}

# halt_system NAME: its init's own halt signal (systemd: SIGRTMIN+3 = 37; busybox init: SIGUSR2;
# others SIGTERM). The pid namespace ends with its pid 1.
halt_system() {
  for c in $(init_children "$1"); do
    case "$(readlink "/proc/$c/exe")" in
      */systemd) kill -37 "$c" ;;
      */busybox) kill -USR2 "$c" ;;
      *) kill -TERM "$c" ;;
    esac
  done
}

# release_system NAME: after its init is gone, its /dev and root are unmounted and its state removed.
release_system() {
  r=/run/anybios/systems/$1
  umount "$r/dev" 2>/dev/null; umount "$r" 2>/dev/null || umount -l "$r" 2>/dev/null
  rmdir "/sys/fs/cgroup/anybios/$1" 2>/dev/null
  rm -f "/run/anybios/$1.pid" "/run/anybios/$1.since" "/run/anybios/$1.out"
}
