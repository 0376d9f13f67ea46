#!/bin/sh
# anybios PE: the initrd's /init (busybox sh, pid 1). Built into initrd.img by `anybios image build`;
# docs/boot.md has the parameters and the disk layout. It reads anybios.* from the kernel command line,
# mounts the data disk, then either hands the machine to one system (switch) or stays resident and
# starts several (resident). Every bad or missing parameter ends in rescue(), which says which.
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run/anybios

say() { echo "anybios: $*"; }

# The console shell of last resort: the message first (the operator's only clue), then shells forever
# (pid 1 must not exit: the kernel would panic).
rescue() {
  say "rescue: $*"
  say "rescue: kernel command line: $(cat /proc/cmdline)"
  say "rescue: starting a shell on the console (see docs/boot.md for the anybios.* parameters)"
  while :; do
    setsid cttyhack sh -l
    say "rescue: shell exited; starting another"
  done
}

KNOWN="anybios.root anybios.systems anybios.boot anybios.mode anybios.server anybios.rootwait anybios.debug"
ROOT= SYSTEMS=/anybios/systems BOOT= MODE= SERVER= ROOTWAIT=10 DEBUG= UNKNOWN=
for w in $(cat /proc/cmdline); do
  case "$w" in
    anybios.root=*) ROOT=${w#*=} ;;
    anybios.systems=*) SYSTEMS=${w#*=} ;;
    anybios.boot=*) BOOT=${w#*=} ;;
    anybios.mode=*) MODE=${w#*=} ;;
    anybios.server=*) SERVER=${w#*=} ;;
    anybios.rootwait=*) ROOTWAIT=${w#*=} ;;
    anybios.debug|anybios.debug=*) DEBUG=1 ;;
    anybios.*) UNKNOWN="$UNKNOWN ${w%%=*}" ;;
  esac
done

# Modules of the distribution kernel the PE needs (disk controllers, ext4, overlay), in dependency
# order; those built into the kernel or without their hardware fail quietly.
while read -r m; do
  if [ -n "$DEBUG" ]; then insmod "/lib/modules/anybios/$m.ko" || say "module $m not loaded"
  else insmod "/lib/modules/anybios/$m.ko" 2>/dev/null; fi
done < /lib/modules/anybios/load

# --- parameters --------------------------------------------------------------------------------
[ -z "$UNKNOWN" ] || rescue "unknown parameter(s):$UNKNOWN (known: $KNOWN)"
[ -n "$ROOT" ] || rescue "anybios.root is missing: name the disk that holds the systems, e.g. anybios.root=LABEL=anybios"
case "$ROOT" in
  LABEL=?*|UUID=?*|/dev/?*) ;;
  *) rescue "anybios.root=$ROOT: expected LABEL=..., UUID=... or /dev/..." ;;
esac
case "$SYSTEMS" in
  /*) case "$SYSTEMS" in */../*|*/..|*/./*|*/.) rescue "anybios.systems=$SYSTEMS: no . or .. components" ;; esac ;;
  *) rescue "anybios.systems=$SYSTEMS: expected an absolute path on the data disk, e.g. /anybios/systems" ;;
esac
case "$ROOTWAIT" in ''|*[!0-9]*) rescue "anybios.rootwait=$ROOTWAIT: expected seconds" ;; esac
[ -n "$BOOT" ] || rescue "anybios.boot is missing: name the system(s) to start, e.g. anybios.boot=system0"
NAMES=$(echo "$BOOT" | tr ',' ' ')
COUNT=0
for n in $NAMES; do
  case "$n" in
    [a-z0-9]*) case "$n" in *[!a-z0-9-]*) rescue "anybios.boot: bad system name \"$n\" (a-z, 0-9 and -)" ;; esac ;;
    *) rescue "anybios.boot: bad system name \"$n\" (a-z, 0-9 and -)" ;;
  esac
  COUNT=$((COUNT + 1))
done
[ "$COUNT" -gt 0 ] || rescue "anybios.boot=$BOOT names no system"
if [ -z "$MODE" ]; then
  if [ "$COUNT" -eq 1 ]; then MODE=switch; else MODE=resident; fi
fi
case "$MODE" in
  switch) [ "$COUNT" -eq 1 ] || rescue "anybios.mode=switch hands the machine to one system; anybios.boot names $COUNT ($BOOT)" ;;
  resident) ;;
  *) rescue "anybios.mode=$MODE: expected switch or resident" ;;
esac
[ -z "$SERVER" ] || [ -e /lib/anybios/agent ] || say "anybios.server=$SERVER is ignored: this image was built without --agent"

# --- the data disk -------------------------------------------------------------------------------
find_disk() {
  case "$ROOT" in
    LABEL=*|UUID=*) findfs "$ROOT" 2>/dev/null ;;
    *) [ -b "$ROOT" ] && echo "$ROOT" ;;
  esac
}
DEV=
i=0
while :; do
  DEV=$(find_disk) && [ -n "$DEV" ] && break
  [ "$i" -ge $((ROOTWAIT * 10)) ] && rescue "anybios.root=$ROOT: no such disk after ${ROOTWAIT}s (block devices: $(ls /sys/class/block | tr '\n' ' '))"
  [ "$i" -eq 10 ] && say "waiting up to ${ROOTWAIT}s for $ROOT"
  usleep 100000
  i=$((i + 1))
done
DISK=/run/anybios/disk
mkdir -p "$DISK"
mount -o rw "$DEV" "$DISK" || rescue "anybios.root=$ROOT: cannot mount $DEV"
say "data disk $ROOT is $DEV"
[ -d "$DISK$SYSTEMS" ] || rescue "anybios.systems=$SYSTEMS: no such directory on $ROOT ($DEV)"

# load_system NAME: reads <systems>/NAME/system.conf (key=value lines, not sourced) into S_*.
load_system() {
  S_DIR=$DISK$SYSTEMS/$1 S_TEMPLATE= S_INIT=/sbin/init
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
have_systems() { ls "$DISK$SYSTEMS" 2>/dev/null | tr '\n' ' '; }
check_system() {
  load_system "$1"
  case $? in
    0) ;;
    1) rescue "anybios.boot: no system \"$1\" in $SYSTEMS on $ROOT (there: $(have_systems))" ;;
    *) rescue "system $1: $S_ERR" ;;
  esac
}

# --- switch: the machine becomes the system --------------------------------------------------------
if [ "$MODE" = switch ]; then
  NAME=$NAMES
  check_system "$NAME"
  mkdir -p /newroot
  mount_system "$NAME" /newroot || rescue "system $NAME: cannot mount its root (overlay of $S_TEMPLATE and its layer)"
  if [ ! -e "/newroot$S_INIT" ] && [ ! -L "/newroot$S_INIT" ]; then
    umount /newroot
    rescue "system $NAME: its init $S_INIT is not in its root"
  fi
  hostname "$NAME"
  for d in dev proc sys; do
    if [ -d "/newroot/$d" ]; then mount --move "/$d" "/newroot/$d"; else umount -l "/$d"; fi
  done
  say "switch: system $NAME (template $S_TEMPLATE), exec $S_INIT"
  exec switch_root /newroot "$S_INIT"
fi

# --- resident: the PE stays, each system runs in its own namespaces ---------------------------------
# The shell runtime of the PE: mount, uts, ipc and pid namespaces and a chroot (no user namespace, no
# seccomp: the full runtime, crun and the agent, needs node; see docs/boot.md).
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
  setsid sh -c 'echo $$ > "$0/cgroup.procs"; exec unshare -m -u -i -p -f sh -c "$@"' "$cg" \
    'mount --make-rprivate /; [ -d "$1/proc" ] && mount -t proc proc "$1/proc"
     if [ -d "$1/sys" ]; then mount -t sysfs sysfs "$1/sys"; [ -d "$1/sys/fs/cgroup" ] && mount -t cgroup2 cgroup2 "$1/sys/fs/cgroup"; fi
     hostname "$0"; exec env -i container=anybios TERM=linux PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$1" "$2"' \
    "$n" "$r" "$S_INIT" </dev/null >/dev/console 2>&1 &
  echo $! > "/run/anybios/$n.pid"
  say "resident: system $n starting (template $S_TEMPLATE, init $S_INIT, pid $!)"
}

hostname anybios
mount -t cgroup2 cgroup2 /sys/fs/cgroup || say "no cgroup2: systems that need cgroups (systemd) will fail"
STARTED=
for n in $NAMES; do
  check_system "$n"
done
for n in $NAMES; do
  start_system "$n" && STARTED="$STARTED $n"
done
[ -n "$STARTED" ] || rescue "resident: no system could be started"
cat > /etc/inittab <<EOT
::askfirst:/bin/cttyhack /bin/sh -l
::shutdown:/bin/sh /lib/anybios/stop.sh
::ctrlaltdel:/bin/reboot
EOT
say "resident: running$STARTED"
exec /sbin/init
