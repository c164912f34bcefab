// Synthetic datacenters for firewall benchmarks: N guests with 10 rules and a per-guest ipset
// each, built through the real parsers so the benchmarks measure what operators run.
#pragma once

#include <string>

#include "moat/firewall/parser.h"

namespace moat::bench {

inline std::string guest_fw_text(uint32_t vmid, int variant) {
  std::string v = std::to_string(variant % 200);
  return "[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[IPSET allowed]\n192.0.2." +
         std::to_string(vmid % 250) + "\n198.51.100.0/26\n203.0.113." + v +
         "\n2001:db8::" + std::to_string(vmid % 9000) +
         "\n\n[RULES]\n"
         "IN ACCEPT -p tcp -dport 22 -source +allowed\n"
         "IN ACCEPT -p tcp -dport 80\n"
         "IN ACCEPT -p tcp -dport 443\n"
         "IN DROP -p udp -dport 53\n"
         "IN ACCEPT -p tcp -dport 8000:81" +
         std::to_string(10 + variant % 90) +
         " -source 192.0.2.0/24\n"
         "IN ACCEPT -p icmp -icmp-type echo-request\n"
         "OUT REJECT -p tcp -dport 25\n"
         "OUT ACCEPT -p udp -dport 123\n"
         "IN ACCEPT -p tcp -dport 3306 -source +allowed\n"
         "IN REJECT -p tcp -dport 23\n";
}

inline firewall::FirewallConfig synthetic_config(int guests, uint32_t first_vmid = 1000) {
  firewall::FirewallConfig config;
  config.node = "node1";
  config.cluster = *firewall::parse_cluster_fw("[OPTIONS]\nenable: 1\n\n[RULES]\nIN SSH(ACCEPT)\n",
                                               "cluster.fw");
  config.host = firewall::HostFw{};
  for (int i = 0; i < guests; ++i) {
    uint32_t vmid = first_vmid + static_cast<uint32_t>(i);
    char mac[32];
    std::snprintf(mac, sizeof(mac), "bc:24:11:%02x:%02x:%02x", (vmid >> 16) & 0xff,
                  (vmid >> 8) & 0xff, vmid & 0xff);
    auto guest = firewall::parse_guest_config(
        "net0: virtio=" + std::string(mac) + ",bridge=vmbr0,firewall=1\n",
        "qemu-server/" + std::to_string(vmid) + ".conf", vmid, firewall::Guest::Type::Vm);
    guest->fw = *firewall::parse_guest_fw(guest_fw_text(vmid, 0),
                                          "firewall/" + std::to_string(vmid) + ".fw");
    config.guests[vmid] = std::move(*guest);
  }
  return config;
}

}  // namespace moat::bench
