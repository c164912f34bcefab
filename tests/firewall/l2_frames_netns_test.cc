// Netdev layout, frames that never meet conntrack: a guest's OUT verdict for a VLAN-tagged
// frame (br_netfilter hands it to no inet hook) or a non-IP one is given at its port's
// ingress, while untagged IP is recorded there and applied after conntrack. Raw frames sent
// from one guest namespace must reach the other one exactly when the sender's OUT policy
// accepts them.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "harness/netns.h"
#include "moat/base/fd.h"
#include "moat/base/netns.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/parser.h"

namespace moat::firewall {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

// An Ethernet frame from the sender to the receiver: `tag` > 0 adds an 802.1Q header.
Bytes frame(uint16_t ethertype, int tag, const Bytes& payload) {
  Bytes f = {0xbc, 0x24, 0x11, 0x00, 0x01, 0x01,   // to vm101
             0xbc, 0x24, 0x11, 0x00, 0x01, 0x00};  // from vm100
  if (tag > 0) {
    put16(f, 0x8100);
    put16(f, static_cast<uint16_t>(tag));
  }
  put16(f, ethertype);
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

// IPv4/UDP 198.51.100.10:4000 -> 198.51.100.11:4001 carrying `marker` (valid header checksum:
// br_netfilter drops IPv4 with a bad one).
Bytes udp4(const std::string& marker) {
  Bytes ip = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 198, 51, 100, 10, 198, 51, 100, 11};
  uint16_t total = static_cast<uint16_t>(20 + 8 + marker.size());
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  uint32_t sum = 0;
  for (size_t i = 0; i < ip.size(); i += 2) sum += static_cast<uint32_t>(ip[i] << 8 | ip[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = static_cast<uint8_t>(~sum >> 8);
  ip[11] = static_cast<uint8_t>(~sum);
  put16(ip, 4000);
  put16(ip, 4001);
  put16(ip, static_cast<uint16_t>(8 + marker.size()));
  put16(ip, 0);  // no UDP checksum
  ip.insert(ip.end(), marker.begin(), marker.end());
  return ip;
}

// A raw packet socket on eth0 of namespace `ns`.
Fd packet_socket(const std::string& ns) {
  auto scope = NetnsScope::enter(ns);
  EXPECT_TRUE(scope) << scope.error().to_string();
  Fd fd(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL)));
  EXPECT_TRUE(fd.valid()) << std::strerror(errno);
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = static_cast<int>(if_nametoindex("eth0"));
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
      << std::strerror(errno);
  return fd;
}

class L2FramesTest : public testing::NetnsTest, public ::testing::WithParamInterface<bool> {};

INSTANTIATE_TEST_SUITE_P(OutPolicy, L2FramesTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "accept" : "drop"; });

TEST_P(L2FramesTest, OutPolicyDecidesTaggedAndNonIpFramesAsItDoesUntaggedIp) {
  bool accept = GetParam();
  FirewallConfig config;
  config.node = "node1";
  config.cluster = *parse_cluster_fw("[OPTIONS]\nenable: 1\n", "firewall/cluster.fw");
  for (auto [vmid, mac, fw] :
       {std::tuple{100u, "bc:24:11:00:01:00",
                   std::string("[OPTIONS]\nenable: 1\npolicy_out: ") +
                       (accept ? "ACCEPT" : "DROP") + "\n"},
        {101u, "bc:24:11:00:01:01", std::string("[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n")}}) {
    std::string id = std::to_string(vmid);
    auto g = parse_guest_config("net0: virtio=" + std::string(mac) + ",bridge=vmbr0,firewall=1\n",
                                "qemu-server/" + id + ".conf", vmid, Guest::Type::Vm);
    ASSERT_TRUE(g) << g.error().to_string();
    g->fw = *parse_guest_fw(fw, "firewall/" + id + ".fw");
    config.guests[vmid] = *g;
  }
  auto compiled = compile(config, {.layout = GuestLayout::Netdev});
  ASSERT_TRUE(compiled) << compiled.error().to_string();

  auto node = topo().add_node("node1");
  ASSERT_TRUE(node) << node.error().to_string();
  auto bridge = topo().add_bridge({.node = *node, .name = "vmbr0"});
  ASSERT_TRUE(bridge) << bridge.error().to_string();
  std::vector<testing::Guest> guests;
  for (auto [name, port, ip, mac] :
       {std::tuple{"vm100", "tap100i0", "198.51.100.10/24", "bc:24:11:00:01:00"},
        {"vm101", "tap101i0", "198.51.100.11/24", "bc:24:11:00:01:01"}}) {
    auto g =
        topo().add_guest({.bridge = *bridge, .name = name, .port = port, .ipv4 = ip, .mac = mac});
    ASSERT_TRUE(g) << g.error().to_string();
    guests.push_back(*g);
  }
  auto applier = Applier::open(
      {.netns = node->ns, .state_dir = std::filesystem::temp_directory_path() / topo().prefix()});
  ASSERT_TRUE(applier) << applier.error().to_string();
  ASSERT_TRUE(applier->prepare(*compiled));
  auto report = applier->apply(compiled->ruleset, GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();

  Fd tx = packet_socket(guests[0].ns);
  Fd rx = packet_socket(guests[1].ns);
  ASSERT_TRUE(tx.valid() && rx.valid());
  const std::vector<std::pair<std::string, Bytes>> sent = {
      {"untagged-ip", frame(0x0800, 0, udp4("moat-untagged-ip"))},
      {"tagged-ip", frame(0x0800, 5, udp4("moat-tagged-ip"))},
      {"non-ip", frame(0x88b5, 0, Bytes{'m', 'o', 'a', 't', '-', 'n', 'o', 'n', '-', 'i', 'p'})}};
  for (const auto& [_, f] : sent)
    ASSERT_EQ(send(tx.get(), f.data(), f.size(), 0), static_cast<ssize_t>(f.size()))
        << std::strerror(errno);

  std::set<std::string> arrived;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < until && arrived.size() < sent.size()) {
    pollfd p{rx.get(), POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    uint8_t buf[2048];
    ssize_t n;
    while ((n = recv(rx.get(), buf, sizeof(buf), 0)) > 0) {
      std::string data(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
      for (const char* what : {"untagged-ip", "tagged-ip", "non-ip"})
        if (data.find("moat-" + std::string(what)) != std::string::npos) arrived.insert(what);
    }
  }
  std::set<std::string> want;
  if (accept) want = {"untagged-ip", "tagged-ip", "non-ip"};
  EXPECT_EQ(arrived, want);
}

}  // namespace
}  // namespace moat::firewall
