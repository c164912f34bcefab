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
  EXPECT_EQ(config.guests[100].nics[0].ovs_bridge, "vmbr2");
  EXPECT_EQ(config.guests[100].nics[1].bridge, "vmbr2");  // straight into OVS
  EXPECT_EQ(config.guests[100].nics[1].ovs_bridge, "");
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

TEST(CheckPlugging, WarnsOfAPortOnAnotherBridgeThanTheModelSays) {
  auto config = config_with({{0, nic("vmbr0", std::nullopt)},
                             {1, nic("vmbr0", 10)},
                             {2, nic("vmbr0", std::nullopt)},
                             {3, nic("vmbr0", std::nullopt)}});
  config.guests[100].nics[0].where = {"nodes/node1/qemu-server/100.conf", 3};
  plug_nics(config, {});
  bridges::Observed observed{.links = {port("tap100i0", "fwbr100i0"),  // iptables plumbing
                                       port("tap100i1", "vmbr0v10"),   // as the model says
                                       port("tap100i2", "vmbr7")}};    // somewhere else
  // tap100i3 is not there (the guest is stopped): nothing to say.
  auto warnings = check_plugging(observed, config);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0],
            "nodes/node1/qemu-server/100.conf:3: tap100i0 is a port of fwbr100i0, not of vmbr0: "
            "its REJECT answers and the host's FORWARD policy are set up for vmbr0 (Proxmox's "
            "iptables firewall plugs it so; with `nftables: 1` in host.fw and the guest "
            "restarted, it is on vmbr0)");
  EXPECT_NE(warnings[1].find("tap100i2 is a port of vmbr7, not of vmbr0"), std::string::npos);
  EXPECT_EQ(warnings[1].find("nftables"), std::string::npos);
}

TEST(CheckPlugging, AFirewalledNicOnOvsIsOnItsFirewallBridge) {
  auto config = config_with({{0, nic("ovs0", std::nullopt)}});
  plug_nics(config, {.ovs = {"ovs0"}});
  bridges::Observed observed{.links = {port("tap100i0", "fwbr100i0")}};
  EXPECT_TRUE(check_plugging(observed, config).empty());
}

}  // namespace
}  // namespace moat::firewall
