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

KNOWN="anybios.root anybios.systems anybios.boot anybios.mode anybios.server anybios.net anybios.rootwait anybios.debug"
ROOT= SYSTEMS=/anybios/systems BOOT= MODE= SERVER= NET= ROOTWAIT=10 DEBUG= UNKNOWN=
for w in $(cat /proc/cmdline); do
  case "$w" in
    anybios.root=*) ROOT=${w#*=} ;;
    anybios.systems=*) SYSTEMS=${w#*=} ;;
    anybios.boot=*) BOOT=${w#*=} ;;
    anybios.mode=*) MODE=${w#*=} ;;
    anybios.server=*) SERVER=${w#*=} ;;
    anybios.net=*) NET=${w#*=} ;;
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
AGENT=
if [ -e /lib/anybios/agent/agent.mjs ] && [ "$MODE" = resident ]; then AGENT=1; fi
if [ -n "$SERVER" ]; then
  if [ ! -e /lib/anybios/agent/agent.mjs ]; then say "anybios.server=$SERVER is ignored: this image was built without --agent"
  elif [ "$MODE" != resident ]; then say "anybios.server=$SERVER is ignored: the agent runs in resident mode only"
  else
    # A URL the agent can take (host and port, nothing the shell or the agent's config could misread).
    case "$SERVER" in
      http://?*|https://?*) case "${SERVER#*://}" in *[!A-Za-z0-9.:/_-]*|/*|:*) rescue "anybios.server=$SERVER: expected http://HOST[:PORT] or https://HOST[:PORT] (letters, digits and . : / _ - only)" ;; esac ;;
      *) rescue "anybios.server=$SERVER: expected http://HOST[:PORT] or https://HOST[:PORT], e.g. anybios.server=http://10.0.2.2:8080" ;;
    esac
  fi
fi
[ -n "$NET" ] || { [ -n "$AGENT" ] && NET=dhcp || NET=none; }
case "$NET" in
  dhcp|none) ;;
  *) echo "$NET" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}(,([0-9]{1,3}\.){3}[0-9]{1,3}){0,2}$' \
       || rescue "anybios.net=$NET: expected dhcp, none or ADDRESS/PREFIX[,GATEWAY[,DNS]], e.g. anybios.net=10.0.2.15/24,10.0.2.2" ;;
esac

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

. /lib/anybios/systems.sh
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

# --- resident: the PE stays, each system runs in its own namespaces (systems.sh) ----------------------
# The network (virtio_net and the other NIC modules are loaded above): DHCP by busybox udhcpc, which
# keeps renewing in the background, or a static address from anybios.net.
net_up() {
  ip link set lo up
  [ "$NET" = none ] && return 0
  IF=
  for i in /sys/class/net/*; do
    n=${i##*/}
    [ "$n" != lo ] && [ "$(cat "$i/type" 2>/dev/null)" = 1 ] && { IF=$n; break; }
  done
  [ -n "$IF" ] || { say "network: no network interface found (anybios.net=$NET)"; return 1; }
  ip link set "$IF" up
  if [ "$NET" = dhcp ]; then
    udhcpc -i "$IF" -s /lib/anybios/udhcpc.sh -t 10 -T 2 -b -S -p /run/udhcpc.pid >/dev/null 2>&1
  else
    addr=${NET%%,*} rest=${NET#"$addr"} gw= dns=
    rest=${rest#,}; gw=${rest%%,*}; dns=${rest#"$gw"}; dns=${dns#,}
    ip addr add "$addr" dev "$IF" && say "network: $IF $addr${gw:+ via $gw} (anybios.net)"
    [ -z "$gw" ] || ip route add default via "$gw" dev "$IF"
    [ -z "$dns" ] || echo "nameserver $dns" > /etc/resolv.conf
  fi
}

hostname anybios
mount -t cgroup2 cgroup2 /sys/fs/cgroup || say "no cgroup2: systems that need cgroups (systemd) will fail"
STARTED=
for n in $NAMES; do
  check_system "$n"
done
printf 'disk=%s\nsystems=%s\nserver=%s\nlog=/run/anybios/agent.log\n' "$DISK" "$SYSTEMS" "$SERVER" > /run/anybios/pe.conf
CRED=$DISK/anybios/node/agent/credentials.json
if [ -n "$AGENT" ] && [ ! -f "$CRED" ]; then
  [ -z "$SERVER" ] || rescue "anybios.server=$SERVER: no node credential on $ROOT at /anybios/node/agent/credentials.json (anybios image disk --node FILE puts the output of \`anybios node add\` there)"
  say "agent: not started: no node credential on $ROOT at /anybios/node/agent/credentials.json"
  AGENT=
fi
net_up || say "network: not configured"
for n in $NAMES; do
  start_system "$n" && STARTED="$STARTED $n"
done
[ -n "$STARTED" ] || rescue "resident: no system could be started"
cat > /etc/inittab <<EOT
::askfirst:/bin/cttyhack /bin/sh -l
${AGENT:+::once:/lib/anybios/agent.sh}
::shutdown:/bin/sh /lib/anybios/stop.sh
::ctrlaltdel:/bin/reboot
EOT
say "resident: running$STARTED"
[ -z "$AGENT" ] || say "agent: starting (node data /anybios/node on $ROOT${SERVER:+, server $SERVER}; log /run/anybios/agent.log)"
exec /sbin/init
