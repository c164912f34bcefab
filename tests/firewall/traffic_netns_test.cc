// The kernel agrees with the simulator: tests/firewall/traffic (two VMs, a container and
// the node on one bridge) is compiled and applied to a sandbox node, and a matrix of real
// TCP, UDP and ICMP probes between every pair must end as `moat fw simulate` predicts
// (connected = ACCEPT, refused = REJECT, timed out = DROP).
#include <gtest/gtest.h>

#include "harness/golden.h"
#include "harness/netns.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/parser.h"
#include "moat/firewall/simulator.h"
#include "traffic_matrix.h"

namespace moat::firewall {
namespace {

using testing::expect_matrix_agrees;
using Endpoint = testing::ProbeEndpoint;

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

  expect_matrix_agrees(
      testing::run_probe_matrix(topo(), compiled->ruleset, loaded->config, endpoints));
}

}  // namespace
}  // namespace moat::firewall
