#!/bin/bash
# Checks the semantics of the netdev-hook prototype (bench/prototypes/netdev_layout.py) with
# real traffic: a node namespace with a bridge, two guest namespaces, br_netfilter, and the
# per-bridge reject port. Prints one line per probe: expected and observed outcome.
# Usage (root): bench/prototypes/netdev_semantics.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
t=ndp$$; n=${t}n; a=${t}a; b=${t}b
cleanup() { ip netns del $n 2>/dev/null; ip netns del $a 2>/dev/null; ip netns del $b 2>/dev/null; }
[ -z "${KEEP:-}" ] && trap cleanup EXIT
echo "namespaces: $n $a $b"
for ns in $n $a $b; do ip netns add $ns; ip -n $ns link set lo up; done
# fwmark_reflect: the RST the inet family sends for a bridged packet goes straight out of the
# sender's port (no output hook, no conntrack stash); it carries the rejected packet's mark,
# in which do-reject set the "established" bit the sender's egress chain accepts.
ip netns exec $n sysctl -qw net.ipv4.fwmark_reflect=1 net.ipv6.fwmark_reflect=1
ip netns exec $n sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null
ip -n $n link add vmbr0 type bridge
ip -n $n addr add 198.51.100.1/24 dev vmbr0
ip -n $n link set vmbr0 up
for g in "$a tap1000i0 198.51.100.10 bc:24:11:00:03:e8" "$b tap1001i0 198.51.100.11 bc:24:11:00:03:e9"; do
  set -- $g
  ip -n $n link add $2 type veth peer name eth0 netns $1
  ip -n $1 link set eth0 address $4
  ip -n $1 addr add $3/24 dev eth0
  ip -n $1 link set eth0 up
  ip -n $n link set $2 master vmbr0 up
done
# The reject port: a bridge port that never learns and is never flooded to; its peer answers
# what guest IN chains forward to it.
ip -n $n link add moatrj0 type veth peer name moatrj0p
ip -n $n link set moatrj0 master vmbr0 up
ip -n $n link set moatrj0p up
bridge -n $n link set dev moatrj0 learning off flood off mcast_flood off bcast_flood off
ip netns exec $n sysctl -qw net.ipv6.conf.moatrj0.disable_ipv6=1 net.ipv6.conf.moatrj0p.disable_ipv6=1
python3 "$here/netdev_layout.py" --guests 2 --per-table 100 --reject-port moatrj0 \
  --out-policy-drop 1001 | ip netns exec $n nft -f - || exit 1

listen() {  # ns port...
  local ns=$1; shift
  ip netns exec $ns python3 -c '
import socket, sys, select
ss = []
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p))); s.listen(16); ss.append(s)
while True:
    r, _, _ = select.select(ss, [], [])
    for s in r: s.accept()[0].close()
' "$@" &
}
probe() {  # expected ns host port
  local want=$1 ns=$2 host=$3 port=$4 got
  if [ "$ns" = node ]; then ns=$n; fi
  got=$(ip netns exec $ns python3 -c '
import socket, sys
s = socket.socket(); s.settimeout(1.5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connect")
except ConnectionRefusedError: print("refused")
except (socket.timeout, TimeoutError): print("timeout")
except OSError as e: print("error:%s" % e.errno)
' $host $port)
  printf '%-8s %-8s %s\n' "$([ "$got" = "$want" ] && echo ok || echo FAIL)" "$got" "$5"
  [ "$got" = "$want" ] || failed=1
}
failed=0
listen $a 80 22
listen $b 80 22 25 9999
sleep 0.5
probe connect $a 198.51.100.11 80 "a->b tcp 80: b IN accepts; b's answers pass b's OUT DROP policy as established"
probe refused $a 198.51.100.11 23 "a->b tcp 23: b IN REJECT, answered through the reject port"
probe timeout $a 198.51.100.11 24 "a->b tcp 24: b IN policy DROP"
probe refused node 198.51.100.11 23 "host->b tcp 23: IN REJECT for host traffic too (a DROP in today's layout)"
probe timeout node 198.51.100.11 24 "host->b tcp 24: IN policy DROP"
probe refused $a 198.51.100.11 25 "a->b tcp 25: a OUT REJECT (deferred to inet forward), b listens"
probe timeout $b 198.51.100.10 80 "b->a tcp 80: b OUT policy DROP for a new connection"
probe connect node 198.51.100.11 80 "host->b tcp 80"
# ping a->b: echo-request accepted by b IN, the reply passes b's OUT DROP policy as established
if ip netns exec $a ping -c1 -W1 198.51.100.11 >/dev/null; then echo "ok       reply    a->b ping"; else echo "FAIL     none     a->b ping"; failed=1; fi
kill $(jobs -p) 2>/dev/null
exit $failed
