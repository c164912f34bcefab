#include "moat/firewall/ovs_nics.h"

namespace moat::firewall {

std::string firewall_bridge(uint32_t vmid, int nic) {
  return "fwbr" + std::to_string(vmid) + "i" + std::to_string(nic);
}

std::string ovs_link_port(uint32_t vmid, int nic) {
  return "fwln" + std::to_string(vmid) + "i" + std::to_string(nic);
}

void plug_ovs_nics(FirewallConfig& config, const std::set<std::string>& ovs_bridges) {
  for (auto& [vmid, guest] : config.guests)
    for (auto& [index, nic] : guest.nics) {
      if (!nic.firewall || !ovs_bridges.contains(nic.bridge)) continue;
      nic.ovs_bridge = nic.bridge;
      nic.bridge = firewall_bridge(vmid, index);
    }
}

std::set<std::string> detect_ovs_bridges(const bridges::Observed& observed,
                                         const FirewallConfig& config) {
  std::set<std::string> out;
  for (const auto& [_, guest] : config.guests)
    for (const auto& [_, nic] : guest.nics) {
      if (!nic.firewall || nic.bridge.empty()) continue;
      const bridges::ObservedLink* link = observed.find(nic.bridge);
      if (link && link->kind != "bridge") out.insert(nic.bridge);
    }
  return out;
}

}  // namespace moat::firewall
