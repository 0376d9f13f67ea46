#!/bin/sh
# anybios PE, resident mode: run by busybox init at poweroff/reboot. The agent (if any) is stopped
# first, so it does not start again what is being halted. Each system's init gets its own halt signal
# (systems.sh), 10 s, then SIGKILL; then its root is unmounted and the data disk synced and unmounted.
export PATH=/sbin:/bin
. /lib/anybios/systems.sh
if [ -f /run/anybios/agent.pid ]; then
  a=$(cat /run/anybios/agent.pid)
  kill -TERM "$a" 2>/dev/null
  i=0
  while [ -d "/proc/$a" ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
fi
names=
for f in /run/anybios/*.pid; do
  [ -f "$f" ] || continue
  n=${f##*/}; n=${n%.pid}
  [ "$n" = agent ] && continue
  names="$names $n"
done
i=0
while [ $i -lt 100 ]; do
  alive=
  for n in $names; do [ -n "$(init_children "$n")" ] && alive=1; done
  [ -z "$alive" ] && break
  # pid 1 ignores signals until it has installed its handlers: repeat each second.
  [ $((i % 10)) -eq 0 ] && for n in $names; do halt_system "$n"; done
  usleep 100000; i=$((i + 1))
done
# Still there: SIGKILL to each system's pid 1 ends its whole pid namespace.
for n in $names; do for c in $(init_children "$n"); do kill -KILL "$c"; done; done
usleep 200000
for n in $names; do release_system "$n"; done
sync
umount /run/anybios/disk 2>/dev/null || mount -o remount,ro /run/anybios/disk
echo "anybios: resident: systems stopped, data disk unmounted"
