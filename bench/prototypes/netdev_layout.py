#!/usr/bin/env python3
"""Prototype of the netdev-hook guest layout (design study, not product code).

Prints an nftables ruleset (nft -f syntax) for N synthetic guests (the rules of
bench/fw_synthetic.h) in the layout proposed in docs/firewall-netdev.md:
  - guest OUT rules in a netdev ingress chain bound to the guest's port, which records a
    provisional verdict in mark bits (no conntrack at ingress);
  - one shared bridge prerouting chain, after br_netfilter ran conntrack, that applies the
    provisional verdict unless the packet is established (or drops it if invalid);
  - guest IN rules in a netdev egress chain bound to the guest's port, reading the conntrack
    state that `inet moat` stashed in the mark; a REJECT forwards the packet to a per-bridge
    reject port whose peer answers it (netdev egress cannot reject);
  - guests grouped `--per-table` to a netdev table, so a one-guest commit validates one small
    table while a packet only runs the chains of its own two ports.
Usage: netdev_layout.py --guests N [--per-table 100] [--first 1000] [--reject-port moatrj0]
       [--only-table K]   (print only table K: a one-guest-change batch for measurements)
"""
import argparse

EST, INV, REJ = 0x10000000, 0x20000000, 0x40000000
OUTV, OUT_ACC, OUT_DROP, OUT_REJ = 0x0C000000, 0x04000000, 0x08000000, 0x0C000000
REJ_IN = 0x02000000


def mac(vmid):
    return "bc:24:11:%02x:%02x:%02x" % ((vmid >> 16) & 0xFF, (vmid >> 8) & 0xFF, vmid & 0xFF)


def setmark(bits):
    return f"meta mark set meta mark & {~OUTV & 0xFFFFFFFF:#010x} | {bits:#010x}"


def shared(reject_port):
    host = f"""table inet moat {{
	chain stash-prerouting {{
		type filter hook prerouting priority -150; policy accept;
		meta mark set meta mark & 0x8fffffff
		ct state established,related meta mark set meta mark | {EST:#010x}
		ct state invalid meta mark set meta mark | {INV:#010x}
	}}
	chain stash-output {{
		type filter hook output priority -150; policy accept;
		meta mark set meta mark & 0x8fffffff
		ct state established,related meta mark set meta mark | {EST:#010x}
		ct state invalid meta mark set meta mark | {INV:#010x}
	}}
	chain do-reject {{
		meta mark set meta mark | {EST:#010x} comment "reflected into the answer (fwmark_reflect)"
		meta l4proto tcp reject with tcp reset
		reject with icmpx port-unreachable
	}}
	chain forward {{
		type filter hook forward priority 0; policy accept;
		meta mark & {REJ:#010x} != 0 jump do-reject
	}}
}}
table bridge moat-verdicts {{
	chain out {{
		type filter hook prerouting priority 10; policy accept;
		meta mark & {OUTV:#010x} == 0 accept comment "not from a firewalled port"
		meta mark & {EST:#010x} != 0 accept
		meta mark & {INV:#010x} != 0 drop
		meta mark & {OUTV:#010x} == {OUT_DROP:#010x} drop
		meta mark & {OUTV:#010x} == {OUT_REJ:#010x} meta mark set meta mark | {REJ:#010x}
	}}
}}
"""
    if reject_port:
        host += f"""table netdev moat-reject {{
	chain answer {{
		type filter hook ingress device "{reject_port}p" priority 0; policy drop;
		meta mark & {REJ_IN:#010x} == 0 drop
		meta l4proto tcp reject with tcp reset
		reject with icmpx port-unreachable
	}}
}}
"""
    return host


def guest(vmid, reject_port, extra_in, out_drop=False):
    dev, m = f"tap{vmid}i0", mac(vmid)
    variant = 0
    reject = (f'ether daddr {m} {setmark(0)} meta mark set meta mark | {REJ_IN:#010x} '
              f'fwd to "{reject_port}"') if reject_port else "drop"
    sets = f"""	set v4-{vmid}-allowed {{
		type ipv4_addr
		flags interval
		elements = {{ 192.0.2.{vmid % 250}, 198.51.100.0/26, 203.0.113.{variant} }}
	}}
	set v6-{vmid}-allowed {{
		type ipv6_addr
		elements = {{ 2001:db8::{vmid % 9000} }}
	}}
"""
    out = f"""	chain out-{vmid} {{
		type filter hook ingress device "{dev}" priority 0; policy accept;
		ether saddr != {m} drop comment "macfilter"
		meta protocol arp arp saddr ether != {m} drop comment "macfilter"
		meta protocol arp {setmark(OUT_ACC)} accept
		meta protocol ip udp sport 68 udp dport 67 {setmark(OUT_ACC)} accept comment "dhcp"
		meta protocol ip6 udp sport 546 udp dport 547 {setmark(OUT_ACC)} accept comment "dhcp"
		icmpv6 type @ndp-out {setmark(OUT_ACC)} accept comment "ndp"
		icmpv6 type 134 drop comment "radv"
		meta l4proto tcp th dport 25 {setmark(OUT_REJ)} accept comment "firewall/{vmid}.fw:18"
		meta l4proto udp th dport 123 {setmark(OUT_ACC)} accept comment "firewall/{vmid}.fw:19"
		{setmark(OUT_DROP if out_drop else OUT_ACC)} accept comment "policy"
	}}
"""
    inn = f"""	chain in-{vmid} {{
		type filter hook egress device "{dev}" priority 0; policy accept;
		meta mark & {EST:#010x} != 0 accept
		meta mark & {INV:#010x} != 0 drop
		meta protocol arp accept
		meta protocol ip udp sport 67 udp dport 68 accept comment "dhcp"
		meta protocol ip6 udp sport 547 udp dport 546 accept comment "dhcp"
		icmpv6 type @ndp-in accept comment "ndp"
		ip saddr @v4-{vmid}-allowed tcp dport 22 accept comment "firewall/{vmid}.fw:12"
		ip6 saddr @v6-{vmid}-allowed tcp dport 22 accept comment "firewall/{vmid}.fw:12"
		meta l4proto tcp th dport 80 accept comment "firewall/{vmid}.fw:13"
		meta l4proto tcp th dport 443 accept comment "firewall/{vmid}.fw:14"
		meta l4proto udp th dport 53 drop comment "firewall/{vmid}.fw:15"
		ip saddr 192.0.2.0/24 tcp dport 8000-8110 accept comment "firewall/{vmid}.fw:16"
		icmp type echo-request accept comment "firewall/{vmid}.fw:17"
		ip saddr @v4-{vmid}-allowed tcp dport 3306 accept comment "firewall/{vmid}.fw:20"
		ip6 saddr @v6-{vmid}-allowed tcp dport 3306 accept comment "firewall/{vmid}.fw:20"
{extra_in}		meta l4proto tcp th dport 23 {reject} comment "firewall/{vmid}.fw:21"
		meta l4proto tcp th dport 23 drop comment "firewall/{vmid}.fw:21"
		drop comment "policy"
	}}
"""
    return sets, out + inn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--guests", type=int, required=True)
    p.add_argument("--per-table", type=int, default=100)
    p.add_argument("--first", type=int, default=1000)
    p.add_argument("--reject-port", default="")
    p.add_argument("--only-table", type=int, default=-1)
    p.add_argument("--out-policy-drop", type=int, default=-1, help="this guest's policy_out is DROP")
    p.add_argument("--accept-udp", default="9000", help="IN ACCEPT -p udp -dport for every guest")
    a = p.parse_args()
    extra = f"\t\tmeta l4proto udp th dport {a.accept_udp} accept\n" if a.accept_udp else ""
    if a.only_table < 0:
        print(shared(a.reject_port))
    tables = (a.guests + a.per_table - 1) // a.per_table
    for t in range(tables):
        if a.only_table >= 0 and t != a.only_table:
            continue
        body = []
        for vmid in range(a.first + t * a.per_table, a.first + min(a.guests, (t + 1) * a.per_table)):
            sets, chains = guest(vmid, a.reject_port, extra, vmid == a.out_policy_drop)
            body.append(sets + chains)
        # Literal lists are named constant sets, as the compiler interns them: anonymous sets
        # cost the kernel a walk of the whole batch each (__nft_set_trans_bind).
        consts = ("\tset ndp-out {\n\t\ttype icmpv6_type\n\t\telements = { 133, 135, 136 }\n\t}\n"
                  "\tset ndp-in {\n\t\ttype icmpv6_type\n\t\telements = { 134, 135, 136 }\n\t}\n")
        print(f"table netdev moat-guests-{t} {{\n" + consts + "".join(body) + "}")


if __name__ == "__main__":
    main()
