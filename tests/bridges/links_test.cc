#include "moat/bridges/links.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bridges/fixtures.h"

namespace moat::bridges {
namespace {

std::vector<LinkSpec> compile(std::string_view text) {
  Result<InterfacesFile> f = parse_interfaces(text, "interfaces");
  EXPECT_TRUE(f.has_value()) << f.error().to_string();
  if (!f) return {};
  Result<std::vector<LinkSpec>> specs = compile_links(*f);
  EXPECT_TRUE(specs.has_value()) << specs.error().to_string();
  return specs ? *specs : std::vector<LinkSpec>{};
}

Error compile_error(std::string_view text) {
  Result<InterfacesFile> f = parse_interfaces(text, "interfaces");
  EXPECT_TRUE(f.has_value()) << f.error().to_string();
  if (!f) return Error(ErrorCode::Internal, "parse");
  Result<std::vector<LinkSpec>> specs = compile_links(*f);
  EXPECT_FALSE(specs.has_value());
  return specs ? Error(ErrorCode::Internal, "no error") : specs.error();
}

const LinkSpec* find(const std::vector<LinkSpec>& specs, std::string_view name) {
  for (const LinkSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

LinkAddress addr(std::string_view text) {
  size_t slash = text.find('/');
  return {*parse_ip(text.substr(0, slash)), std::stoi(std::string(text.substr(slash + 1)))};
}

std::vector<std::string> lines(const std::vector<LinkOp>& plan) {
  std::vector<std::string> out;
  for (const LinkOp& op : plan) out.push_back(to_string(op));
  return out;
}

// What the kernel would do with `plan`: the fake netlink of these tests.
void fake_apply(Observed& o, const std::vector<LinkOp>& plan) {
  auto get = [&](const std::string& name) -> ObservedLink& {
    for (ObservedLink& l : o.links) {
      if (l.name == name) return l;
    }
    ADD_FAILURE() << "no link " << name;
    static ObservedLink none;
    return none;
  };
  for (const LinkOp& op : plan) {
    switch (op.type) {
      case LinkOp::Type::Delete:
        std::erase_if(o.links, [&](const ObservedLink& l) { return l.name == op.link; });
        for (ObservedLink& l : o.links) {
          if (l.master == op.link) l.master.clear();
        }
        break;
      case LinkOp::Type::Create: {
        ObservedLink l{.name = op.link,
                       .kind = to_string(op.spec.kind),
                       .mtu = op.spec.mtu.value_or(1500),
                       .alias = std::string(kOwnedAlias)};
        if (op.spec.kind == LinkKind::Vxlan) l.vxlan = op.spec.vxlan;
        o.links.push_back(l);
        if (op.spec.kind == LinkKind::Veth) {
          o.links.push_back({.name = op.spec.veth_peer,
                             .kind = "veth",
                             .mtu = l.mtu,
                             .up = true,
                             .alias = std::string(kOwnedAlias)});
        }
        break;
      }
      case LinkOp::Type::SetMtu:
        get(op.link).mtu = op.mtu;
        break;
      case LinkOp::Type::SetMaster:
        get(op.link).master = op.master;
        break;
      case LinkOp::Type::DelAddress:
        std::erase(get(op.link).addresses, op.address);
        break;
      case LinkOp::Type::AddAddress: {
        auto& a = get(op.link).addresses;
        a.push_back(op.address);
        std::sort(a.begin(), a.end());
        break;
      }
      case LinkOp::Type::SetUp:
        get(op.link).up = op.up;
        break;
    }
  }
  std::sort(o.links.begin(), o.links.end(),
            [](const ObservedLink& a, const ObservedLink& b) { return a.name < b.name; });
}

constexpr std::string_view kNode =
    "auto lo\n"
    "iface lo inet loopback\n"
    "\n"
    "auto ul0\n"
    "iface ul0 inet static\n"
    "\taddress 10.250.0.1/24\n"
    "\n"
    "auto vx100\n"
    "iface vx100 inet manual\n"
    "\tvxlan-id 100\n"
    "\tvxlan-local-tunnelip 10.250.0.1\n"
    "\tvxlan-remoteip 10.250.0.2\n"
    "\tvxlan-physdev ul0\n"
    "\tmtu 1450\n"
    "\n"
    "auto vp0\n"
    "iface vp0 inet manual\n"
    "\tlink-type veth\n"
    "\tveth-peer-name vp0p\n"
    "\n"
    "auto vmbr0\n"
    "iface vmbr0 inet static\n"
    "\taddress 10.0.0.1/24\n"
    "\tbridge-ports vx100 vp0\n"
    "\tbridge-stp off\n"
    "\tbridge-fd 0\n"
    "\tmtu 1450\n";

// The kernel of a fresh node: lo and the underlay, nothing of Moat's yet.
Observed fresh_node() {
  return {
      .links = {
          {.index = 1, .name = "lo", .mtu = 65536, .up = true, .addresses = {addr("127.0.0.1/8")}},
          {.index = 2, .name = "ul0", .kind = "veth", .mtu = 1500}}};
}

TEST(CompileLinks, MapsKindsMastersAndOptions) {
  std::vector<LinkSpec> specs = compile(kNode);
  std::vector<std::string> names;
  for (const LinkSpec& s : specs) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"ul0", "vmbr0", "vp0", "vx100"}));

  const LinkSpec* br = find(specs, "vmbr0");
  ASSERT_NE(br, nullptr);
  EXPECT_EQ(br->kind, LinkKind::Bridge);
  EXPECT_EQ(br->mtu, 1450u);
  EXPECT_TRUE(br->up);
  EXPECT_FALSE(br->bridge.stp);
  EXPECT_EQ(br->bridge.forward_delay, 0u);
  EXPECT_EQ(br->addresses, (std::vector<LinkAddress>{addr("10.0.0.1/24")}));
  EXPECT_EQ(br->line, 22);

  const LinkSpec* vx = find(specs, "vx100");
  ASSERT_NE(vx, nullptr);
  EXPECT_EQ(vx->kind, LinkKind::Vxlan);
  EXPECT_EQ(vx->master, "vmbr0");
  EXPECT_EQ(vx->vxlan.id, 100u);
  EXPECT_EQ(vx->vxlan.local, parse_ip("10.250.0.1"));
  EXPECT_EQ(vx->vxlan.remotes, (std::vector<IpAddress>{*parse_ip("10.250.0.2")}));
  EXPECT_EQ(vx->vxlan.dstport, kVxlanPort);
  EXPECT_EQ(vx->vxlan.dev, "ul0");

  const LinkSpec* vp = find(specs, "vp0");
  ASSERT_NE(vp, nullptr);
  EXPECT_EQ(vp->kind, LinkKind::Veth);
  EXPECT_EQ(vp->veth_peer, "vp0p");
  EXPECT_EQ(vp->master, "vmbr0");

  const LinkSpec* ul = find(specs, "ul0");
  ASSERT_NE(ul, nullptr);
  EXPECT_EQ(ul->kind, LinkKind::Physical);
  EXPECT_EQ(ul->master, "");
}

TEST(CompileLinks, MapsBondsVlansAndVlanAwareBridges) {
  std::vector<LinkSpec> specs = compile(testing::kBondVlanAwareFile);
  ASSERT_FALSE(specs.empty());
  bool saw_bond = false;
  for (const LinkSpec& s : specs) {
    if (s.kind != LinkKind::Bond) continue;
    saw_bond = true;
    ASSERT_FALSE(s.bond.slaves.empty());
    for (const std::string& slave : s.bond.slaves) {
      const LinkSpec* sl = find(specs, slave);
      ASSERT_NE(sl, nullptr) << slave;
      EXPECT_EQ(sl->master, s.name);
    }
  }
  EXPECT_TRUE(saw_bond);
  EXPECT_TRUE(std::any_of(specs.begin(), specs.end(), [](const LinkSpec& s) {
    return s.kind == LinkKind::Bridge && s.bridge.vlan_filtering;
  }));

  std::vector<LinkSpec> v = compile(
      "auto bond0\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1 eno2\n"
      "\tbond-mode active-backup\n"
      "\tbond-miimon 100\n"
      "\n"
      "auto bond0.20\n"
      "iface bond0.20 inet static\n"
      "\taddress 192.0.2.5/24\n"
      "\n"
      "auto vl30\n"
      "iface vl30 inet manual\n"
      "\tvlan-raw-device eno3\n"
      "\tvlan-id 30\n"
      "\tvlan-protocol 802.1ad\n");
  const LinkSpec* bond = find(v, "bond0");
  ASSERT_NE(bond, nullptr);
  EXPECT_EQ(bond->bond.mode, BondMode::ActiveBackup);
  EXPECT_EQ(bond->bond.miimon, 100u);
  EXPECT_EQ(bond->bond.slaves, (std::vector<std::string>{"eno1", "eno2"}));
  ASSERT_NE(find(v, "eno1"), nullptr);
  EXPECT_EQ(find(v, "eno1")->kind, LinkKind::Physical);
  EXPECT_EQ(find(v, "eno1")->master, "bond0");
  EXPECT_TRUE(find(v, "eno1")->up);
  const LinkSpec* vlan = find(v, "bond0.20");
  ASSERT_NE(vlan, nullptr);
  EXPECT_EQ(vlan->kind, LinkKind::Vlan);
  EXPECT_EQ(vlan->vlan.id, 20);
  EXPECT_EQ(vlan->vlan.parent, "bond0");
  EXPECT_EQ(vlan->vlan.protocol, VlanProtocol::Dot1Q);
  const LinkSpec* vl30 = find(v, "vl30");
  ASSERT_NE(vl30, nullptr);
  EXPECT_EQ(vl30->vlan.parent, "eno3");
  EXPECT_EQ(vl30->vlan.protocol, VlanProtocol::Dot1AD);
}

TEST(CompileLinks, SkipsOvsLoopbackAndDummiesWithoutError) {
  std::vector<LinkSpec> specs = compile(testing::kOvsFile);
  for (const LinkSpec& s : specs) {
    EXPECT_NE(s.name, "lo");
    EXPECT_EQ(s.kind, LinkKind::Physical) << s.name;  // only the NICs under OVS remain
  }
}

TEST(CompileLinks, RejectsVethWithoutPeerAndPortOfTwoMasters) {
  Error e = compile_error(
      "auto vp0\n"
      "iface vp0 inet manual\n"
      "\tlink-type veth\n");
  EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
  EXPECT_EQ(e.to_string(), "interfaces:2:7: veth 'vp0' needs veth-peer-name");

  e = compile_error(
      "iface br0 inet manual\n"
      "\tbridge-ports eno1\n"
      "\n"
      "iface br1 inet manual\n"
      "\tbridge-ports eno1\n");
  EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
  EXPECT_NE(e.to_string().find("interfaces:5:"), std::string::npos) << e.to_string();
  EXPECT_NE(e.message().find("already a port of 'br0'"), std::string::npos) << e.message();

  e = compile_error(
      "iface vx1 inet manual\n"
      "\tvxlan-id 1\n"
      "\tvxlan-port 70000\n");
  EXPECT_NE(e.to_string().find("interfaces:3:"), std::string::npos) << e.to_string();
}

TEST(PlanLinks, FreshNodeCreatesMastersFirstThenConfigures) {
  std::vector<LinkOp> plan = plan_links(fresh_node(), compile(kNode));
  EXPECT_EQ(lines(plan), (std::vector<std::string>{
                             "create bridge vmbr0 stp off forward-delay 0 mtu 1450",
                             "create veth vp0 peer vp0p",
                             "create vxlan vx100 id 100 local 10.250.0.1 remote 10.250.0.2 "
                             "dstport 4789 dev ul0 mtu 1450",
                             "add address 10.250.0.1/24 to ul0",
                             "set ul0 up",
                             "add address 10.0.0.1/24 to vmbr0",
                             "set vmbr0 up",
                             "set vp0 master vmbr0",
                             "set vp0 up",
                             "set vx100 master vmbr0",
                             "set vx100 up",
                         }));
  EXPECT_EQ(plan[0].line, 22);
  EXPECT_EQ(to_string(std::vector<LinkOp>{}), "(no changes)\n");
  EXPECT_EQ(to_string(plan).substr(0, 3), "1. ");
}

TEST(PlanLinks, ApplyingThenPlanningAgainIsEmpty) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

TEST(PlanLinks, DriftIsPlannedBack) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  for (ObservedLink& l : o.links) {
    if (l.name == "vmbr0") {
      l.mtu = 9000;
      l.addresses.clear();
      l.addresses.push_back(addr("fe80::1/64"));  // link-local: not Moat's business
      l.addresses.push_back(addr("192.0.2.9/24"));
    }
    if (l.name == "vx100") l.master.clear();
  }
  EXPECT_EQ(lines(plan_links(o, desired)), (std::vector<std::string>{
                                               "set vmbr0 mtu 1450",
                                               "delete address 192.0.2.9/24 from vmbr0",
                                               "add address 10.0.0.1/24 to vmbr0",
                                               "set vx100 master vmbr0",
                                           }));
}

TEST(PlanLinks, ChangedMtuPlansOnlyThat) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  for (LinkSpec& s : desired) {
    if (s.name == "vmbr0") s.mtu = 1400;
  }
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{"set vmbr0 mtu 1400"});
}

TEST(PlanLinks, DeletesOnlyOwnedLinksAndNeverGuestPorts) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  o.links.push_back({.name = "eno1", .mtu = 1500, .up = true});             // a NIC
  o.links.push_back({.name = "old0", .kind = "bridge", .alias = "moat"});   // ours
  o.links.push_back({.name = "br9", .kind = "bridge"});                     // someone's
  o.links.push_back({.name = "veth9i0", .kind = "veth", .alias = "moat"});  // guest port
  std::sort(o.links.begin(), o.links.end(),
            [](const ObservedLink& a, const ObservedLink& b) { return a.name < b.name; });
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{"delete link old0"});
}

TEST(PlanLinks, GuestPortsStayEnslavedWhateverTheDesiredStateSays) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  o.links.push_back({.name = "tap100i0", .kind = "tun", .master = "vmbr0", .up = true});
  o.links.push_back({.name = "fwpr101p0", .kind = "veth", .master = "vmbr0", .up = true});
  // The file now names the guest ports as ports of another bridge, and vmbr0 is gone from it.
  std::erase_if(desired, [](const LinkSpec& s) { return s.name == "vmbr0"; });
  for (LinkSpec& s : desired) s.master.clear();
  desired.push_back({.name = "tap100i0", .master = "vmbr1"});
  std::vector<LinkOp> plan = plan_links(o, desired);
  for (const LinkOp& op : plan) {
    EXPECT_NE(op.link, "tap100i0") << to_string(op);
    EXPECT_NE(op.link, "fwpr101p0") << to_string(op);
    // vmbr0 still holds guests: deleting it would detach them.
    EXPECT_NE(to_string(op), "delete link vmbr0");
  }
  EXPECT_EQ(lines(plan), (std::vector<std::string>{"set vp0 nomaster", "set vx100 nomaster"}));
}

TEST(PlanLinks, ChangedVxlanParametersRecreateTheLink) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  for (LinkSpec& s : desired) {
    if (s.name == "vx100") s.vxlan.remotes = {*parse_ip("10.250.0.3")};
  }
  EXPECT_EQ(lines(plan_links(o, desired)),
            (std::vector<std::string>{"delete link vx100",
                                      "create vxlan vx100 id 100 local 10.250.0.1 remote "
                                      "10.250.0.3 dstport 4789 dev ul0 mtu 1450",
                                      "set vx100 master vmbr0", "set vx100 up"}));
}

TEST(PlanLinks, BondsAndVlansAreCreatedAfterWhatTheyStandOn) {
  std::vector<LinkSpec> desired = compile(
      "auto bond0\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1 eno2\n"
      "\tbond-mode 802.3ad\n"
      "\n"
      "auto vmbr0\n"
      "iface vmbr0 inet manual\n"
      "\tbridge-ports bond0\n"
      "\tbridge-vlan-aware yes\n"
      "\n"
      "auto bond0.20\n"
      "iface bond0.20 inet manual\n");
  Observed o{.links = {{.name = "eno1", .mtu = 1500}, {.name = "eno2", .mtu = 1500}}};
  std::vector<LinkOp> plan = plan_links(o, desired);
  EXPECT_EQ(lines(plan), (std::vector<std::string>{
                             "create bridge vmbr0 stp off vlan-filtering on",
                             "create bond bond0 mode 802.3ad",
                             "create vlan bond0.20 id 20 parent bond0 protocol 802.1Q",
                             "set vmbr0 up",
                             "set bond0 master vmbr0",
                             "set bond0 up",
                             "set bond0.20 up",
                             "set eno1 master bond0",
                             "set eno1 up",
                             "set eno2 master bond0",
                             "set eno2 up",
                         }));
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

}  // namespace
}  // namespace moat::bridges
