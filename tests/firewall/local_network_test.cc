// The node's local networks: /etc/hosts entries for the node and the networks picked from its
// addresses (pure parts of local_network.h).
#include "moat/firewall/local_network.h"

#include <gtest/gtest.h>

namespace moat::firewall {
namespace {

IpAddress ip(std::string_view text) { return *parse_ip(text); }
std::vector<std::string> strings(const std::vector<IpRange>& ranges) {
  std::vector<std::string> out;
  for (const auto& r : ranges) out.push_back(r.to_string());
  return out;
}

TEST(NodeAddressesFromHosts, MatchesCanonicalNamesAliasesAndShortNames) {
  const char* hosts =
      "127.0.0.1 localhost.localdomain localhost\n"
      "192.168.1.10 pve1.example.com pve1 # the cluster address\n"
      "# 10.0.0.1 pve1\n"
      "fd00::10\tpve1.example.com\n"
      "10.9.9.9 pve10\n"
      "bogus pve1\n"
      "192.168.1.11 PVE2.example.com\n";
  EXPECT_EQ(node_addresses_from_hosts(hosts, "pve1"),
            (std::vector<IpAddress>{ip("192.168.1.10"), ip("fd00::10")}));
  EXPECT_EQ(node_addresses_from_hosts(hosts, "pve2"), (std::vector<IpAddress>{ip("192.168.1.11")}));
  EXPECT_TRUE(node_addresses_from_hosts(hosts, "pve3").empty());
}

TEST(PickLocalNetworks, TheNetworkOfTheNodeAddressWins) {
  std::vector<NodeAddress> addrs = {{"vmbr0", ip("192.168.1.10"), 24},
                                    {"vmbr1", ip("10.10.0.2"), 16},
                                    {"lo", ip("127.0.0.1"), 8}};
  EXPECT_EQ(strings(pick_local_networks(addrs, {ip("192.168.1.10")})),
            (std::vector<std::string>{"192.168.1.0/24"}));
}

TEST(PickLocalNetworks, WithoutANodeAddressEveryUsableNetworkCounts) {
  std::vector<NodeAddress> addrs = {{"vmbr0", ip("192.168.1.10"), 24},
                                    {"vmbr0", ip("fd00:1::10"), 64},
                                    {"vmbr0", ip("fe80::1"), 64},
                                    {"eno1", ip("169.254.3.3"), 16},
                                    {"lo", ip("::1"), 128},
                                    {"tap100i0", ip("10.1.0.1"), 24},
                                    {"veth200i0", ip("10.2.0.1"), 24},
                                    {"vmbr1", ip("192.168.1.77"), 24}};
  EXPECT_EQ(strings(pick_local_networks(addrs, {ip("203.0.113.1")})),
            (std::vector<std::string>{"192.168.1.0/24", "fd00:1::/64"}));
  EXPECT_TRUE(pick_local_networks({}, {}).empty());
}

}  // namespace
}  // namespace moat::firewall
