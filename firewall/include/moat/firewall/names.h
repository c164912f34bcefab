// Every kernel-visible name of the firewall (tables, chains, sets, marks, guest devices) comes
// from here (STYLE.md rule 6), so the compiler, the simulator and tests agree on them.
#pragma once

#include <cstdint>
#include <string>

#include "moat/firewall/model.h"

namespace moat::firewall::names {

// `table inet moat`: host input/output/forward, the conntrack stash and deferred rejects.
inline constexpr const char* kHostTable = "moat";
// `table bridge moat-guests-<shard>`: guest chains, sharded to keep each commit small.
std::string guest_table(int shard);

std::string guest_chain(uint32_t vmid, Direction dir);             // guest-100-in / guest-100-out
std::string group_chain(const std::string& group, Direction dir);  // group-web-in/-out/-fwd
std::string vnet_chain(const std::string& vnet);                   // vnet-<name>

// NIC device names: tap<vmid>i<n> (VMs), veth<vmid>i<n> (containers).
std::string guest_device(const Guest& guest, int nic);

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
// read `ct state` without bridge conntrack; guest chains set kMarkReject for the inet hooks
// to answer with a real reject. Other bits of the mark are left alone.
inline constexpr uint32_t kMarkEstablished = 0x10000000;
inline constexpr uint32_t kMarkInvalid = 0x20000000;
inline constexpr uint32_t kMarkReject = 0x40000000;
inline constexpr uint32_t kMarkMask = 0x70000000;

// Priorities: guest OUT rules run at bridge prerouting after br_netfilter (0) has run
// conntrack; guest IN rules at bridge forward before br_netfilter's forward (-1), so a REJECT
// they decide is answered by the inet forward chain.
inline constexpr int kStashPriority = -150;     // inet prerouting/output, after conntrack
inline constexpr int kHelperPriority = 0;       // inet prerouting: ct helpers for new connections
inline constexpr int kGuestOutPriority = 10;    // bridge prerouting
inline constexpr int kGuestInPriority = -10;    // bridge forward
inline constexpr int kGuestLocalPriority = 10;  // bridge output (host -> guest)

}  // namespace moat::firewall::names
