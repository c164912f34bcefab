// Which Linux bridge each guest NIC's port is on: plug_nics() against Proxmox's plugging, and
// detect_bridge_kinds() on hand-made snapshots (this kernel has no VLAN filtering, so a
// VLAN-aware bridge exists only in a snapshot here).
#include "moat/firewall/nic_bridges.h"

#include <gtest/gtest.h>

namespace moat::firewall {
namespace {

GuestNic nic(const std::string& bridge, std::optional<uint16_t> tag, bool firewall = true) {
  return GuestNic{.bridge = bridge, .tag = tag, .firewall = firewall};
}

FirewallConfig config_with(std::map<int, GuestNic> nics) {
  FirewallConfig config;
  config.guests[100].vmid = 100;
  config.guests[100].nics = std::move(nics);
  return config;
}

TEST(PlugNics, ATaggedNicOnABridgeThatIsNotVlanAwareIsOnTheBridgeOfItsVlan) {
  auto config = config_with({{0, nic("vmbr0", 10)}, {1, nic("vmbr0", std::nullopt)}});
  plug_nics(config, {});
  EXPECT_EQ(config.guests[100].nics[0].bridge, "vmbr0v10");
  EXPECT_EQ(config.guests[100].nics[1].bridge, "vmbr0");  // untagged: the bridge itself
}

TEST(PlugNics, ATaggedNicWithoutFirewallMovesToo) {
  // Its port is on vmbr0v10 all the same; the bridge set of the host table follows it.
  auto config = config_with({{0, nic("vmbr0", 30, /*firewall=*/false)}});
  plug_nics(config, {});
  EXPECT_EQ(config.guests[100].nics[0].bridge, "vmbr0v30");
}

TEST(PlugNics, AVlanAwareBridgeCarriesTheTagItself) {
  auto config = config_with({{0, nic("vmbr1", 10)}});
  plug_nics(config, {.vlan_aware = {"vmbr1"}});
  EXPECT_EQ(config.guests[100].nics[0].bridge, "vmbr1");
}

TEST(PlugNics, AFirewalledNicOnOvsIsOnItsFirewallBridgeWhateverItsTag) {
  // OVS tags the fwln port; the guest's port is on fwbr<vmid>i<N>, never on <bridge>v<tag>.
  auto config = config_with({{0, nic("vmbr2", 10)}, {1, nic("vmbr2", 10, /*firewall=*/false)}});
  plug_nics(config, {.ovs = {"vmbr2"}});
  EXPECT_EQ(config.guests[100].nics[0].bridge, "fwbr100i0");
  EXPECT_EQ(config.guests[100].nics[0].uplink, "vmbr2");
  EXPECT_TRUE(config.guests[100].nics[0].uplink_ovs);
  EXPECT_EQ(config.guests[100].nics[1].bridge, "vmbr2");  // straight into OVS
  EXPECT_EQ(config.guests[100].nics[1].uplink, "");
}

TEST(PlugNics, AFirewallBridgedNicJoinsItsBridgeOrThatOfItsVlan) {
  // Proxmox's iptables plumbing: fwpr<vmid>p<N> is a port of the bridge the NIC would be on.
  auto config = config_with({{0, nic("vmbr0", std::nullopt)},
                             {1, nic("vmbr0", 10)},
                             {2, nic("vmbr1", 10)},
                             {3, nic("vmbr0", std::nullopt)}});
  plug_nics(config,
            {.vlan_aware = {"vmbr1"}, .firewall_bridged = {"tap100i0", "tap100i1", "tap100i2"}});
  const auto& nics = config.guests[100].nics;
  EXPECT_EQ(nics.at(0).bridge, "fwbr100i0");
  EXPECT_EQ(nics.at(0).uplink, "vmbr0");
  EXPECT_FALSE(nics.at(0).uplink_ovs);
  EXPECT_EQ(nics.at(1).bridge, "fwbr100i1");
  EXPECT_EQ(nics.at(1).uplink, "vmbr0v10");
  EXPECT_EQ(nics.at(2).uplink, "vmbr1");  // VLAN-aware: the tag is on fwpr100p2
  EXPECT_EQ(nics.at(3).bridge, "vmbr0");  // not seen on its firewall bridge
  EXPECT_EQ(nics.at(3).uplink, "");
}

bridges::ObservedLink link(const std::string& name, const std::string& kind,
                           bool vlan_filtering = false) {
  bridges::ObservedLink l{.name = name, .kind = kind};
  if (kind == "bridge") l.bridge = bridges::BridgeSpec{.vlan_filtering = vlan_filtering};
  return l;
}

TEST(DetectBridgeKinds, ReadsOvsAndVlanFilteringFromTheSnapshot) {
  auto config = config_with({{0, nic("vmbr0", 10)},
                             {1, nic("vmbr1", 10)},
                             {2, nic("ovs0", std::nullopt)},
                             {3, nic("absent", 10)}});
  bridges::Observed observed{.links = {link("ovs0", "openvswitch"), link("vmbr0", "bridge"),
                                       link("vmbr1", "bridge", /*vlan_filtering=*/true)}};
  auto kinds = detect_bridge_kinds(observed, config);
  EXPECT_EQ(kinds.ovs, std::set<std::string>{"ovs0"});
  EXPECT_EQ(kinds.vlan_aware, std::set<std::string>{"vmbr1"});
  EXPECT_TRUE(kinds.firewall_bridged.empty());
  // A bridge missing from the namespace is taken for a plain Linux bridge: absent -> absentv10.
  plug_nics(config, kinds);
  EXPECT_EQ(config.guests[100].nics[3].bridge, "absentv10");
  EXPECT_EQ(config.guests[100].nics[1].bridge, "vmbr1");
  EXPECT_EQ(config.guests[100].nics[0].bridge, "vmbr0v10");
}

bridges::ObservedLink port(const std::string& name, const std::string& master) {
  bridges::ObservedLink l = link(name, "tun");
  l.master = master;
  return l;
}

TEST(DetectBridgeKinds, FindsFirewalledNicsOnTheirFirewallBridges) {
  auto config = config_with({{0, nic("vmbr0", std::nullopt)},
                             {1, nic("vmbr0", std::nullopt)},
                             {2, nic("vmbr0", std::nullopt, /*firewall=*/false)},
                             {3, nic("vmbr0", std::nullopt)}});
  bridges::Observed observed{.links = {link("vmbr0", "bridge"), port("tap100i0", "fwbr100i0"),
                                       port("tap100i1", "vmbr0"), port("tap100i2", "fwbr100i2"),
                                       port("tap100i3", "fwbr101i3")}};
  // tap100i2 is not firewalled (Proxmox would not plug it so); fwbr101i3 is not its bridge.
  EXPECT_EQ(detect_bridge_kinds(observed, config).firewall_bridged,
            std::set<std::string>{"tap100i0"});
}

TEST(CheckPlugging, WarnsOfAPortOnAnotherBridgeThanTheModelSays) {
  auto config = config_with({{0, nic("vmbr0", std::nullopt)},
                             {1, nic("vmbr0", 10)},
                             {2, nic("vmbr0", std::nullopt)},
                             {3, nic("vmbr0", std::nullopt)}});
  config.guests[100].nics[2].where = {"nodes/node1/qemu-server/100.conf", 5};
  bridges::Observed observed{.links = {port("tap100i0", "fwbr100i0"),  // iptables plumbing
                                       port("tap100i1", "vmbr0v10"),   // as the model says
                                       port("tap100i2", "vmbr7")}};    // somewhere else
  plug_nics(config, detect_bridge_kinds(observed, config));
  // tap100i3 is not there (the guest is stopped): nothing to say.
  auto warnings = check_plugging(observed, config);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0],
            "nodes/node1/qemu-server/100.conf:5: tap100i2 is a port of vmbr7, not of vmbr0: "
            "its REJECT answers and the host's FORWARD policy are set up for vmbr0");
}

TEST(CheckPlugging, AFirewalledNicOnOvsIsOnItsFirewallBridge) {
  auto config = config_with({{0, nic("ovs0", std::nullopt)}});
  plug_nics(config, {.ovs = {"ovs0"}});
  bridges::Observed observed{.links = {port("tap100i0", "fwbr100i0")}};
  EXPECT_TRUE(check_plugging(observed, config).empty());
}

}  // namespace
}  // namespace moat::firewall
