#!/bin/sh
# anybios PE, resident mode: run by busybox init at poweroff/reboot. Each system's init gets its own
# halt signal (systemd: SIGRTMIN+3 = 37; busybox init: SIGUSR2; others SIGTERM), 10 s, then SIGKILL;
# then its root is unmounted and the data disk synced and unmounted.
export PATH=/sbin:/bin
for f in /run/anybios/*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do
    case "$(readlink "/proc/$c/exe")" in
      */systemd) kill -37 "$c" ;;
      */busybox) kill -USR2 "$c" ;;
      *) kill -TERM "$c" ;;
    esac
  done
done
i=0
while [ $i -lt 100 ]; do
  alive=
  for f in /run/anybios/*.pid; do [ -f "$f" ] && [ -d "/proc/$(cat "$f")" ] && alive=1; done
  [ -z "$alive" ] && break
  usleep 100000; i=$((i + 1))
done
# Still there: SIGKILL to each system's pid 1 ends its whole pid namespace.
for f in /run/anybios/*.pid; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do kill -KILL "$c"; done
done
for r in /run/anybios/systems/*; do
  umount "$r/dev" 2>/dev/null; umount "$r" 2>/dev/null || umount -l "$r"
done
sync
umount /run/anybios/disk 2>/dev/null || mount -o remount,ro /run/anybios/disk
echo "anybios: resident: systems stopped, data disk unmounted"
