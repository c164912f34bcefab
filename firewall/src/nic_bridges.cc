#include "moat/firewall/nic_bridges.h"

#include "moat/firewall/names.h"

namespace moat::firewall {

void plug_nics(FirewallConfig& config, const BridgeKinds& kinds) {
  config.vlan_aware_bridges = kinds.vlan_aware;
  for (auto& [vmid, guest] : config.guests)
    for (auto& [index, nic] : guest.nics) {
      if (kinds.ovs.contains(nic.bridge)) {
        if (!nic.firewall) continue;
        nic.uplink = nic.bridge;
        nic.uplink_ovs = true;
        nic.bridge = names::firewall_bridge(vmid, index);
        continue;
      }
      if (nic.tag && !kinds.vlan_aware.contains(nic.bridge))
        nic.bridge = names::vlan_bridge(nic.bridge, *nic.tag);
      if (nic.firewall && kinds.firewall_bridged.contains(names::guest_device(guest, index))) {
        nic.uplink = nic.bridge;
        nic.bridge = names::firewall_bridge(vmid, index);
      }
    }
}

BridgeKinds detect_bridge_kinds(const bridges::Observed& observed, const FirewallConfig& config) {
  BridgeKinds out;
  for (const auto& [vmid, guest] : config.guests)
    for (const auto& [index, nic] : guest.nics) {
      const bridges::ObservedLink* link = nic.bridge.empty() ? nullptr : observed.find(nic.bridge);
      if (link && link->kind != "bridge") {
        out.ovs.insert(nic.bridge);
        continue;
      }
      if (link && link->bridge && link->bridge->vlan_filtering) out.vlan_aware.insert(nic.bridge);
      std::string dev = names::guest_device(guest, index);
      const bridges::ObservedLink* port = nic.firewall ? observed.find(dev) : nullptr;
      if (port && port->master == names::firewall_bridge(vmid, index))
        out.firewall_bridged.insert(dev);
    }
  return out;
}

std::vector<std::string> check_plugging(const bridges::Observed& observed,
                                        const FirewallConfig& config) {
  std::vector<std::string> out;
  for (const auto& [_, guest] : config.guests)
    for (const auto& [index, nic] : guest.nics) {
      if (!nic.firewall) continue;
      std::string dev = names::guest_device(guest, index);
      const bridges::ObservedLink* link = observed.find(dev);
      if (!link || link->master.empty() || link->master == nic.bridge) continue;
      out.push_back(nic.where.to_string() + ": " + dev + " is a port of " + link->master +
                    ", not of " + nic.bridge + ": its REJECT answers and the host's FORWARD " +
                    "policy are set up for " + nic.bridge);
    }
  return out;
}

}  // namespace moat::firewall
