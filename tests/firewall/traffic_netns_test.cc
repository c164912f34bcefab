// The kernel agrees with the simulator: tests/firewall/traffic (two VMs, a container and
// the node on one bridge) is compiled and applied to a sandbox node, and a matrix of real
// TCP, UDP and ICMP probes between every pair must end as `moat fw simulate` predicts
// (connected = ACCEPT, refused = REJECT, timed out = DROP).
#include <gtest/gtest.h>

#include "harness/golden.h"
#include "harness/netns.h"
#include "moat/base/strings.h"
#include "moat/bridges/link_driver.h"
#include "moat/firewall/applier.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nft_driver.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/nic_bridges.h"
#include "moat/firewall/parser.h"
#include "moat/firewall/reject_ports.h"
#include "moat/firewall/simulator.h"
#include "traffic_matrix.h"

namespace moat::firewall {
namespace {

using testing::expect_matrix_agrees;
using Endpoint = testing::ProbeEndpoint;

class TrafficTest : public testing::NetnsTest {
 protected:
  // Compiles tests/firewall/traffic for `layout`, applies it to a sandbox node with the guests
  // on its bridge vmbr0, and returns the probe endpoints: the guests, and the host when it has
  // `host_ip` on vmbr0 (none: the host has no address there). With `ipv6`, the guests also have
  // 2001:db8::<n>/64, their endpoints by those addresses in v6_. With `tag`, every NIC has that
  // tag= and vmbr0 is not VLAN-aware, so the guests are on Proxmox's vmbr0v<tag>, which the
  // compiler learns from the node's namespace as `moat fw` does (plug_nics()); the cluster's
  // FORWARD policy is DROP then, which must not touch traffic bridged there. The bridges in
  // vlan_aware_ are taken for VLAN-aware whatever the kernel says (it has no VLAN filtering).
  // The guests in firewall_bridged_ are plugged as Proxmox's iptables firewall does it: the
  // port on its own fwbr<vmid>i0, joined to the guests' bridge by the veth pair fwln<vmid>i0 -
  // fwpr<vmid>p0 (with the cluster's FORWARD policy DROP too).
  std::vector<Endpoint> apply(GuestLayout layout, const std::string& host_ip, bool ipv6 = false,
                              std::optional<uint16_t> tag = std::nullopt) {
    auto loaded = load_config(testing::source_path("tests/firewall/traffic"), "node1");
    EXPECT_TRUE(loaded) << loaded.error().to_string();
    if (!loaded) return {};
    config_ = std::move(loaded->config);

    auto node = topo().add_node("node1");
    EXPECT_TRUE(node) << node.error().to_string();
    if (!node) return {};
    auto bridge = topo().add_bridge(
        {.node = *node, .name = "vmbr0", .ipv4 = host_ip.empty() ? "" : host_ip + "/24"});
    EXPECT_TRUE(bridge) << bridge.error().to_string();
    if (!bridge) return {};
    auto guest_bridge = bridge;
    if (tag) {
      for (auto& [_, guest] : config_.guests)
        for (auto& [_, nic] : guest.nics) nic.tag = tag;
      config_.cluster->options.policy_forward = Verdict::Drop;
      guest_bridge = topo().add_bridge({.node = *node, .name = names::vlan_bridge("vmbr0", *tag)});
      EXPECT_TRUE(guest_bridge) << guest_bridge.error().to_string();
      if (!guest_bridge) return {};
    }
    if (!firewall_bridged_.empty()) config_.cluster->options.policy_forward = Verdict::Drop;
    std::vector<Endpoint> endpoints;
    if (!host_ip.empty()) endpoints.push_back({"host", node->ns, host_ip});
    for (auto [zone, vmid, port, ip, ip6, mac] :
         {std::tuple{"vm100", 100u, "tap100i0", "198.51.100.10", "2001:db8::10",
                     "bc:24:11:00:01:00"},
          {"vm101", 101u, "tap101i0", "198.51.100.11", "2001:db8::11", "bc:24:11:00:01:01"},
          {"ct200", 200u, "veth200i0", "198.51.100.20", "2001:db8::20", "bc:24:11:00:02:00"}}) {
      auto port_bridge = guest_bridge;
      if (firewall_bridged_.contains(zone)) {
        port_bridge = topo().add_bridge({.node = *node, .name = names::firewall_bridge(vmid, 0)});
        EXPECT_TRUE(port_bridge) << port_bridge.error().to_string();
        if (!port_bridge) return {};
        std::string fwln = names::firewall_link_port(vmid, 0);
        std::string fwpr = names::firewall_uplink_port(vmid, 0);
        for (const auto& argv : std::vector<std::vector<std::string>>{
                 {"ip", "link", "add", fwln, "type", "veth", "peer", "name", fwpr},
                 {"ip", "link", "set", fwln, "master", port_bridge->name, "up"},
                 {"ip", "link", "set", fwpr, "master", guest_bridge->name, "up"}}) {
          auto r = topo().exec(node->ns, argv);
          EXPECT_TRUE(r && r->exit_code == 0) << join(argv, " ") << ": " << (r ? r->err : "");
        }
      }
      auto g = topo().add_guest({.bridge = *port_bridge,
                                 .name = zone,
                                 .port = port,
                                 .ipv4 = std::string(ip) + "/24",
                                 .ipv6 = ipv6 ? std::string(ip6) + "/64" : "",
                                 .mac = mac});
      EXPECT_TRUE(g) << g.error().to_string();
      if (!g) return {};
      endpoints.push_back({zone, g->ns, ip});
      if (ipv6) v6_.push_back({zone, g->ns, ip6});
    }

    auto observed = bridges::observe(node->ns);
    EXPECT_TRUE(observed) << observed.error().to_string();
    if (!observed) return {};
    auto kinds = detect_bridge_kinds(*observed, config_);
    kinds.vlan_aware.insert(vlan_aware_.begin(), vlan_aware_.end());
    seen_plugged_ = config_;
    plug_nics(seen_plugged_, kinds);
    for (const auto& port : not_running_) kinds.firewall_bridged.erase(port);
    plug_nics(config_, kinds);
    if (started_later_) {
      // Plugged (its port is there), but not in the configuration applied now.
      later_ = std::move(config_.guests.at(*started_later_));
      config_.guests.erase(*started_later_);
    }
    auto compiled =
        compile(config_, {.strategy = GuestStrategy::BrNetfilter, .layout = layout, .shards = 2});
    EXPECT_TRUE(compiled) << compiled.error().to_string();
    if (!compiled) return {};
    EXPECT_EQ(compiled->warnings.size(), vlan_aware_.size());  // one per VLAN-aware bridge
    ruleset_ = compiled->ruleset;
    compiled_reject_ports_ = compiled->reject_port_bridges;

    auto applier = Applier::open(
        {.netns = node->ns, .state_dir = std::filesystem::temp_directory_path() / topo().prefix()});
    EXPECT_TRUE(applier) << applier.error().to_string();
    if (!applier) return {};
    auto prepared = applier->prepare(*compiled);
    EXPECT_TRUE(prepared) << prepared.error().to_string();
    auto report = applier->apply(compiled->ruleset, GuestStrategy::BrNetfilter);
    EXPECT_TRUE(report) << report.error().to_string();
    if (!prepared || !report) return {};
    EXPECT_GT(report->messages, 0u);
    node_ns_ = node->ns;
    return endpoints;
  }

  // The probe matrix between `endpoints`: at least `min_probes`, the kernel agreeing with the
  // simulator on every one. The verdicts seen are the caller's to check.
  testing::MatrixResult agreed_matrix(const std::vector<Endpoint>& endpoints, int min_probes) {
    auto r = testing::run_probe_matrix(topo(), ruleset_, config_, endpoints);
    EXPECT_GE(r.probes, min_probes);
    EXPECT_EQ(r.mismatches, "") << "kernel and simulator disagree";
    return r;
  }

  // The IPv6 probe matrix on a bridge the host has no address on, between vm100 and ct200
  // (vm101's ipfilter allows it no IPv6 address): kernel and simulator agree, REJECTs answered.
  void expect_ipv6_rejects_answered() {
    apply(GuestLayout::Netdev, "", /*ipv6=*/true);
    std::erase_if(v6_, [](const Endpoint& e) { return e.zone == "vm101"; });
    ASSERT_EQ(v6_.size(), 2u);
    auto r = agreed_matrix(v6_, 30);
    EXPECT_GE(r.seen["REJECT"], 4);
  }

  // The probe matrix around vm101 (vm100 left out, to save time): kernel and simulator agree,
  // ACCEPTs and REJECTs among the verdicts.
  void expect_agreement_around_vm101(std::vector<Endpoint> endpoints) {
    std::erase_if(endpoints, [](const Endpoint& e) { return e.zone == "vm100"; });
    auto r = agreed_matrix(endpoints, 100);
    EXPECT_GT(r.seen["ACCEPT"], 10);
    EXPECT_GT(r.seen["REJECT"], 10);
  }

  // br_netfilter's sysctl for tagged frames in the node's namespace: "0" or "1".
  std::string filter_vlan_tagged() {
    auto r = topo().exec(node_ns_, {"cat", "/proc/sys/net/bridge/bridge-nf-filter-vlan-tagged"});
    return r ? std::string(trim(r->out)) : "";
  }

  std::set<std::string> not_running_;      // guest ports the apply takes for not running
  FirewallConfig seen_plugged_;            // the configuration plugged as the namespace says
  std::optional<uint32_t> started_later_;  // a guest left out of the applied configuration
  Guest later_;                            // that guest, as plug_nics() left it
  FirewallConfig config_;
  nft::Ruleset ruleset_;
  std::vector<Endpoint> v6_;
  std::set<std::string> vlan_aware_;
  std::set<std::string> firewall_bridged_;  // zones
  std::set<std::string> compiled_reject_ports_;
  std::string node_ns_;
};

class LayoutTrafficTest : public TrafficTest, public ::testing::WithParamInterface<GuestLayout> {};

INSTANTIATE_TEST_SUITE_P(Layouts, LayoutTrafficTest,
                         ::testing::Values(GuestLayout::Bridge, GuestLayout::Netdev),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST_P(LayoutTrafficTest, KernelVerdictsMatchTheSimulatorOnAMatrixOfProbes) {
  auto endpoints = apply(GetParam(), "198.51.100.1");
  ASSERT_EQ(endpoints.size(), 4u);
  expect_matrix_agrees(testing::run_probe_matrix(topo(), ruleset_, config_, endpoints));
}

// Proxmox's usual guest-only bridge: the host has no address on it, so no route to the guests.
// The netdev layout answers every REJECT on the bridge itself (the reject port). (The bridge
// layout's answers to non-TCP OUT REJECTs are routed by the host and lost here.)
TEST_F(TrafficTest, RejectsAreAnsweredOnABridgeTheHostHasNoAddressOn) {
  auto endpoints = apply(GuestLayout::Netdev, "");
  ASSERT_EQ(endpoints.size(), 3u);
  auto r = agreed_matrix(endpoints, 100);
  EXPECT_GT(r.seen["REJECT"], 10);
}

// The same over IPv6 (ICMPv6 errors, resets), between the guests without anti-spoofing
// (vm101's ipfilter allows it no IPv6 address): vm100 and ct200.
TEST_F(TrafficTest, Ipv6RejectsAreAnsweredOnABridgeTheHostHasNoAddressOn) {
  expect_ipv6_rejects_answered();
}

// The same with the VMs on firewall bridges: ICMPv6 errors and resets cross vmbr0 and the
// sender's fwbr.
TEST_F(TrafficTest, Ipv6RejectsAreAnsweredAcrossFirewallBridges) {
  firewall_bridged_ = {"vm100", "vm101"};
  expect_ipv6_rejects_answered();
}

// Tagged NICs on a bridge that is not VLAN-aware: Proxmox plugs them into vmbr0v10. Their
// traffic is bridged there, so the cluster's FORWARD policy (DROP) for routed traffic must not
// decide it, and REJECTs are answered by vmbr0v10's own reject port (on vmbr0 they would be
// flooded, or answered into another network).
TEST_F(TrafficTest, TaggedNicsAreFilteredOnTheBridgeOfTheirVlan) {
  auto endpoints = apply(GuestLayout::Netdev, "", /*ipv6=*/false, /*tag=*/10);
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_EQ(config_.guests[100].nics[0].bridge, "vmbr0v10");
  EXPECT_EQ(filter_vlan_tagged(), "0");  // no VLAN-aware bridge: tagged frames stay untouched
  auto r = agreed_matrix(endpoints, 100);
  EXPECT_GT(r.seen["ACCEPT"], 10);
  EXPECT_GT(r.seen["REJECT"], 10);
}

// On a VLAN-aware bridge the reject port would answer in the wrong VLAN, and an OUT REJECT sent
// to the reject MAC would be flooded in the guest's VLAN: there the REJECTs of the guests'
// traffic drop, in the kernel as in the simulator. (This kernel has no VLAN filtering: vmbr0
// is taken for VLAN-aware, which changes the rules, not the switching.)
TEST_F(TrafficTest, RejectsOnAVlanAwareBridgeDrop) {
  vlan_aware_ = {"vmbr0"};
  auto endpoints = apply(GuestLayout::Netdev, "");
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_TRUE(compiled_reject_ports_.empty());
  // Past a VLAN-aware bridge's prerouting every frame carries its VLAN's tag: br_netfilter
  // must run inet forward and postrouting for tagged frames, or conntrack never confirms.
  EXPECT_EQ(filter_vlan_tagged(), "1");
  auto r = agreed_matrix(endpoints, 100);
  EXPECT_EQ(r.seen["REJECT"], 0);
  EXPECT_GT(r.seen["DROP"], 20);
  EXPECT_GT(r.seen["ACCEPT"], 10);
}

// Proxmox's iptables plumbing, the default on a PVE node (host.fw without `nftables: 1`): the
// VMs' ports each on its own fwbr<vmid>i0, joined to vmbr0 by a veth pair; the container is on
// vmbr0 itself (started after a switch to `nftables: 1`). A frame between the VMs is bridged
// three times, each with br_netfilter's hooks and conntrack (again after each veth pair): the
// host's FORWARD policy (DROP) must let all three pass, and a TCP reset answering an IN REJECT,
// invalid for conntrack after the first bridge, must still reach the sender.
TEST_F(TrafficTest, GuestsOnProxmoxFirewallBridgesInFrontOfALinuxBridge) {
  firewall_bridged_ = {"vm100", "vm101"};
  auto endpoints = apply(GuestLayout::Netdev, "198.51.100.1");
  ASSERT_EQ(endpoints.size(), 4u);
  EXPECT_EQ(config_.guests[100].nics[0].bridge, "fwbr100i0");
  EXPECT_EQ(config_.guests[100].nics[0].uplink, "vmbr0");
  EXPECT_EQ(config_.guests[200].nics[0].bridge, "vmbr0");
  // vmbr0's reject port answers for the VMs behind their firewall bridges too.
  EXPECT_EQ(compiled_reject_ports_, (std::set<std::string>{"vmbr0"}));
  auto r = agreed_matrix(endpoints, 200);
  EXPECT_GT(r.seen["ACCEPT"], 20);
  EXPECT_GT(r.seen["DROP"], 20);
  EXPECT_GT(r.seen["REJECT"], 10);
}

// A guest that was not running at the apply is taken to be on vmbr0 itself; Proxmox then
// starts it on its firewall bridge. The ruleset is the same either way, so with no apply again
// its traffic is filtered and answered as the simulator says for the way it really takes.
TEST_F(TrafficTest, AGuestStartedOnItsFirewallBridgeAfterTheApplyNeedsNoApplyAgain) {
  firewall_bridged_ = {"vm100", "vm101"};
  not_running_ = {"tap101i0"};
  auto endpoints = apply(GuestLayout::Netdev, "198.51.100.1");
  ASSERT_EQ(endpoints.size(), 4u);
  EXPECT_EQ(config_.guests[101].nics[0].bridge, "vmbr0");  // as the apply took it
  config_ = seen_plugged_;                                 // as it is
  EXPECT_EQ(config_.guests[101].nics[0].bridge, "fwbr101i0");
  auto now = compile(config_, {.layout = GuestLayout::Netdev, .shards = 2});
  ASSERT_TRUE(now) << now.error().to_string();
  EXPECT_EQ(nft::to_nft_text(now->ruleset), nft::to_nft_text(ruleset_));  // what an apply makes
  expect_agreement_around_vm101(endpoints);
}

// The incremental path on the same plumbing, as the daemon will take it when a guest starts:
// vm101 starts on its own firewall bridge after the apply; only its recompile and the restricted
// diff reach the kernel (its new shard, its verdicts), after the reject ports it names are made
// (vmbr0's, there already). Its traffic is then filtered as a full apply would filter it.
TEST_F(TrafficTest, AGuestStartingOnItsFirewallBridgeIsAddedIncrementally) {
  firewall_bridged_ = {"vm100", "vm101"};
  started_later_ = 101;
  auto endpoints = apply(GuestLayout::Netdev, "198.51.100.1");
  ASSERT_EQ(endpoints.size(), 4u);
  config_.guests[101] = later_;

  nft::Ruleset desired = ruleset_;
  std::vector<std::string> warnings;
  CompileOptions options{.layout = GuestLayout::Netdev, .shards = 2};
  auto touched = recompile_guest(desired, config_, 101, options, warnings);
  ASSERT_TRUE(touched) << touched.error().to_string();
  for (const auto& ref : *touched) EXPECT_FALSE(ref.name.starts_with("guest-100")) << ref.name;
  auto rejects = reject_port_bridges(desired);
  EXPECT_EQ(rejects, compiled_reject_ports_);  // vmbr0's answers for vm101 too: no new port
  auto made = sync_reject_ports(node_ns_, rejects, OtherRejectPorts::Keep);
  ASSERT_TRUE(made) << made.error().to_string();
  auto driver = nft::NftDriver::open(node_ns_);
  ASSERT_TRUE(driver) << driver.error().to_string();
  auto plan = nft::diff(ruleset_, desired, *touched);
  auto sent = driver->apply(plan);
  ASSERT_TRUE(sent) << sent.error().to_string();
  ruleset_ = std::move(desired);

  expect_agreement_around_vm101(endpoints);
}

}  // namespace
}  // namespace moat::firewall
