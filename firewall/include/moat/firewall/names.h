// Every kernel-visible name of the firewall (tables, chains, sets, marks, guest devices) comes
// from here (STYLE.md rule 6), so the compiler, the simulator and tests agree on them.
#pragma once

#include <cstdint>
#include <iterator>
#include <optional>
#include <string>

#include "moat/firewall/ir.h"
#include "moat/firewall/model.h"

namespace moat::firewall::names {

// `table inet moat`: host input/output/forward, the conntrack stash and deferred rejects.
inline constexpr const char* kHostTable = "moat";
// `table bridge moat-guests-<shard>`: guest chains, sharded to keep each commit small.
std::string guest_table(int shard);
// The tables Moat owns in a namespace, of any family: `moat` and `moat-*`. A resync (the
// kernel or the state file no longer says what Moat applied) replaces every one of them.
bool owned_table(const std::string& name);

std::string guest_chain(uint32_t vmid, Direction dir);             // guest-100-in / guest-100-out
std::string group_chain(const std::string& group, Direction dir);  // group-web-in/-out/-fwd
std::string vnet_chain(const std::string& vnet);                   // vnet-<name>

// NIC device names: tap<vmid>i<n> (VMs), veth<vmid>i<n> (containers).
std::string guest_device(const Guest& guest, int nic);
// Proxmox's bridges a NIC may be plugged into (nic_bridges.h): fwbr<vmid>i<N>, the NIC's own
// firewall bridge, joined to an OVS bridge by the OVS internal port fwln<vmid>o<N>, or to a
// Linux bridge by the veth pair fwln<vmid>i<N> (its port on fwbr) and fwpr<vmid>p<N> (its port
// on the Linux bridge); and <bridge>v<tag>, the bridge of VLAN `tag` of a bridge that is not
// VLAN-aware.
std::string firewall_bridge(uint32_t vmid, int nic);
inline constexpr const char* kFirewallBridgePrefix = "fwbr";  // of every firewall bridge
std::string ovs_link_port(uint32_t vmid, int nic);
std::string firewall_link_port(uint32_t vmid, int nic);
std::string firewall_uplink_port(uint32_t vmid, int nic);
std::string vlan_bridge(const std::string& bridge, uint16_t tag);

// Set names: v4-dc/<name>, v6-guest-100/<name>, v4-sdn/<name>.
std::string ipset(int family, const std::string& scope, uint32_t vmid, const std::string& name);
inline constexpr const char* kMacSet = "guest-macs";               // iifname . ether saddr
inline constexpr const char* kMacfilterPorts = "macfilter-ports";  // iifname with macfilter on
inline constexpr const char* kOutPorts = "out-ports";    // iifname : goto guest-<vmid>-out
inline constexpr const char* kInPorts = "in-ports";      // oifname : goto guest-<vmid>-in
inline constexpr const char* kBridgedPairs = "bridged";  // iifname . oifname of bridges
inline constexpr const char* kVnetMap = "vnets";         // iifname . oifname : jump vnet-<name>
inline constexpr const char* kDoReject = "do-reject";

// meta mark bits Moat owns on this kernel strategy (br_netfilter): the inet prerouting and
// output hooks stash the conntrack state here for bridge-family guest chains, which cannot
// read `ct state` without bridge conntrack; the bridge layout's guest chains set kMarkReject
// for the inet hooks to answer with a real reject. Other bits of the mark are left alone.
inline constexpr uint32_t kMarkEstablished = 0x10000000;
inline constexpr uint32_t kMarkInvalid = 0x20000000;
inline constexpr uint32_t kMarkReject = 0x40000000;
inline constexpr uint32_t kMarkMask = 0x70000000;

// The netdev guest layout (GuestLayout::Netdev, docs/firewall-netdev.md). A guest's OUT chain
// runs at its port's netdev ingress, before conntrack: it records its verdict in kMarkOutVerdict
// (or asks for the deferred evaluation, kMarkOutDefer, when the deciding rule logs) and the
// inet stash chain applies it after conntrack, so established traffic passes whatever the OUT
// rules say; kVerdictTable evaluates the deferred ones again. A guest's IN chain runs at its
// port's netdev egress; a REJECT there sends the frame with kMarkRejectIn to the bridge's reject
// port, whose peer answers it (`reject` is refused at netdev egress). OUT REJECTs go there too,
// with kMarkRejectIn and the destination MAC kRejectMac.
inline constexpr uint32_t kMarkOutVerdict = 0x0c000000;  // 2 bits: the recorded verdict
inline constexpr uint32_t kMarkOutAccept = 0x04000000;
inline constexpr uint32_t kMarkOutDrop = 0x08000000;
inline constexpr uint32_t kMarkOutReject = 0x0c000000;
inline constexpr uint32_t kMarkOutDefer = 0x01000000;  // decide after conntrack, with logging
inline constexpr uint32_t kMarkRejectIn = 0x02000000;  // answer me (at the reject port)
// A reject port's answer on a firewall bridge in front of a Linux bridge. It crosses that
// bridge, the Linux bridge and maybe the sender's firewall bridge, and conntrack meets it on
// each (the veth pairs between them reset the skb's conntrack, not its mark): a TCP reset closes
// the connection on the first and is invalid on the next. So the stash keeps the
// kMarkEstablished it set on the first, whatever conntrack says later.
inline constexpr uint32_t kMarkAnswer = 0x80000000;
// `table bridge moat-verdicts`, while some guest's OUT rules log: chain "out" evaluates the
// OUT rules of new traffic that recorded kMarkOutDefer again, with their logging.
inline constexpr const char* kVerdictTable = "moat-verdicts";
// `table netdev moat-reject`: one chain per reject port peer that answers with a reject
// (answer-<bridge>), and one at the port for what the answers cross next (mark-<bridge>, or
// untrack-<bridge> for a firewall bridge in front of OVS).
inline constexpr const char* kRejectTable = "moat-reject";
inline constexpr const char* kAnswerChainPrefix = "answer-";
inline constexpr const char* kMarkChainPrefix = "mark-";
inline constexpr const char* kUntrackChainPrefix = "untrack-";
// In a guest table: reject-<bridge>, the ports (and MACs) its reject port answers for.
inline constexpr const char* kRejectSetPrefix = "reject-";
inline constexpr const char* kOutDeferred = "out-deferred";  // iifname : goto guest-<vmid>-out
// In the verdicts table: the deferring guests' ports on VLAN-aware bridges, whose REJECTs drop.
inline constexpr const char* kVlanAwarePorts = "vlan-aware-ports";
// Where a bridge forwards frames to its reject port (the port's static FDB entry, its peer's
// MAC): a guest's OUT REJECT of non-TCP traffic sends the frame there to be answered on the
// sender's own bridge. The highest locally administered unicast address but one; the port
// end itself has the highest (reject_ports.cc).
inline constexpr uint8_t kRejectMac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xfe};
// kRejectMac as an IR value: what the rules set, and what the simulator follows.
inline nft::Bytes reject_mac() { return nft::Bytes(std::begin(kRejectMac), std::end(kRejectMac)); }
// The reject port of a bridge: a veth pair, `reject_port()` a port of the bridge (learning
// and flooding off), `reject_peer()` its other end, where the answering chain is bound.
std::string reject_port(const std::string& bridge);
std::string reject_peer(const std::string& bridge);
// The peer of `port` when it is a reject port (the simulator follows `fwd to` with it).
std::optional<std::string> reject_port_peer(const std::string& port);

// Priorities: guest OUT rules run at bridge prerouting after br_netfilter (0) has run
// conntrack; guest IN rules at bridge forward before br_netfilter's forward (-1), so a REJECT
// they decide is answered by the inet forward chain.
inline constexpr int kStashPriority = -150;     // inet prerouting/output, after conntrack
inline constexpr int kHelperPriority = 0;       // inet prerouting: ct helpers for new connections
inline constexpr int kGuestOutPriority = 10;    // bridge prerouting
inline constexpr int kGuestInPriority = -10;    // bridge forward
inline constexpr int kGuestLocalPriority = 10;  // bridge output (host -> guest)

}  // namespace moat::firewall::names
