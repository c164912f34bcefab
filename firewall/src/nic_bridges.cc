#include "moat/firewall/nic_bridges.h"

#include "moat/firewall/names.h"

namespace moat::firewall {

void plug_nics(FirewallConfig& config, const BridgeKinds& kinds) {
  config.vlan_aware_bridges = kinds.vlan_aware;
  for (auto& [vmid, guest] : config.guests)
    for (auto& [index, nic] : guest.nics) {
      if (kinds.ovs.contains(nic.bridge)) {
        if (!nic.firewall) continue;
        nic.ovs_bridge = nic.bridge;
        nic.bridge = names::firewall_bridge(vmid, index);
      } else if (nic.tag && !kinds.vlan_aware.contains(nic.bridge)) {
        nic.bridge = names::vlan_bridge(nic.bridge, *nic.tag);
      }
    }
}

BridgeKinds detect_bridge_kinds(const bridges::Observed& observed, const FirewallConfig& config) {
  BridgeKinds out;
  for (const auto& [_, guest] : config.guests)
    for (const auto& [_, nic] : guest.nics) {
      const bridges::ObservedLink* link = nic.bridge.empty() ? nullptr : observed.find(nic.bridge);
      if (!link) continue;
      if (link->kind != "bridge")
        out.ovs.insert(nic.bridge);
      else if (link->bridge && link->bridge->vlan_filtering)
        out.vlan_aware.insert(nic.bridge);
    }
  return out;
}

std::vector<std::string> check_plugging(const bridges::Observed& observed,
                                        const FirewallConfig& config) {
  std::vector<std::string> out;
  for (const auto& [vmid, guest] : config.guests)
    for (const auto& [index, nic] : guest.nics) {
      if (!nic.firewall) continue;
      std::string dev = names::guest_device(guest, index);
      const bridges::ObservedLink* link = observed.find(dev);
      if (!link || link->master.empty() || link->master == nic.bridge) continue;
      std::string w = nic.where.to_string() + ": " + dev + " is a port of " + link->master +
                      ", not of " + nic.bridge + ": its REJECT answers and the host's FORWARD " +
                      "policy are set up for " + nic.bridge;
      if (link->master == names::firewall_bridge(vmid, index) && nic.ovs_bridge.empty())
        w += " (Proxmox's iptables firewall plugs it so; with `nftables: 1` in host.fw and the "
             "guest restarted, it is on " +
             nic.bridge + ")";
      out.push_back(std::move(w));
    }
  return out;
}

}  // namespace moat::firewall
