#!/bin/sh
# anybios PE: `/lib/anybios/start-system NAME` starts system NAME of the data disk with the shell runtime
# (as /init does for anybios.boot). The agent's PE runtime (agent/pe/) runs it. Exit 1: not started.
export PATH=/sbin:/bin
say() { echo "anybios: $*"; }
[ -n "$1" ] || { echo "usage: start-system NAME" >&2; exit 2; }
while IFS='=' read -r k v; do
  case "$k" in disk) DISK=$v ;; systems) SYSTEMS=$v ;; esac
done < /run/anybios/pe.conf
. /lib/anybios/systems.sh
[ -z "$(init_children "$1")" ] || { say "system $1: already running"; exit 0; }
start_system "$1"
