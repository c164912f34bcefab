// Guests behind Open vSwitch: the traffic test's datacenter (tests/firewall/traffic) with its
// bridge vmbr0 an OVS bridge (ovs-vswitchd, userspace datapath) instead of a Linux bridge,
// each firewalled NIC plugged as Proxmox does it: the guest's port in its own Linux bridge
// fwbr<vmid>i0, joined to vmbr0 by the OVS internal port fwln<vmid>o0. Moat detects that
// vmbr0 is not a Linux bridge, compiles for the firewall bridges, applies, and the kernel's
// verdicts on the probe matrix must match the simulator's (which models frames crossing OVS
// between two firewall bridges), REJECT answers included (docs/firewall.md).
#include <gtest/gtest.h>

#include <cstdio>

#include "bridges/ovs_fixture.h"
#include "harness/golden.h"
#include "harness/netns.h"
#include "moat/bridges/link_driver.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nic_bridges.h"
#include "moat/firewall/parser.h"
#include "traffic_matrix.h"

namespace moat::firewall {
namespace {

class OvsTrafficTest : public bridges::testing::OvsDaemonTest {
 protected:
  // Waits until ovs-vswitchd made device `name` in namespace `ns`.
  bool appears(const std::string& ns, const std::string& name) {
    return bridges::testing::eventually(
        [&] {
          auto r = topo().exec(ns, {"ip", "link", "show", name});
          return r && r->exit_code == 0;
        },
        std::chrono::seconds(20));
  }
};

TEST_F(OvsTrafficTest, KernelVerdictsMatchTheSimulator) {
  auto loaded = load_config(moat::testing::source_path("tests/firewall/traffic"), "node1");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  auto node = topo().add_node("node1");
  ASSERT_TRUE(node) << node.error().to_string();
  start_vswitchd(node->ns);
  auto added = vsctl({"add-br", "vmbr0", "--", "set", "bridge", "vmbr0", "datapath_type=netdev"});
  ASSERT_TRUE(added && added->exit_code == 0) << (added ? added->err : added.error().to_string());
  ASSERT_TRUE(appears(node->ns, "vmbr0"));
  exec_ok(node->ns, {"ip", "addr", "add", "198.51.100.1/24", "dev", "vmbr0"});
  exec_ok(node->ns, {"ip", "link", "set", "vmbr0", "up"});

  std::vector<moat::testing::ProbeEndpoint> endpoints = {{"host", node->ns, "198.51.100.1"}};
  for (auto [zone, vmid, port, ip, mac] :
       {std::tuple{"vm100", 100u, "tap100i0", "198.51.100.10", "bc:24:11:00:01:00"},
        {"vm101", 101u, "tap101i0", "198.51.100.11", "bc:24:11:00:01:01"},
        {"ct200", 200u, "veth200i0", "198.51.100.20", "bc:24:11:00:02:00"}}) {
    auto fwbr = topo().add_bridge({.node = *node, .name = names::firewall_bridge(vmid, 0)});
    ASSERT_TRUE(fwbr) << fwbr.error().to_string();
    auto g = topo().add_guest(
        {.bridge = *fwbr, .name = zone, .port = port, .ipv4 = std::string(ip) + "/24", .mac = mac});
    ASSERT_TRUE(g) << g.error().to_string();
    std::string fwln = names::ovs_link_port(vmid, 0);
    auto plugged =
        vsctl({"add-port", "vmbr0", fwln, "--", "set", "interface", fwln, "type=internal"});
    ASSERT_TRUE(plugged && plugged->exit_code == 0);
    ASSERT_TRUE(appears(node->ns, fwln));
    exec_ok(node->ns, {"ip", "link", "set", fwln, "master", fwbr->name, "up"});
    endpoints.push_back({zone, g->ns, ip});
  }

  auto observed = bridges::observe(node->ns);
  ASSERT_TRUE(observed) << observed.error().to_string();
  auto kinds = detect_bridge_kinds(*observed, loaded->config);
  EXPECT_EQ(kinds.ovs, std::set<std::string>{"vmbr0"});
  plug_nics(loaded->config, kinds);
  auto compiled =
      compile(loaded->config,
              {.strategy = GuestStrategy::BrNetfilter, .layout = GuestLayout::Netdev, .shards = 2});
  ASSERT_TRUE(compiled) << compiled.error().to_string();
  EXPECT_TRUE(compiled->warnings.empty());
  // Each firewall bridge answers its guest's IN REJECTs through a reject port of its own.
  EXPECT_EQ(compiled->reject_port_bridges,
            (std::set<std::string>{"fwbr100i0", "fwbr101i0", "fwbr200i0"}));

  auto applier = Applier::open({.netns = node->ns, .state_dir = dir_ + "/moat"});
  ASSERT_TRUE(applier) << applier.error().to_string();
  auto prepared = applier->prepare(*compiled);
  ASSERT_TRUE(prepared) << prepared.error().to_string();
  auto report = applier->apply(compiled->ruleset, GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();
  // OVS learns and floods like a bridge: give ARP a first round before the matrix times out.
  for (const auto& e : endpoints)
    if (e.zone != "vm100") talks(endpoints[1].ns, e.ip) || talks(e.ns, endpoints[1].ip);

  auto r = moat::testing::run_probe_matrix(topo(), compiled->ruleset, loaded->config, endpoints);
  EXPECT_GE(r.probes, 200);
  EXPECT_GT(r.seen["ACCEPT"], 20);
  EXPECT_GT(r.seen["DROP"], 20);
  EXPECT_GT(r.seen["REJECT"], 10);
  // REJECT answers too: IN REJECT resets leave the reject port untracked (conntrack meets
  // them on the sender's side only), and OUT REJECT errors are made on the sender's bridge.
  EXPECT_EQ(r.mismatches, "");
}

}  // namespace
}  // namespace moat::firewall
