// The kernel agrees with the simulator: tests/firewall/traffic (two VMs, a container and
// the node on one bridge) is compiled and applied to a sandbox node, and a matrix of real
// TCP, UDP and ICMP probes between every pair must end as `moat fw simulate` predicts
// (connected = ACCEPT, refused = REJECT, timed out = DROP).
#include <gtest/gtest.h>

#include <map>

#include "harness/golden.h"
#include "harness/netns.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/parser.h"
#include "moat/firewall/simulator.h"

namespace moat::firewall {
namespace {

using testing::TcpOutcome;
using testing::UdpOutcome;
using Verdict = sim::Outcome::Verdict;

struct Endpoint {
  std::string zone;  // simulator zone
  std::string ns;
  std::string ip;
};

class TrafficTest : public testing::NetnsTest, public ::testing::WithParamInterface<GuestLayout> {};

INSTANTIATE_TEST_SUITE_P(Layouts, TrafficTest,
                         ::testing::Values(GuestLayout::Bridge, GuestLayout::Netdev),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST_P(TrafficTest, KernelVerdictsMatchTheSimulatorOnAMatrixOfProbes) {
  auto root = testing::source_path("tests/firewall/traffic");
  auto loaded = load_config(root, "node1");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  auto compiled = compile(
      loaded->config, {.strategy = GuestStrategy::BrNetfilter, .layout = GetParam(), .shards = 2});
  ASSERT_TRUE(compiled) << compiled.error().to_string();
  EXPECT_TRUE(compiled->warnings.empty());

  auto node = topo().add_node("node1");
  ASSERT_TRUE(node) << node.error().to_string();
  auto bridge = topo().add_bridge({.node = *node, .name = "vmbr0", .ipv4 = "198.51.100.1/24"});
  ASSERT_TRUE(bridge) << bridge.error().to_string();
  std::vector<Endpoint> endpoints = {{"host", node->ns, "198.51.100.1"}};
  for (auto [zone, port, ip, mac] :
       {std::tuple{"vm100", "tap100i0", "198.51.100.10", "bc:24:11:00:01:00"},
        {"vm101", "tap101i0", "198.51.100.11", "bc:24:11:00:01:01"},
        {"ct200", "veth200i0", "198.51.100.20", "bc:24:11:00:02:00"}}) {
    auto g = topo().add_guest({.bridge = *bridge,
                               .name = zone,
                               .port = port,
                               .ipv4 = std::string(ip) + "/24",
                               .mac = mac});
    ASSERT_TRUE(g) << g.error().to_string();
    endpoints.push_back({zone, g->ns, ip});
  }

  auto applier = Applier::open(
      {.netns = node->ns, .state_dir = std::filesystem::temp_directory_path() / topo().prefix()});
  ASSERT_TRUE(applier) << applier.error().to_string();
  auto prepared = applier->prepare(*compiled);
  ASSERT_TRUE(prepared) << prepared.error().to_string();
  auto report = applier->apply(compiled->ruleset, GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_GT(report->messages, 0u);

  const std::vector<uint16_t> tcp_ports = {22,   25,   53,   80,   443,  3128,
                                           3306, 5432, 8006, 8080, 8443, 9100};
  const std::vector<uint16_t> udp_ports = {53, 123, 161, 500, 5000};
  for (const auto& e : endpoints) {
    for (auto p : tcp_ports) ASSERT_TRUE(topo().listen_tcp(e.ns, p));
    for (auto p : udp_ports) ASSERT_TRUE(topo().listen_udp(e.ns, p));
  }

  auto expect = [&](const Endpoint& from, const Endpoint& to, const std::string& proto,
                    std::optional<uint16_t> port) {
    sim::Packet packet{.from = from.zone,
                       .to = to.zone,
                       .protocol = proto,
                       .source = parse_ip(from.ip),
                       .dest = parse_ip(to.ip),
                       .dport = port};
    auto outcome = sim::simulate(compiled->ruleset, loaded->config, packet);
    EXPECT_TRUE(outcome) << outcome.error().to_string();
    return outcome ? *outcome : sim::Outcome{};
  };
  // Generous for a loaded CI machine: an accepted probe must never look dropped.
  const auto timeout = std::chrono::milliseconds(500);
  std::map<std::string, int> seen;
  int probes = 0;
  std::string mismatches;
  for (const auto& from : endpoints) {
    for (const auto& to : endpoints) {
      if (from.zone == to.zone) continue;
      auto check = [&](const std::string& what, Verdict want, Verdict got, const sim::Outcome& o) {
        ++probes;
        ++seen[sim::to_string(got)];
        if (want != got)
          mismatches += from.zone + " -> " + to.zone + " " + what + ": kernel " +
                        sim::to_string(got) + ", simulator " + sim::to_string(want) + " (" +
                        o.decided_by + ")\n";
      };
      for (auto port : tcp_ports) {
        auto o = expect(from, to, "tcp", port);
        auto r = topo().tcp_connect(from.ns, to.ip, port, timeout);
        Verdict got = r == TcpOutcome::Connected ? Verdict::Accept
                      : r == TcpOutcome::Refused ? Verdict::Reject
                                                 : Verdict::Drop;
        check("tcp/" + std::to_string(port), o.verdict, got, o);
      }
      for (auto port : udp_ports) {
        auto o = expect(from, to, "udp", port);
        auto r = topo().udp_probe(from.ns, to.ns, to.ip, port, timeout);
        Verdict got = r == UdpOutcome::Delivered  ? Verdict::Accept
                      : r == UdpOutcome::Rejected ? Verdict::Reject
                                                  : Verdict::Drop;
        check("udp/" + std::to_string(port), o.verdict, got, o);
      }
      // A rejected echo request and a dropped one both go unanswered: compare answered or not.
      auto o = expect(from, to, "icmp", std::nullopt);
      bool answered = topo().ping(from.ns, to.ip, timeout);
      Verdict want = o.verdict == Verdict::Accept ? Verdict::Accept : Verdict::Drop;
      check("icmp", want, answered ? Verdict::Accept : Verdict::Drop, o);
    }
  }
  EXPECT_GE(probes, 200);
  EXPECT_EQ(mismatches, "") << "kernel and simulator disagree";
  // The matrix exercises every verdict for real.
  EXPECT_GT(seen["ACCEPT"], 20);
  EXPECT_GT(seen["DROP"], 20);
  EXPECT_GT(seen["REJECT"], 10);
}

}  // namespace
}  // namespace moat::firewall
