// Which Linux bridge each guest NIC's port is on, as Proxmox plugs it (qemu-server's and
// pve-container's network plugging, for VMs and containers alike):
//  - A firewalled NIC on an Open vSwitch bridge. OVS switches frames past the bridge netfilter
//    hooks, so Proxmox plugs the NIC into a Linux bridge of its own, fwbr<vmid>i<N>, which
//    joins the OVS bridge through the OVS internal port fwln<vmid>o<N>. Frames to and from the
//    guest are then bridged by fwbr with br_netfilter's conntrack.
//  - A firewalled NIC that Proxmox's iptables firewall plugged (host.fw without `nftables: 1`,
//    Proxmox's default): on its fwbr<vmid>i<N> too, joined to the Linux bridge (or that of its
//    VLAN, below) by the veth pair fwln<vmid>i<N> - fwpr<vmid>p<N>. Frames then cross two or
//    three bridges, each running br_netfilter. Known from the node's namespace only: a guest
//    that is not running is taken to be plugged as Moat would, on the bridge itself.
//  - A NIC with `tag=` on a Linux bridge that is not VLAN-aware. Proxmox plugs it into the
//    bridge of that VLAN, <bridge>v<tag>, which it creates with the VLAN device
//    <bridge's port>.<tag> as its uplink.
//  - Any other NIC: the configured bridge (a VLAN-aware bridge carries the tag on the port).
// The guest's chains are bound to its own port either way; what changes is the bridge that
// port is on, which holds the reject port and is the device of the bridged pair.
// Both parts are pure: plug_nics() rewrites the model, detect_bridge_kinds() reads a snapshot
// of the node's namespace (bridges::observe()). Thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "moat/bridges/links.h"
#include "moat/firewall/model.h"

namespace moat::firewall {

// The configured bridges that are not plain Linux bridges, and the NICs plugged into a firewall
// bridge in front of a Linux bridge.
struct BridgeKinds {
  std::set<std::string> ovs;               // Open vSwitch bridges
  std::set<std::string> vlan_aware;        // Linux bridges with VLAN filtering
  std::set<std::string> firewall_bridged;  // guest devices (tap<vmid>i<N>, veth<vmid>i<N>)
};

// Every firewalled NIC whose bridge is in `kinds.ovs` moves to its firewall bridge
// (GuestNic::bridge), remembering the OVS bridge (GuestNic::uplink, uplink_ovs); NICs without
// `firewall=1` are plugged straight into OVS and stay as they are. Every other NIC with a tag
// whose bridge is not in `kinds.vlan_aware` moves to <bridge>v<tag>; then a firewalled NIC
// whose device is in `kinds.firewall_bridged` moves to its firewall bridge, remembering that
// bridge. `kinds.vlan_aware` becomes FirewallConfig::vlan_aware_bridges.
void plug_nics(FirewallConfig& config, const BridgeKinds& kinds);

// The kinds of the guest NICs' bridges in `observed`: bridges that exist and are not Linux
// bridges are OVS bridges (Proxmox's own test: no `bridge` directory in sysfs), Linux bridges
// with vlan_filtering are VLAN-aware. A bridge that does not exist is taken for a Linux bridge
// that is not VLAN-aware (Proxmox's default for a new bridge). The firewalled NICs on a Linux
// bridge whose devices are ports of their fwbr<vmid>i<N> are firewall-bridged.
BridgeKinds detect_bridge_kinds(const bridges::Observed& observed, const FirewallConfig& config);

// One warning for each firewalled NIC whose device (tap<vmid>i<N>, veth<vmid>i<N>) is in
// `observed` as a port of another bridge than GuestNic::bridge says (after plug_nics()), at
// the NIC's line: its reject port and bridged pair would be on the wrong bridge.
std::vector<std::string> check_plugging(const bridges::Observed& observed,
                                        const FirewallConfig& config);

}  // namespace moat::firewall
