#!/bin/sh
# anybios PE: busybox udhcpc's event script (udhcpc -s): applies the lease to the interface, the
# default route and /etc/resolv.conf. udhcpc passes interface, ip, mask (prefix length), router, dns.
export PATH=/sbin:/bin
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    if [ -n "$router" ]; then
      ip route del default 2>/dev/null
      for r in $router; do ip route add default via "$r" dev "$interface" && break; done
    fi
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "anybios: network: $interface $ip/${mask:-24}${router:+ via $router} (DHCP)" > /dev/console
    ;;
esac
exit 0
