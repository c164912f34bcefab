// Guests on Open vSwitch bridges. OVS switches frames past the bridge netfilter hooks, so
// Proxmox plugs each firewalled NIC on an OVS bridge into a Linux bridge of its own,
// fwbr<vmid>i<N>, which joins the OVS bridge through the OVS internal port fwln<vmid>i<N>
// (qemu-server's and pve-container's network plugging, for VMs and containers alike). Frames
// to and from the guest are then bridged by fwbr with br_netfilter's conntrack, and the
// guest's chains are bound to its own port as on any Linux bridge; what changes is the bridge
// that port is on, which holds the reject port and is the device of the bridged pair.
// Both parts are pure: one rewrites the model, the other reads a snapshot of the node's
// namespace (bridges::observe()) for the configured bridges that are not Linux bridges
// (Proxmox's own test: no `bridge` directory in sysfs means OVS). Thread-safe.
#pragma once

#include <set>
#include <string>

#include "moat/bridges/links.h"
#include "moat/firewall/model.h"

namespace moat::firewall {

// fwbr<vmid>i<N> and fwln<vmid>i<N>: Proxmox's names for the NIC's firewall bridge and the
// OVS internal port that joins it to the OVS bridge.
std::string firewall_bridge(uint32_t vmid, int nic);
std::string ovs_link_port(uint32_t vmid, int nic);

// Every firewalled NIC whose bridge is in `ovs_bridges` moves to its firewall bridge
// (GuestNic::bridge), remembering the OVS bridge (GuestNic::ovs_bridge). NICs without
// `firewall=1` are plugged straight into OVS and stay as they are.
void plug_ovs_nics(FirewallConfig& config, const std::set<std::string>& ovs_bridges);

// The bridges of firewalled NICs that exist in `observed` and are not Linux bridges. A bridge
// that does not exist is taken for a Linux bridge.
std::set<std::string> detect_ovs_bridges(const bridges::Observed& observed,
                                         const FirewallConfig& config);

}  // namespace moat::firewall
