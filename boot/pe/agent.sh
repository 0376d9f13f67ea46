#!/bin/sh
# anybios PE (built with --agent): the anybios agent, run by busybox init in resident mode, restarted
# 5 s after it exits. Its data dir is the node's directory on the data disk (the credential, its local
# database), its systems are the PE's (--strategy pe), and anybios.server (if given) is the server it
# syncs with. SIGTERM (poweroff's stop.sh) stops it before the systems are halted.
export PATH=/sbin:/bin
while IFS='=' read -r k v; do
  case "$k" in disk) DISK=$v ;; server) SERVER=$v ;; log) LOG=$v ;; esac
done < /run/anybios/pe.conf
DATA=$DISK/anybios/node
LOG=${LOG:-/run/anybios/agent.log}
child=
trap '[ -n "$child" ] && kill -TERM "$child" && wait "$child"; exit 0' TERM INT
echo $$ > /run/anybios/agent.pid
while :; do
  env -i PATH=/sbin:/bin HOME=/root TMPDIR=/tmp ANYBIOS_NODE_DATA="$DATA" \
    /lib/anybios/agent/node --max-semi-space-size=1 /lib/anybios/agent/agent.mjs --data "$DATA" --strategy pe ${SERVER:+--server "$SERVER"} >> "$LOG" 2>&1 </dev/null &
  child=$!
  wait "$child"
  code=$?
  child=
  echo "anybios: agent exited with $code; starting it again in 5 s (log: $LOG)" > /dev/console
  sleep 5
done
