#!/bin/sh
# anybios PE, resident mode: `anybios-enter NAME [CMD...]` runs CMD (default sh) inside system NAME:
# its mount, UTS, IPC and pid namespaces and its root (the init's), e.g.
#   anybios-enter system0 systemctl is-system-running
export PATH=/sbin:/bin
[ -n "$1" ] || { echo "usage: anybios-enter NAME [CMD...]" >&2; exit 2; }
n=$1; shift
[ -f "/run/anybios/$n.pid" ] || { echo "anybios-enter: no system $n (running: $(ls /run/anybios/systems 2>/dev/null | tr '\n' ' '))" >&2; exit 1; }
p=$(cat "/run/anybios/$n.pid")
init=$(cat "/proc/$p/task/$p/children" 2>/dev/null | cut -d' ' -f1)
[ -n "$init" ] || { echo "anybios-enter: system $n is not running" >&2; exit 1; }
[ $# -gt 0 ] || set -- /bin/sh
exec nsenter -t "$init" -m -u -i -p -r -w env -i container=anybios TERM=linux PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
