#include "moat/bridges/validate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bridges/fixtures.h"

namespace moat::bridges {
namespace {

// Every finding of `text` as "file:line:column: message".
std::vector<std::string> findings(std::string_view text) {
  Result<InterfacesFile> f = parse_interfaces(text, "interfaces");
  EXPECT_TRUE(f.has_value()) << f.error().to_string();
  if (!f) return {"parse error"};
  std::vector<std::string> out;
  for (const Error& e : validate(*f)) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
    out.push_back(e.to_string());
  }
  return out;
}

using Findings = std::vector<std::string>;

TEST(Validate, RealLookingFilesAreClean) {
  for (std::string_view text : {testing::kDefaultFile, testing::kBondVlanAwareFile,
                                testing::kVlanFile, testing::kVxlanFile, testing::kOvsFile}) {
    EXPECT_EQ(findings(text), Findings{}) << text;
  }
}

TEST(Validate, SdnOvsVlanPatternIsClean) {
  // Proxmox SDN on an OVS bridge: ln_<vnet> is an OVSIntPort of vmbr0 and the one port of the
  // VNet's Linux bridge; that is not a port used twice.
  EXPECT_EQ(findings("auto eno1\n"
                     "iface eno1 inet manual\n"
                     "\tovs_type OVSPort\n"
                     "\tovs_bridge vmbr0\n"
                     "\tmtu 9000\n"
                     "\n"
                     "auto vmbr0\n"
                     "iface vmbr0 inet manual\n"
                     "\tovs_type OVSBridge\n"
                     "\tovs_ports eno1 ln_myvnet\n"
                     "\tovs_mtu 9000\n"
                     "\n"
                     "auto ln_myvnet\n"
                     "iface ln_myvnet\n"
                     "\tovs_type OVSIntPort\n"
                     "\tovs_bridge vmbr0\n"
                     "\tovs_options tag=100\n"
                     "\n"
                     "auto myvnet\n"
                     "iface myvnet\n"
                     "\tbridge_ports ln_myvnet\n"
                     "\tbridge_stp off\n"
                     "\tbridge_fd 0\n"),
            Findings{});
}

// ----------------------------------------------------------------------------------------------
// Ports used once
// ----------------------------------------------------------------------------------------------

TEST(Validate, PortOfTwoBridges) {
  EXPECT_EQ(findings("iface eno1 inet manual\n"
                     "\n"
                     "iface vmbr0 inet manual\n"
                     "\tbridge-ports eno1\n"
                     "\n"
                     "iface vmbr1 inet manual\n"
                     "\tbridge-ports eno2 eno1\n"),
            Findings{"interfaces:7:20: port eno1 of bridge vmbr1 is already a port of bridge vmbr0 "
                     "(line 4)"});
}

TEST(Validate, PortListedTwiceByOneBridge) {
  EXPECT_EQ(findings("iface vmbr0 inet manual\n"
                     "\tbridge-ports eno1  eno1\n"),
            Findings{"interfaces:2:21: bridge vmbr0 lists port eno1 twice (first at line 2)"});
}

TEST(Validate, BondSlaveThatIsAlsoABridgePort) {
  EXPECT_EQ(findings("iface bond0 inet manual\n"
                     "\tbond-slaves eno1 eno2\n"
                     "\tbond-mode active-backup\n"
                     "iface vmbr0 inet manual\n"
                     "\tbridge-ports bond0 eno2\n"),
            Findings{"interfaces:5:21: port eno2 of bridge vmbr0 is already a slave of bond bond0 "
                     "(line 2)"});
}

TEST(Validate, MemberOfTwoOvsBonds) {
  EXPECT_EQ(findings("iface vmbr0\n"
                     "\tovs_type OVSBridge\n"
                     "\tovs_ports bond0 bond1\n"
                     "iface bond0\n"
                     "\tovs_type OVSBond\n"
                     "\tovs_bridge vmbr0\n"
                     "\tovs_bonds eno1 eno2\n"
                     "iface bond1\n"
                     "\tovs_type OVSBond\n"
                     "\tovs_bridge vmbr0\n"
                     "\tovs_bonds eno2 eno3\n"),
            Findings{"interfaces:11:12: member eno2 of OVSBond bond1 is already a member of "
                     "OVSBond bond0 (line 7)"});
}

// ----------------------------------------------------------------------------------------------
// Bond slaves are NICs or bonds
// ----------------------------------------------------------------------------------------------

TEST(Validate, BondSlavesMustBeNicsOrBonds) {
  EXPECT_EQ(findings("iface vmbr9 inet manual\n"
                     "\tbridge-ports none\n"
                     "iface eno1.5 inet manual\n"
                     "iface bond0 inet manual\n"
                     "\tbond-slaves eno1 vmbr9 tap100i0 bond1 eth2 eno1.5 nic3\n"),
            (Findings{"interfaces:5:19: slave vmbr9 of bond bond0 is a bridge (line 1), not a "
                      "physical NIC or a bond",
                      "interfaces:5:25: slave tap100i0 of bond bond0 is not a physical NIC name "
                      "or a bond",
                      "interfaces:5:45: slave eno1.5 of bond bond0 is a VLAN (line 3), not a "
                      "physical NIC or a bond"}));
}

TEST(Validate, BondOfBondsAndDeclaredNicsIsClean) {
  EXPECT_EQ(findings("iface enp1s0 inet manual\n"
                     "iface bond1 inet manual\n"
                     "\tbond-slaves enp1s0 ens2\n"
                     "iface bond0 inet manual\n"
                     "\tbond-slaves bond1 eth7\n"),
            Findings{});
}

// ----------------------------------------------------------------------------------------------
// MTU
// ----------------------------------------------------------------------------------------------

TEST(Validate, VlanMtuAboveItsRawDevice) {
  EXPECT_EQ(findings("iface eno1 inet manual\n"
                     "\tmtu 1500\n"
                     "iface eno1.10 inet manual\n"
                     "\tmtu 9000\n"
                     "iface vlan20 inet manual\n"
                     "\tvlan-raw-device eno1\n"
                     "\tmtu 1500\n"),
            Findings{"interfaces:4:6: mtu 9000 of VLAN eno1.10 is above the mtu 1500 of its raw "
                     "device eno1 (line 2)"});
}

TEST(Validate, VlanMtuIsNotComparedWithARawDeviceWithoutMtu) {
  EXPECT_EQ(findings("iface eno1 inet manual\n"
                     "iface eno1.10 inet manual\n"
                     "\tmtu 9000\n"),
            Findings{});
}

TEST(Validate, BridgePortAndBondSlaveMtuBelowTheirMaster) {
  EXPECT_EQ(findings("iface eno1 inet manual\n"
                     "\tmtu 9000\n"
                     "iface eno2 inet manual\n"
                     "\tmtu 1500\n"
                     "iface eno3 inet manual\n"
                     "\tmtu 8000\n"
                     "iface bond0 inet manual\n"
                     "\tbond-slaves eno3\n"
                     "\tmtu 9000\n"
                     "iface vmbr0 inet manual\n"
                     "\tbridge-ports eno1 eno2 bond0\n"
                     "\tmtu 9000\n"),
            (Findings{"interfaces:4:6: mtu 1500 of eno2 is below the mtu 9000 of bridge vmbr0 "
                      "(line 12), whose port it is",
                      "interfaces:6:6: mtu 8000 of eno3 is below the mtu 9000 of bond bond0 "
                      "(line 9), whose slave it is"}));
}

TEST(Validate, PortMtuAboveBridgeMtuIsFine) {
  EXPECT_EQ(findings("iface eno1 inet manual\n"
                     "\tmtu 9000\n"
                     "iface vmbr0 inet manual\n"
                     "\tbridge-ports eno1\n"
                     "\tmtu 1500\n"),
            Findings{});
}

// ----------------------------------------------------------------------------------------------
// Addresses on enslaved interfaces
// ----------------------------------------------------------------------------------------------

TEST(Validate, AddressOnBridgePortOrBondSlave) {
  EXPECT_EQ(findings("iface eno1 inet static\n"
                     "\taddress 192.0.2.5/24\n"
                     "iface eno2 inet6 static\n"
                     "\taddress 2001:db8::5/64\n"
                     "iface bond0 inet manual\n"
                     "\tbond-slaves eno2\n"
                     "iface vmbr0 inet static\n"
                     "\taddress 192.0.2.6/24\n"
                     "\tbridge-ports eno1 bond0\n"),
            (Findings{"interfaces:2:10: eno1 has address 192.0.2.5/24 but is a port of bridge "
                      "vmbr0 (line 9)",
                      "interfaces:4:10: eno2 has address 2001:db8::5/64 but is a slave of bond "
                      "bond0 (line 6)"}));
}

// ----------------------------------------------------------------------------------------------
// VLAN ids
// ----------------------------------------------------------------------------------------------

TEST(Validate, VlanIdsOutside1To4094) {
  EXPECT_EQ(findings("iface eno1.4095 inet manual\n"
                     "iface eno1.4094 inet manual\n"
                     "iface sv0\n"
                     "\tvlan-raw-device eno1\n"
                     "\tvlan-id 0\n"
                     "iface vmbr0 inet manual\n"
                     "\tbridge-ports none\n"
                     "\tbridge-vlan-aware yes\n"
                     "\tbridge-vids 2-4094 0 4000-4095\n"
                     "iface p0\n"
                     "\tovs_type OVSIntPort\n"
                     "\tovs_bridge vmbr1\n"
                     "\tovs_options tag=4095\n"
                     "iface vmbr1\n"
                     "\tovs_type OVSBridge\n"
                     "\tovs_ports p0\n"),
            (Findings{"interfaces:1:7: VLAN id 4095 of eno1.4095 is outside 1-4094",
                      "interfaces:5:10: VLAN id 0 of sv0 is outside 1-4094",
                      "interfaces:9:21: bridge-vids entry 0 of bridge vmbr0 is outside 1-4094",
                      "interfaces:9:23: bridge-vids entry 4000-4095 of bridge vmbr0 is outside "
                      "1-4094",
                      "interfaces:13:14: ovs_options tag=4095 of OVSIntPort p0 is outside "
                      "1-4094"}));
}

TEST(Validate, VlanWithoutIdOrRawDevice) {
  EXPECT_EQ(findings("iface uplink\n"
                     "\tvlan-raw-device eno1\n"
                     "iface sv1\n"
                     "\tvlan-id 5\n"),
            (Findings{"interfaces:1:7: VLAN uplink has no VLAN id: name it <device>.<id> or set "
                      "vlan-id",
                      "interfaces:3:7: VLAN sv1 has no raw device: name it <device>.<id> or set "
                      "vlan-raw-device"}));
}

// ----------------------------------------------------------------------------------------------
// Open vSwitch membership
// ----------------------------------------------------------------------------------------------

TEST(Validate, OvsPortsMustBelongToAListingOvsBridge) {
  EXPECT_EQ(findings("iface vmbr0 inet manual\n"  // 1
                     "\tbridge-ports none\n"      // 2
                     "iface vmbr1\n"              // 3
                     "\tovs_type OVSBridge\n"     // 4
                     "\tovs_ports p1\n"           // 5
                     "iface p0\n"                 // 6
                     "\tovs_type OVSIntPort\n"    // 7
                     "iface p1\n"                 // 8
                     "\tovs_type OVSIntPort\n"    // 9
                     "\tovs_bridge vmbr9\n"       // 10
                     "iface p2\n"                 // 11
                     "\tovs_type OVSPort\n"       // 12
                     "\tovs_bridge vmbr0\n"       // 13
                     "iface bond0\n"              // 14
                     "\tovs_type OVSBond\n"       // 15
                     "\tovs_bridge vmbr1\n"       // 16
                     "\tovs_bonds eno1 eno2\n"),  // 17
            (Findings{"interfaces:5:12: OVSBridge vmbr1 lists p1 in ovs_ports, but the "
                      "ovs_bridge of OVSIntPort p1 is vmbr9 (line 10)",
                      "interfaces:6:7: OVSIntPort p0 has no ovs_bridge",
                      "interfaces:10:13: ovs_bridge vmbr9 of OVSIntPort p1 does not exist",
                      "interfaces:13:13: ovs_bridge vmbr0 of OVSPort p2 is a bridge (line 1), "
                      "not an OVSBridge",
                      "interfaces:16:13: OVSBridge vmbr1 (line 3) does not list OVSBond bond0 in "
                      "ovs_ports"}));
}

TEST(Validate, LinuxBridgeCannotTakeOvsPorts) {
  EXPECT_EQ(findings("iface vmbr0\n"
                     "\tovs_type OVSBridge\n"
                     "\tovs_ports eno1 int0\n"
                     "iface eno1\n"
                     "\tovs_type OVSPort\n"
                     "\tovs_bridge vmbr0\n"
                     "iface int0\n"
                     "\tovs_type OVSIntPort\n"
                     "\tovs_bridge vmbr0\n"
                     "iface vmbr1 inet manual\n"
                     "\tbridge-ports int0 eno1 vmbr0\n"),
            (Findings{"interfaces:11:20: bridge vmbr1 lists OVSPort eno1 (line 4) as a port; "
                      "only an OVSIntPort can join a Linux bridge",
                      "interfaces:11:25: bridge vmbr1 lists OVSBridge vmbr0 (line 1) as a port; "
                      "only an OVSIntPort can join a Linux bridge"}));
}

TEST(Validate, FindingsAreSortedByPositionAndEditsAreSeen) {
  Result<InterfacesFile> f = parse_interfaces(
      "iface vmbr1 inet manual\n"
      "\tbridge-ports eno1\n"
      "iface vmbr0 inet manual\n"
      "\tbridge-ports eno2\n",
      "/etc/network/interfaces");
  ASSERT_TRUE(f);
  EXPECT_TRUE(validate(*f).empty());
  ASSERT_TRUE(f->set_option({"vmbr0"}, "bridge-ports", "eno1 eno2 eno2"));
  ASSERT_TRUE(f->set_option({"vmbr1"}, "bridge-vids", "5000"));
  std::vector<Error> errors = validate(*f);
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].to_string(),
            "/etc/network/interfaces:3:14: bridge-vids entry 5000 of bridge vmbr1 is outside "
            "1-4094");
  EXPECT_EQ(errors[1].to_string(),
            "/etc/network/interfaces:5:15: port eno1 of bridge vmbr0 is already a port of bridge "
            "vmbr1 (line 2)");
  EXPECT_EQ(errors[2].to_string(),
            "/etc/network/interfaces:5:25: bridge vmbr0 lists port eno2 twice (first at line 5)");
}

}  // namespace
}  // namespace moat::bridges
