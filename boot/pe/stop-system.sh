#!/bin/sh
# anybios PE: `/lib/anybios/stop-system NAME [GRACE]` halts system NAME (its own halt signal, each
# second again, for GRACE seconds, default 10; then SIGKILL), then unmounts its root.
export PATH=/sbin:/bin
[ -n "$1" ] || { echo "usage: stop-system NAME [GRACE]" >&2; exit 2; }
case "${2:-10}" in *[!0-9]*) echo "stop-system: GRACE must be whole seconds" >&2; exit 2 ;; esac
. /lib/anybios/systems.sh
grace=$(( ${2:-10} * 10 ))
i=0
while [ -n "$(init_children "$1")" ] && [ $i -lt $grace ]; do
  # pid 1 ignores signals until it has installed its handlers: repeat each second.
  [ $((i % 10)) -eq 0 ] && halt_system "$1"
  usleep 100000; i=$((i + 1))
done
for c in $(init_children "$1"); do kill -KILL "$c"; done
i=0
while [ -n "$(init_children "$1")" ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
[ -z "$(init_children "$1")" ] || { echo "stop-system: $1 is still running after SIGKILL" >&2; exit 1; }
release_system "$1"
echo "anybios: system $1 stopped"
