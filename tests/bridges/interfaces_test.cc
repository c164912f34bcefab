#include "moat/bridges/interfaces.h"

#include <gtest/gtest.h>

#include <string>

#include "bridges/fixtures.h"

namespace moat::bridges {
namespace {

using testing::kBondVlanAwareFile;
using testing::kDefaultFile;
using testing::kOvsFile;
using testing::kVlanFile;
using testing::kVxlanFile;

InterfacesFile parse_ok(std::string_view text) {
  Result<InterfacesFile> f = parse_interfaces(text, "interfaces");
  EXPECT_TRUE(f.has_value()) << f.error().to_string();
  return f ? std::move(*f) : InterfacesFile("interfaces");
}

// Parses, expects an error, and returns "file:line:column: message".
std::string parse_error(std::string_view text) {
  Result<InterfacesFile> f = parse_interfaces(text, "interfaces");
  if (f) return "parsed without error";
  EXPECT_EQ(f.error().code(), ErrorCode::InvalidConfig);
  return f.error().to_string();
}

const Interface& get(const InterfacesFile& f, std::string_view name) {
  const Interface* i = f.find(name);
  EXPECT_NE(i, nullptr) << name;
  static const Interface kMissing;
  return i ? *i : kMissing;
}

std::vector<std::string> texts(const std::vector<Word>& words) {
  std::vector<std::string> out;
  for (const Word& w : words) out.push_back(w.text);
  return out;
}

// ----------------------------------------------------------------------------------------------
// Round trips and typed views of real-looking files
// ----------------------------------------------------------------------------------------------

TEST(InterfacesRoundTrip, DefaultProxmoxFileIsByteIdentical) {
  InterfacesFile f = parse_ok(kDefaultFile);
  EXPECT_EQ(write_interfaces(f), kDefaultFile);

  ASSERT_EQ(f.interfaces().size(), 4u);
  EXPECT_EQ(get(f, "lo").kind, InterfaceKind::Loopback);
  EXPECT_EQ(get(f, "eno1").kind, InterfaceKind::Physical);
  EXPECT_FALSE(get(f, "eno1").autostart);
  EXPECT_EQ(get(f, "wlp2s0").kind, InterfaceKind::Other);

  const Interface& br = get(f, "vmbr0");
  EXPECT_EQ(br.kind, InterfaceKind::Bridge);
  EXPECT_TRUE(br.autostart);
  EXPECT_EQ(br.inet_method, Method::Static);
  EXPECT_EQ(br.at, (Position{18, 7}));
  ASSERT_EQ(br.addresses.size(), 1u);
  EXPECT_EQ(br.addresses[0].ip.to_string(), "192.168.1.10");
  EXPECT_EQ(br.addresses[0].prefix, 24);
  EXPECT_EQ(br.addresses[0].at, (Position{19, 10}));
  ASSERT_TRUE(br.gateway4);
  EXPECT_EQ(br.gateway4->to_string(), "192.168.1.1");
  ASSERT_TRUE(br.bridge);
  EXPECT_EQ(texts(br.bridge->ports), std::vector<std::string>{"eno1"});
  EXPECT_EQ(br.bridge->ports[0].at, (Position{21, 15}));
  EXPECT_EQ(br.bridge->stp, false);
  EXPECT_EQ(br.bridge->forward_delay, 0u);
  EXPECT_FALSE(br.bridge->vlan_aware);

  const Line& source = std::get<Line>(f.items().back());
  EXPECT_EQ(source.kind, LineKind::Source);
  EXPECT_EQ(source.line, 28);
  EXPECT_EQ(source.args, std::vector<std::string>{"/etc/network/interfaces.d/*"});
}

TEST(InterfacesRoundTrip, BondUnderVlanAwareBridgeMergesInetAndInet6) {
  InterfacesFile f = parse_ok(kBondVlanAwareFile);
  EXPECT_EQ(write_interfaces(f), kBondVlanAwareFile);

  const Interface& bond = get(f, "bond0");
  EXPECT_EQ(bond.kind, InterfaceKind::Bond);
  ASSERT_TRUE(bond.bond);
  EXPECT_EQ(texts(bond.bond->slaves), (std::vector<std::string>{"eno1", "eno2"}));
  EXPECT_EQ(bond.bond->mode, BondMode::Ieee8023ad);
  EXPECT_EQ(bond.bond->miimon, 100u);
  EXPECT_EQ(bond.bond->xmit_hash_policy, "layer2+3");

  const Interface& br = get(f, "vmbr0");
  EXPECT_EQ(br.kind, InterfaceKind::Bridge);
  EXPECT_EQ(br.inet_method, Method::Static);
  EXPECT_EQ(br.inet6_method, Method::Static);
  ASSERT_TRUE(br.bridge);
  EXPECT_TRUE(br.bridge->vlan_aware);
  ASSERT_EQ(br.bridge->vids.size(), 1u);
  EXPECT_EQ(br.bridge->vids[0].first, 2u);
  EXPECT_EQ(br.bridge->vids[0].last, 4094u);
  ASSERT_EQ(br.addresses.size(), 2u);
  EXPECT_EQ(br.addresses[1].ip.to_string(), "2001:db8:10::2");
  EXPECT_EQ(br.addresses[1].prefix, 64);
  EXPECT_EQ(br.addresses[1].at.line, 29);
  EXPECT_EQ(br.gateway4->to_string(), "10.10.10.1");
  EXPECT_EQ(br.gateway6->to_string(), "2001:db8:10::1");
}

TEST(InterfacesRoundTrip, VlanDevicesTakeRawDeviceAndIdFromNameOrOptions) {
  InterfacesFile f = parse_ok(kVlanFile);
  EXPECT_EQ(write_interfaces(f), kVlanFile);

  const Interface& dotted = get(f, "bond0.100");
  EXPECT_EQ(dotted.kind, InterfaceKind::Vlan);
  ASSERT_TRUE(dotted.vlan);
  EXPECT_EQ(dotted.vlan->raw_device.text, "bond0");
  EXPECT_EQ(dotted.vlan->id, 100u);
  EXPECT_EQ(dotted.vlan->protocol, VlanProtocol::Dot1Q);

  const Interface& named = get(f, "vlan200");
  EXPECT_EQ(named.kind, InterfaceKind::Vlan);
  ASSERT_TRUE(named.vlan);
  EXPECT_EQ(named.vlan->raw_device.text, "eno1");
  EXPECT_EQ(named.vlan->raw_device.at, (Position{20, 18}));
  EXPECT_EQ(named.vlan->id, 200u);
  EXPECT_EQ(named.vlan->protocol, VlanProtocol::Dot1AD);
  EXPECT_EQ(named.mtu, 1500u);
  ASSERT_EQ(named.addresses.size(), 1u);
  EXPECT_EQ(named.addresses[0].prefix, 24) << "netmask applies to an address without /len";

  const Interface& bond = get(f, "bond0");
  EXPECT_EQ(bond.bond->mode, BondMode::ActiveBackup);
  EXPECT_EQ(bond.bond->primary, "eno2");
}

TEST(InterfacesRoundTrip, VxlanUnderBridgeWithUnderscoreSpellings) {
  InterfacesFile f = parse_ok(kVxlanFile);
  EXPECT_EQ(write_interfaces(f), kVxlanFile);

  const Interface& vx = get(f, "vxlan_vnet1");
  EXPECT_EQ(vx.kind, InterfaceKind::Vxlan);
  EXPECT_EQ(vx.inet_method, Method::Unspecified);
  ASSERT_TRUE(vx.vxlan);
  EXPECT_EQ(vx.vxlan->id, 100000u);
  ASSERT_EQ(vx.vxlan->remote_ips.size(), 2u);
  EXPECT_EQ(vx.vxlan->remote_ips[0].to_string(), "192.0.2.2");
  EXPECT_EQ(vx.vxlan->remote_ips[1].to_string(), "192.0.2.3");
  EXPECT_EQ(vx.vxlan->local_tunnel_ip->to_string(), "192.0.2.1");
  EXPECT_EQ(vx.mtu, 1450u);

  const Interface& br = get(f, "vnet1");
  EXPECT_EQ(br.kind, InterfaceKind::Bridge);
  EXPECT_EQ(texts(br.bridge->ports), std::vector<std::string>{"vxlan_vnet1"});
  EXPECT_EQ(br.bridge->stp, false);
  EXPECT_NE(f.find_stanza({"vnet1", Family::Unspecified}), nullptr);
  EXPECT_EQ(f.find_stanza({"vnet1", Family::Inet}), nullptr);
}

TEST(InterfacesRoundTrip, OvsBridgeWithBondAndTaggedIntPort) {
  InterfacesFile f = parse_ok(kOvsFile);
  EXPECT_EQ(write_interfaces(f), kOvsFile);

  const Interface& bond = get(f, "bond0");
  EXPECT_EQ(bond.kind, InterfaceKind::OvsBond) << "ovs_type decides over the bondN name";
  EXPECT_EQ(texts(bond.ovs->bonds), (std::vector<std::string>{"eno1", "eno2"}));
  EXPECT_EQ(bond.ovs->bridge.text, "vmbr0");
  EXPECT_EQ(bond.ovs->bond_mode, "balance-tcp");
  EXPECT_EQ(bond.ovs->options, "bond_mode=balance-tcp lacp=active other_config:lacp-time=fast");
  EXPECT_FALSE(bond.ovs->tag);

  const Interface& br = get(f, "vmbr0");
  EXPECT_EQ(br.kind, InterfaceKind::OvsBridge);
  EXPECT_EQ(texts(br.ovs->ports), (std::vector<std::string>{"bond0", "vlan10"}));
  EXPECT_EQ(br.mtu, 9000u) << "ovs_mtu is the mtu";
  EXPECT_EQ(br.position_of("ovs-mtu"), (Position{22, 10}));

  const Interface& port = get(f, "vlan10");
  EXPECT_EQ(port.kind, InterfaceKind::OvsIntPort);
  EXPECT_EQ(port.ovs->tag, 10u);
  EXPECT_FALSE(port.vlan) << "an OVSIntPort named vlanN is not a Linux VLAN";
  ASSERT_EQ(port.addresses.size(), 1u);

  const Line& allow = std::get<Line>(f.items()[13]);
  EXPECT_EQ(allow.kind, LineKind::Allow);
  EXPECT_EQ(allow.keyword, "allow-ovs");
}

TEST(InterfacesRoundTrip, CommentsBlankLinesOddSpacingAndUnknownOptionsSurvive) {
  constexpr std::string_view kText =
      "   # indented comment before anything\n"
      "\n"
      "allow-hotplug eno3\n"
      "auto lo eno1   \n"
      "iface lo inet loopback\n"
      "\n"
      "  # a comment between stanzas\n"
      "iface eno1 inet manual\n"
      "    # a comment inside a stanza, spaces not tabs\n"
      "    post-up   ethtool -K eno1 gro off   \n"
      "\n"
      "    hwaddress aa:bb:cc:dd:ee:ff\n"
      "\tmtu    9000\n"
      "\n"
      "mapping eth*\n"
      "\tscript /usr/local/sbin/map-scheme\n"
      "\tmap HOME eth0-home\n"
      "\n"
      "auto vmbr1\n"
      "iface vmbr1 inet manual\n"
      "\tbridge_ports  eth0.100 pr_myvnet\n"
      "\tbridge-disable-mac-learning 1\n"
      "\tup ip route add 203.0.113.0/24 dev vmbr1 # not a comment\n"
      "\tbridge-stp off\r\n"
      "\tarp-accept\n"
      "#comment kept with vmbr1\n"
      "\n"
      "source-directory /etc/network/interfaces.d\n"
      "# trailing comment\n";
  InterfacesFile f = parse_ok(kText);
  EXPECT_EQ(write_interfaces(f), kText);

  const Stanza* eno1 = f.find_stanza({"eno1", Family::Inet});
  ASSERT_NE(eno1, nullptr);
  ASSERT_EQ(eno1->body.size(), 5u) << "a blank line between options stays in the stanza";
  const Option& post_up = std::get<Option>(eno1->body[1]);
  EXPECT_EQ(post_up.indent, "    ");
  EXPECT_EQ(post_up.name, "post-up");
  EXPECT_EQ(post_up.separator, "   ");
  EXPECT_EQ(post_up.value, "ethtool -K eno1 gro off");
  EXPECT_EQ(post_up.trailing, "   ");
  EXPECT_EQ(get(f, "eno1").mtu, 9000u);
  EXPECT_TRUE(get(f, "eno1").autostart);
  EXPECT_EQ(get(f, "eno1").position_of("hwaddress"), (Position{12, 15}));

  const Stanza* vmbr1 = f.find_stanza({"vmbr1", Family::Inet});
  ASSERT_NE(vmbr1, nullptr);
  EXPECT_EQ(std::get<Line>(vmbr1->body.back()).text, "#comment kept with vmbr1");
  EXPECT_EQ(vmbr1->find("up")->value, "ip route add 203.0.113.0/24 dev vmbr1 # not a comment");
  EXPECT_EQ(vmbr1->find("arp-accept")->value, "");
  EXPECT_EQ(texts(get(f, "vmbr1").bridge->ports),
            (std::vector<std::string>{"eth0.100", "pr_myvnet"}));
  EXPECT_EQ(get(f, "vmbr1").bridge->stp, false) << "a '\\r' is trailing whitespace";
  EXPECT_FALSE(f.find("eno3")) << "allow-hotplug of a name without stanza makes no interface";
}

TEST(InterfacesRoundTrip, MissingFinalNewlineAndEmptyFile) {
  constexpr std::string_view kText = "auto lo\niface lo inet loopback";
  EXPECT_EQ(write_interfaces(parse_ok(kText)), kText);
  EXPECT_EQ(write_interfaces(parse_ok("")), "");
  EXPECT_EQ(write_interfaces(parse_ok("\n\n")), "\n\n");
  EXPECT_TRUE(parse_ok("").interfaces().empty());
}

TEST(InterfacesRoundTrip, OptionCommentsUnderOptionsStayInStanzaButBlankLinesEndIt) {
  constexpr std::string_view kText =
      "iface eno1 inet manual\n"
      "\tmtu 1500\n"
      "# about eno1\n"
      "\n"
      "# about eno2\n"
      "iface eno2 inet manual\n";
  InterfacesFile f = parse_ok(kText);
  ASSERT_EQ(f.items().size(), 4u);
  const Stanza& eno1 = std::get<Stanza>(f.items()[0]);
  ASSERT_EQ(eno1.body.size(), 2u);
  EXPECT_EQ(std::get<Line>(eno1.body[1]).kind, LineKind::Comment);
  EXPECT_EQ(std::get<Line>(f.items()[1]).kind, LineKind::Blank);
  EXPECT_EQ(std::get<Line>(f.items()[2]).text, "# about eno2");
  EXPECT_EQ(std::get<Line>(f.items()[2]).line, 5);
}

// ----------------------------------------------------------------------------------------------
// Typed interpretation
// ----------------------------------------------------------------------------------------------

TEST(InterfacesTyped, UnderscoreAndDashSpellingsAreTheSameOption) {
  constexpr std::string_view kDash =
      "iface br0 inet manual\n"
      "\tbridge-ports eno1 eno2\n"
      "\tbridge-stp on\n"
      "\tbridge-fd 15\n"
      "\tbridge-vlan-aware yes\n"
      "\tbridge-vids 10,20 30-40\n"
      "iface p1 inet manual\n"
      "\tovs-type OVSPort\n"
      "\tovs-bridge br1\n"
      "\tovs-options tag=7\n";
  std::string under(kDash);
  for (const char* from : {"bridge-", "ovs-type", "ovs-bridge", "ovs-options", "vlan-aware"}) {
    std::string to(from);
    std::replace(to.begin(), to.end(), '-', '_');
    for (size_t p = under.find(from); p != std::string::npos; p = under.find(from, p + 1)) {
      under.replace(p, to.size(), to);
    }
  }
  ASSERT_NE(under, kDash);
  InterfacesFile a = parse_ok(kDash);
  InterfacesFile b = parse_ok(under);
  EXPECT_EQ(write_interfaces(b), under);
  for (const InterfacesFile* f : {&a, &b}) {
    const Interface& br = get(*f, "br0");
    EXPECT_EQ(br.kind, InterfaceKind::Bridge);
    EXPECT_EQ(texts(br.bridge->ports), (std::vector<std::string>{"eno1", "eno2"}));
    EXPECT_EQ(br.bridge->stp, true);
    EXPECT_EQ(br.bridge->forward_delay, 15u);
    EXPECT_TRUE(br.bridge->vlan_aware);
    ASSERT_EQ(br.bridge->vids.size(), 3u);
    EXPECT_EQ(br.bridge->vids[1].first, 20u);
    EXPECT_EQ(br.bridge->vids[1].at, (Position{6, 17}));
    EXPECT_EQ(br.bridge->vids[2].last, 40u);
    const Interface& p1 = get(*f, "p1");
    EXPECT_EQ(p1.kind, InterfaceKind::OvsPort);
    EXPECT_EQ(p1.ovs->bridge.text, "br1");
    EXPECT_EQ(p1.ovs->tag, 7u);
  }
  const Stanza* p1 = b.find_stanza({"p1", Family::Inet});
  EXPECT_EQ(p1->find("ovs-type")->name, "ovs_type");
  EXPECT_EQ(p1->find("ovs-type")->key(), "ovs-type");
  EXPECT_EQ(p1->find("ovs_type"), p1->find("ovs-type"));
  EXPECT_EQ(p1->find("ovs_mtu"), nullptr);
}

TEST(InterfacesTyped, BondModeAcceptsAllSevenNamesAndNumbers) {
  constexpr std::string_view kNames[] = {"balance-rr", "active-backup", "balance-xor", "broadcast",
                                         "802.3ad",    "balance-tlb",   "balance-alb"};
  for (int n = 0; n < 7; ++n) {
    for (std::string mode : {std::string(kNames[n]), std::to_string(n)}) {
      InterfacesFile f =
          parse_ok("iface bond0 inet manual\n\tbond-slaves eno1\n\tbond-mode " + mode + "\n");
      ASSERT_TRUE(get(f, "bond0").bond->mode) << mode;
      EXPECT_EQ(*get(f, "bond0").bond->mode, static_cast<BondMode>(n)) << mode;
      EXPECT_EQ(to_string(*get(f, "bond0").bond->mode), kNames[n]);
    }
  }
}

TEST(InterfacesTyped, KindsOfVethDummyAliasCustomVlanAndNameOnlyBond) {
  InterfacesFile f = parse_ok(
      "iface ln_a\n\tlink-type veth\n\tveth-peer-name pr_a\n"
      "iface dummy_f\n\tlink-type dummy\n"
      "iface eno1:1 inet static\n\taddress 192.0.2.9/32\n"
      "iface sv_z\n\tvlan-raw-device eno2\n\tvlan-id 30\n"
      "iface bond3 inet manual\n"
      "iface enp3s0f1 inet manual\n"
      "iface nic0 inet manual\n"
      "iface eno1.5000 inet manual\n");
  EXPECT_EQ(get(f, "ln_a").kind, InterfaceKind::Veth);
  EXPECT_EQ(get(f, "dummy_f").kind, InterfaceKind::Dummy);
  EXPECT_EQ(get(f, "eno1:1").kind, InterfaceKind::Alias);
  EXPECT_EQ(get(f, "sv_z").kind, InterfaceKind::Vlan);
  EXPECT_EQ(get(f, "sv_z").vlan->id, 30u);
  EXPECT_EQ(get(f, "sv_z").vlan->raw_device.text, "eno2");
  EXPECT_EQ(get(f, "bond3").kind, InterfaceKind::Bond);
  EXPECT_EQ(get(f, "enp3s0f1").kind, InterfaceKind::Physical);
  EXPECT_EQ(get(f, "nic0").kind, InterfaceKind::Physical);
  EXPECT_EQ(get(f, "eno1.5000").vlan->id, 5000u) << "the range is validate()'s business";
  EXPECT_EQ(get(f, "eno1.5000").position_of("vlan-id"), (Position{14, 7}));
  EXPECT_TRUE(is_physical_nic_name("eth0"));
  EXPECT_FALSE(is_physical_nic_name("eth0.1"));
  EXPECT_FALSE(is_physical_nic_name("ethx"));
  EXPECT_FALSE(is_physical_nic_name("vmbr0"));
}

TEST(InterfacesTyped, UnknownOptionsWithKnownPrefixesAreKeptUninterpreted) {
  constexpr std::string_view kText =
      "iface vxlan_v\n"
      "\tvxlan-id 7\n"
      "\tvxlan-port 4790\n"
      "\tbridge-learning off\n"
      "iface v\n"
      "\tbridge_ports vxlan_v\n"
      "\tbridge-disable-mac-learning 1\n"
      "\tbridge-vlan-protocol 802.1ad\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1\n"
      "\tbond-lacp-rate fast\n"
      "iface vmbr1\n"
      "\tovs_type OVSBridge\n"
      "\tovs_extra set bridge vmbr1 rstp_enable=true\n";
  InterfacesFile f = parse_ok(kText);
  EXPECT_EQ(write_interfaces(f), kText);
  EXPECT_EQ(get(f, "vxlan_v").vxlan->id, 7u);
  EXPECT_TRUE(get(f, "v").bridge->vids.empty());
  EXPECT_FALSE(get(f, "v").bridge->stp);
  EXPECT_FALSE(get(f, "bond0").bond->mode);
  EXPECT_EQ(get(f, "vmbr1").ovs->options, "");
  EXPECT_EQ(get(f, "vmbr1").position_of("ovs-extra"), (Position{14, 12}));
}

TEST(InterfacesTyped, Inet6AutoMethodAndDhcp) {
  InterfacesFile f = parse_ok(
      "iface vmbr0 inet dhcp\n"
      "iface vmbr0 inet6 auto\n");
  EXPECT_EQ(get(f, "vmbr0").inet_method, Method::Dhcp);
  EXPECT_EQ(get(f, "vmbr0").inet6_method, Method::Auto);
}

// ----------------------------------------------------------------------------------------------
// Parse errors: exact file:line:column and message
// ----------------------------------------------------------------------------------------------

struct ErrorCase {
  const char* name;
  const char* text;
  const char* expected;  // "file:line:column: message"
};

class InterfacesParseError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(InterfacesParseError, PointsAtTheOffendingToken) {
  EXPECT_EQ(parse_error(GetParam().text), GetParam().expected);
}

const ErrorCase kErrorCases[] = {
    {"OptionBeforeAnyStanza", "# header\n  address 10.0.0.1/24\n",
     "interfaces:2:3: option 'address' outside an iface stanza"},
    {"OptionAfterAutoLine", "iface eno1 inet manual\n\tmtu 1500\nauto vmbr0\n\tbridge-ports eno1\n",
     "interfaces:4:2: option 'bridge-ports' outside an iface stanza"},
    {"OptionAfterSourceLine", "source /etc/network/interfaces.d/*\nmtu 9000\n",
     "interfaces:2:1: option 'mtu' outside an iface stanza"},
    {"UnknownFamily", "auto eno1\niface eno1  inet4 manual\n",
     "interfaces:2:13: unknown address family 'inet4' (expected inet or inet6)"},
    {"MethodWithoutFamily", "iface eno1 manual\n",
     "interfaces:1:12: unknown address family 'manual' (expected inet or inet6)"},
    {"UnknownMethod", "\niface eno1 inet ppp\n",
     "interfaces:2:17: unknown method 'ppp' for inet (expected manual, static, dhcp or loopback)"},
    {"AutoMethodForInet", "iface eno1 inet auto\n",
     "interfaces:1:17: unknown method 'auto' for inet (expected manual, static, dhcp or "
     "loopback)"},
    {"ExtraWordOnIfaceLine", "iface eno1 inet manual inherits base\n",
     "interfaces:1:24: unexpected 'inherits' after the method of iface eno1"},
    {"IfaceWithoutName", "\n\n   iface\n", "interfaces:3:4: iface needs an interface name"},
    {"AutoWithoutName", "auto\n", "interfaces:1:1: 'auto' needs an interface name"},
    {"SourceWithoutPath", "source\n", "interfaces:1:1: 'source' needs a path"},
    {"DuplicateStanzaSameFamily",
     "iface vmbr0 inet static\n\taddress 10.0.0.2/24\n\niface  vmbr0 inet manual\n",
     "interfaces:4:8: duplicate stanza 'iface vmbr0 inet' (first at line 1)"},
    {"DuplicateTypelessStanza", "iface vxlan1\n\tvxlan-id 5\niface vxlan1\n",
     "interfaces:3:7: duplicate stanza 'iface vxlan1' (first at line 1)"},
    {"MalformedAddress", "iface vmbr0 inet static\n\taddress 10.0.0.300/24\n",
     "interfaces:2:10: malformed address '10.0.0.300/24': not an IP address"},
    {"AddressPrefixTooLong", "iface vmbr0 inet static\n\taddress 10.0.0.1/24 10.0.0.2/33\n",
     "interfaces:2:22: malformed address '10.0.0.2/33': prefix length must be 0-32"},
    {"AddressPrefixNotANumber", "iface vmbr0 inet6 static\n    address fd00::1/x\n",
     "interfaces:2:13: malformed address 'fd00::1/x': prefix length must be 0-128"},
    {"MalformedNetmask", "iface vmbr0 inet static\n\taddress 10.0.0.1\n\tnetmask 255.0.255.0\n",
     "interfaces:3:10: malformed netmask '255.0.255.0' (expected a contiguous dotted mask or a "
     "prefix length)"},
    {"MalformedGateway", "iface vmbr0 inet static\n\tgateway 10.0.0\n",
     "interfaces:2:10: malformed gateway '10.0.0': not an IP address"},
    {"NonNumericMtu", "iface eno1 inet manual\n\tmtu jumbo\n",
     "interfaces:2:6: mtu must be a number, not 'jumbo'"},
    {"MtuOutOfRange", "iface eno1 inet manual\n\tmtu 70000\n",
     "interfaces:2:6: mtu 70000 is out of range (68-65535)"},
    {"NonNumericOvsMtu", "iface vmbr0 inet manual\n\tovs_type OVSBridge\n\tovs_mtu 9k\n",
     "interfaces:3:10: ovs_mtu must be a number, not '9k'"},
    {"NonNumericVlanId", "iface sv0\n\tvlan-raw-device eno1\n\tvlan-id ten\n",
     "interfaces:3:10: vlan-id must be a number, not 'ten'"},
    {"NegativeVlanId", "iface sv0\n\tvlan_id -1\n",
     "interfaces:2:10: vlan_id must be a number, not '-1'"},
    {"NonNumericVxlanId", "iface vx0\n\tvxlan-id 0x10\n",
     "interfaces:2:11: vxlan-id must be a number, not '0x10'"},
    {"VxlanIdAbove24Bits", "iface vx0\n\tvxlan-id 16777216\n",
     "interfaces:2:11: vxlan-id 16777216 is out of range (0-16777215)"},
    {"MalformedVxlanRemoteIp", "iface vx0\n\tvxlan-id 1\n\tvxlan_remoteip 192.0.2.1 peer2\n",
     "interfaces:3:27: malformed vxlan_remoteip 'peer2': not an IP address"},
    {"BadBondModeName", "iface bond0 inet manual\n\tbond-slaves eno1\n\tbond-mode lacp\n",
     "interfaces:3:12: unknown bond-mode 'lacp' (expected balance-rr, active-backup, "
     "balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb or 0-6)"},
    {"BadBondModeNumber", "iface bond0 inet manual\n\tbond_mode 7\n",
     "interfaces:2:12: unknown bond-mode '7' (expected balance-rr, active-backup, balance-xor, "
     "broadcast, 802.3ad, balance-tlb, balance-alb or 0-6)"},
    {"NonNumericMiimon", "iface bond0 inet manual\n\tbond-miimon fast\n",
     "interfaces:2:14: bond-miimon must be a number, not 'fast'"},
    {"BadStpBoolean", "iface vmbr0 inet manual\n\tbridge-ports none\n\tbridge-stp maybe\n",
     "interfaces:3:13: bridge-stp must be yes/no (or on/off, 1/0), not 'maybe'"},
    {"BadBridgeVids", "iface vmbr0 inet manual\n\tbridge-vids 2-4094 100-50\n",
     "interfaces:2:21: malformed bridge-vids entry '100-50' (expected a VLAN id or a range like "
     "2-4094)"},
    {"BadVlanProtocol", "iface eno1.10\n\tvlan-protocol 802.1x\n",
     "interfaces:2:16: unknown vlan-protocol '802.1x' (expected 802.1q or 802.1ad)"},
    {"BadOvsType", "iface vmbr0\n\tovs_type OVSSwitch\n",
     "interfaces:2:11: unknown ovs_type 'OVSSwitch' (expected OVSBridge, OVSBond, OVSIntPort or "
     "OVSPort)"},
    {"NonNumericOvsTag",
     "iface p0\n\tovs_type OVSIntPort\n\tovs_options vlan_mode=access tag=ten\n",
     "interfaces:3:31: ovs_options tag must be a number, not 'tag=ten'"},
    {"BadLinkType", "iface x0\n\tlink-type macvlan\n",
     "interfaces:2:12: unknown link-type 'macvlan' (expected veth or dummy)"},
    {"TypedOptionWithoutValue", "iface vmbr0 inet manual\n\tbridge-ports\n",
     "interfaces:2:2: option 'bridge-ports' needs a value"},
    {"SingleValuedOptionTwice", "iface eno1 inet manual\n\tmtu 9000\n\tmtu 1500\n",
     "interfaces:3:2: duplicate option 'mtu' for eno1 (first at line 2)"},
    {"SingleValuedOptionTwiceAcrossStanzas",
     "iface vmbr0 inet manual\n\tbridge-ports eno1\niface vmbr0 inet6 manual\n\tbridge_ports "
     "eno2\n",
     "interfaces:4:2: duplicate option 'bridge_ports' for vmbr0 (first at line 2)"},
    {"MtuAndOvsMtu", "iface vmbr0\n\tovs_type OVSBridge\n\tmtu 9000\n\tovs_mtu 9000\n",
     "interfaces:4:2: duplicate option 'ovs_mtu' for vmbr0 (first at line 3)"},
    {"TwoIpv4Gateways",
     "iface vmbr0 inet static\n\tgateway 192.0.2.1\niface vmbr0\n\tgateway 192.0.2.254\n",
     "interfaces:4:2: duplicate IPv4 gateway for vmbr0 (first at line 2)"},
    {"RawDeviceWithTwoNames", "iface v5\n\tvlan-raw-device eno1 eno2\n",
     "interfaces:2:23: option 'vlan-raw-device' takes one value, not 'eno1 eno2'"},
};

INSTANTIATE_TEST_SUITE_P(Cases, InterfacesParseError, ::testing::ValuesIn(kErrorCases),
                         [](const ::testing::TestParamInfo<ErrorCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(InterfacesParse, SameNameInAnotherFamilyIsNotADuplicate) {
  InterfacesFile f = parse_ok("iface vmbr0 inet static\niface vmbr0 inet6 static\niface vmbr0\n");
  EXPECT_EQ(f.interfaces().size(), 1u);
  EXPECT_EQ(f.items().size(), 3u);
}

TEST(InterfacesParse, RepeatableAndUnknownOptionsMayRepeat) {
  InterfacesFile f = parse_ok(
      "iface vmbr0 inet static\n"
      "\taddress 192.0.2.1/24\n"
      "\taddress 192.0.2.2/24 192.0.2.3/24\n"
      "\tpost-up echo 1\n"
      "\tpost-up echo 2\n");
  EXPECT_EQ(get(f, "vmbr0").addresses.size(), 3u);
  EXPECT_EQ(get(f, "vmbr0").addresses[2].at, (Position{3, 23}));
  EXPECT_EQ(get(f, "vmbr0").position_of("post-up"), (Position{4, 10}));
}

// ----------------------------------------------------------------------------------------------
// Mutators: only the lines asked about change
// ----------------------------------------------------------------------------------------------

// `text` with line `n` (1-based) replaced by `lines` (which may be several lines or none).
std::string with_lines(std::string_view text, int n, std::string_view lines) {
  std::string out;
  int line = 1;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size() - 1;
    std::string_view current = text.substr(start, end - start + 1);
    if (line == n) {
      out += lines;
    } else {
      out += current;
    }
    start = end + 1;
    ++line;
  }
  return out;
}

TEST(InterfacesEdit, SetOptionKeepsSpellingIndentAndEveryOtherByte) {
  InterfacesFile f = parse_ok(kVxlanFile);
  ASSERT_TRUE(f.set_option({"vnet1", Family::Unspecified}, "bridge-ports", "vxlan_vnet1 eno9"));
  EXPECT_EQ(write_interfaces(f), with_lines(kVxlanFile, 13, "\tbridge_ports vxlan_vnet1 eno9\n"));
  EXPECT_EQ(texts(get(f, "vnet1").bridge->ports),
            (std::vector<std::string>{"vxlan_vnet1", "eno9"}));

  InterfacesFile g = parse_ok("iface eno1 inet manual\n  mtu\t\t1500  \n");
  ASSERT_TRUE(g.set_option({"eno1"}, "mtu", "9000"));
  EXPECT_EQ(write_interfaces(g), "iface eno1 inet manual\n  mtu\t\t9000  \n");
}

TEST(InterfacesEdit, SetOptionAddsNewLineAfterLastOptionAndBeforeStanzaComment) {
  InterfacesFile f = parse_ok(kBondVlanAwareFile);
  ASSERT_TRUE(f.set_option({"bond0"}, "mtu", "9000"));
  EXPECT_EQ(write_interfaces(f),
            with_lines(kBondVlanAwareFile, 15, "\tbond-xmit-hash-policy layer2+3\n\tmtu 9000\n"));
  EXPECT_EQ(get(f, "bond0").mtu, 9000u);
  // Everything after the new line moved down by one, and the views know it.
  EXPECT_EQ(get(f, "vmbr0").at, (Position{20, 7}));
  EXPECT_EQ(get(f, "vmbr0").bridge->ports[0].at, (Position{23, 15}));
}

TEST(InterfacesEdit, SetOptionCollapsesRepeatedLinesOfTheKey) {
  InterfacesFile f = parse_ok("iface eno1 inet manual\n\tpost-up a\n\tmtu 1500\n\tpost_up b\n");
  ASSERT_TRUE(f.set_option({"eno1"}, "post-up", "c"));
  EXPECT_EQ(write_interfaces(f), "iface eno1 inet manual\n\tpost-up c\n\tmtu 1500\n");
}

TEST(InterfacesEdit, InvalidEditIsRejectedAndLeavesDocumentUnchanged) {
  InterfacesFile f = parse_ok(kDefaultFile);
  Status bad_mtu = f.set_option({"vmbr0"}, "mtu", "big");
  ASSERT_FALSE(bad_mtu);
  EXPECT_EQ(bad_mtu.error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(bad_mtu.error().message(), "mtu must be a number, not 'big'");
  EXPECT_EQ(f.set_option({"vmbr0"}, "bond-mode", "9").error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(f.set_option({"vmbr0"}, "iface", "x").error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(f.set_option({"vmbr0"}, "two words", "x").error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(f.set_option({"vmbr0"}, "up", "a\nauto x").error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(f.set_option({"vmbr0", Family::Inet6}, "mtu", "1500").error().code(),
            ErrorCode::NotFound);
  EXPECT_EQ(write_interfaces(f), kDefaultFile);
  EXPECT_FALSE(get(f, "vmbr0").mtu);
}

TEST(InterfacesEdit, AddAndRemoveOptionLines) {
  InterfacesFile f = parse_ok(kDefaultFile);
  ASSERT_TRUE(f.add_option({"vmbr0"}, "address", "192.168.1.11/24"));
  EXPECT_EQ(get(f, "vmbr0").addresses.size(), 2u);
  EXPECT_EQ(write_interfaces(f),
            with_lines(kDefaultFile, 23, "\tbridge-fd 0\n\taddress 192.168.1.11/24\n"));
  ASSERT_TRUE(f.remove_option({"vmbr0"}, "address"));
  EXPECT_TRUE(get(f, "vmbr0").addresses.empty());
  ASSERT_TRUE(f.remove_option({"vmbr0"}, "bridge_stp"));
  EXPECT_FALSE(get(f, "vmbr0").bridge->stp);
  EXPECT_EQ(write_interfaces(f), with_lines(with_lines(kDefaultFile, 22, ""), 19, ""));
}

TEST(InterfacesEdit, AddStanzaGoesAfterLastStanzaBeforeSourceLine) {
  InterfacesFile f = parse_ok(kDefaultFile);
  ASSERT_TRUE(f.add_stanza(
      {.name = "vmbr1",
       .method = Method::Manual,
       .options = {{"bridge-ports", "none"}, {"bridge-stp", "off"}, {"bridge-fd", "0"}}}));
  EXPECT_EQ(write_interfaces(f), with_lines(kDefaultFile, 25,
                                            "iface wlp2s0 inet manual\n"
                                            "\n"
                                            "auto vmbr1\n"
                                            "iface vmbr1 inet manual\n"
                                            "\tbridge-ports none\n"
                                            "\tbridge-stp off\n"
                                            "\tbridge-fd 0\n"));
  const Interface& br = get(f, "vmbr1");
  EXPECT_EQ(br.kind, InterfaceKind::Bridge);
  EXPECT_TRUE(br.autostart);
  EXPECT_EQ(br.at, (Position{28, 7}));
  EXPECT_EQ(f.add_stanza({.name = "vmbr1"}).error().code(), ErrorCode::AlreadyExists);
  EXPECT_EQ(f.add_stanza({.name = "bad name"}).error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(f.add_stanza({.name = "x", .family = Family::Unspecified}).error().code(),
            ErrorCode::InvalidArgument);
}

TEST(InterfacesEdit, AddInet6StanzaGoesRightAfterTheInetOne) {
  InterfacesFile f = parse_ok(kDefaultFile);
  ASSERT_TRUE(f.add_stanza({.name = "vmbr0",
                            .family = Family::Inet6,
                            .method = Method::Static,
                            .options = {{"address", "2001:db8::10/64"}}}));
  EXPECT_EQ(write_interfaces(f),
            with_lines(kDefaultFile, 23,
                       "\tbridge-fd 0\niface vmbr0 inet6 static\n\taddress 2001:db8::10/64\n"));
  EXPECT_EQ(get(f, "vmbr0").inet6_method, Method::Static);
  EXPECT_EQ(get(f, "vmbr0").addresses.size(), 2u);
}

TEST(InterfacesEdit, AddStanzaToEmptyAndUnterminatedFiles) {
  InterfacesFile empty("new");
  ASSERT_TRUE(empty.add_stanza({.name = "lo", .method = Method::Loopback}));
  EXPECT_EQ(write_interfaces(empty), "auto lo\niface lo inet loopback\n");

  InterfacesFile f = parse_ok("iface eno1 inet manual");
  ASSERT_TRUE(f.add_stanza({.name = "eno2", .autostart = false}));
  EXPECT_EQ(write_interfaces(f), "iface eno1 inet manual\n\niface eno2 inet manual\n");
}

TEST(InterfacesEdit, RemoveStanzaDropsItsAutoLineAndTheDoubledBlank) {
  InterfacesFile f = parse_ok(kBondVlanAwareFile);
  ASSERT_TRUE(f.remove_stanza({"vmbr0", Family::Inet6}));
  std::string expected = with_lines(kBondVlanAwareFile, 28, "");
  expected = with_lines(expected, 28, "");
  expected = with_lines(expected, 28, "");
  expected = with_lines(expected, 28, "");
  EXPECT_EQ(write_interfaces(f), expected) << "vmbr0 still has its inet stanza and auto line";
  EXPECT_TRUE(get(f, "vmbr0").autostart);

  InterfacesFile g = parse_ok(kDefaultFile);
  ASSERT_TRUE(g.remove_stanza({"vmbr0"}));
  std::string without = std::string(kDefaultFile);
  size_t from = without.find("auto vmbr0\n");
  size_t to = without.find("iface wlp2s0");
  without.erase(from, to - from);
  EXPECT_EQ(write_interfaces(g), without);
  EXPECT_EQ(g.find("vmbr0"), nullptr);
}

TEST(InterfacesEdit, RemoveStanzaTakesNameOffSharedAutoLine) {
  InterfacesFile f = parse_ok(
      "auto lo eno1 eno2\n"
      "iface lo inet loopback\n"
      "\n"
      "iface eno1 inet manual\n"
      "\n"
      "iface eno2 inet manual\n");
  ASSERT_TRUE(f.remove_stanza({"eno1"}));
  EXPECT_EQ(write_interfaces(f),
            "auto lo eno2\n"
            "iface lo inet loopback\n"
            "\n"
            "iface eno2 inet manual\n");
  EXPECT_EQ(f.remove_stanza({"eno1"}).error().code(), ErrorCode::NotFound);
}

TEST(InterfacesEdit, RemoveLastStanzaLeavesNoTrailingBlank) {
  InterfacesFile f = parse_ok(kVxlanFile);
  ASSERT_TRUE(f.remove_stanza({"vnet1", Family::Unspecified}));
  std::string expected(kVxlanFile.substr(0, kVxlanFile.find("\nauto vnet1")));
  EXPECT_EQ(write_interfaces(f), expected);
}

TEST(InterfacesEdit, SetMethodRewritesOnlyTheIfaceLine) {
  InterfacesFile f = parse_ok(kDefaultFile);
  ASSERT_TRUE(f.set_method({"eno1"}, Method::Static));
  EXPECT_EQ(write_interfaces(f), with_lines(kDefaultFile, 15, "iface eno1 inet static\n"));
  EXPECT_EQ(get(f, "eno1").inet_method, Method::Static);
  EXPECT_EQ(f.set_method({"eno1"}, Method::Auto).error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(f.set_method({"eno9"}, Method::Dhcp).error().code(), ErrorCode::NotFound);
}

TEST(InterfacesEdit, SetAutostartAddsAndRemovesAutoLines) {
  InterfacesFile f = parse_ok(kDefaultFile);
  ASSERT_TRUE(f.set_autostart("eno1", true));
  EXPECT_EQ(write_interfaces(f),
            with_lines(kDefaultFile, 15, "auto eno1\niface eno1 inet manual\n"));
  EXPECT_TRUE(get(f, "eno1").autostart);
  ASSERT_TRUE(f.set_autostart("eno1", true));  // already: nothing changes
  ASSERT_TRUE(f.set_autostart("eno1", false));
  ASSERT_TRUE(f.set_autostart("vmbr0", false));
  EXPECT_EQ(write_interfaces(f), with_lines(kDefaultFile, 17, ""));
  EXPECT_FALSE(get(f, "vmbr0").autostart);
  EXPECT_EQ(f.set_autostart("eno9", true).error().code(), ErrorCode::NotFound);
}

}  // namespace
}  // namespace moat::bridges
