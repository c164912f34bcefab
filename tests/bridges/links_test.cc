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
        // VLANs go with their parent, VXLANs with their underlay.
        std::erase_if(o.links, [&](const ObservedLink& l) {
          return l.name == op.link || (l.vlan && l.vlan->parent == op.link) ||
                 (l.vxlan && l.vxlan->dev == op.link);
        });
        for (ObservedLink& l : o.links) {
          if (l.master == op.link) l.master.clear();
        }
        break;
      case LinkOp::Type::Create: {
        ObservedLink l{.name = op.link,
                       .kind = to_string(op.spec.kind),
                       .mtu = op.spec.mtu.value_or(1500),
                       .alias = std::string(kOwnedAlias)};
        if (op.spec.kind == LinkKind::Vxlan) {
          l.vxlan = op.spec.vxlan;
          // The kernel makes the entry of a single remote itself.
          if (op.spec.vxlan.remotes.size() == 1) l.fdb_remotes = op.spec.vxlan.remotes;
          if (op.spec.vxlan.remotes.size() > 1) l.vxlan->remotes.clear();
        }
        if (op.spec.kind == LinkKind::Bridge) l.bridge = op.spec.bridge;
        if (op.spec.kind == LinkKind::Bond) {
          l.bond = op.spec.bond;
          l.bond->slaves.clear();
        }
        if (op.spec.kind == LinkKind::Vlan) l.vlan = op.spec.vlan;
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
      case LinkOp::Type::SetBridge: {
        BridgeSpec& b = *get(op.link).bridge;
        b.stp = op.spec.bridge.stp;
        b.vlan_filtering = op.spec.bridge.vlan_filtering;
        if (op.spec.bridge.forward_delay) b.forward_delay = op.spec.bridge.forward_delay;
        break;
      }
      case LinkOp::Type::SetBond: {
        BondSpec& b = *get(op.link).bond;
        if (op.spec.bond.miimon) b.miimon = op.spec.bond.miimon;
        if (op.spec.bond.xmit_hash_policy) b.xmit_hash_policy = op.spec.bond.xmit_hash_policy;
        if (!op.spec.bond.primary.empty()) b.primary = op.spec.bond.primary;
        break;
      }
      case LinkOp::Type::AddFdb: {
        auto& f = get(op.link).fdb_remotes;
        f.push_back(op.address.ip);
        std::sort(f.begin(), f.end());
        break;
      }
      case LinkOp::Type::DelFdb:
        std::erase(get(op.link).fdb_remotes, op.address.ip);
        break;
      case LinkOp::Type::AddRoute:
        o.routes.push_back({.dst = {.ip = {.family = op.address.ip.family}, .prefix = 0},
                            .gateway = op.address.ip,
                            .link = op.link,
                            .protocol = kRouteProtocol});
        break;
      case LinkOp::Type::DelRoute:
        std::erase(o.routes, op.route);
        break;
      case LinkOp::Type::ClearGroup:
        get(op.link).group = 0;
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

// A fresh node with kNode applied, and kNode's specs.
struct Applied {
  Observed o;
  std::vector<LinkSpec> desired;
};
Applied applied_node() {
  Applied a{fresh_node(), compile(kNode)};
  fake_apply(a.o, plan_links(a.o, a.desired));
  return a;
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

TEST(CompileLinks, StpKeepsTheForwardDelayInTheKernelsRange) {
  auto fd = [](std::string_view stp, std::string_view delay) {
    std::vector<LinkSpec> specs = compile(
        "iface br0 inet manual\n\tbridge-ports none\n"
        "\tbridge-stp " +
        std::string(stp) + "\n\tbridge-fd " + std::string(delay) + "\n");
    const LinkSpec* s = find(specs, "br0");
    return s ? s->bridge.forward_delay : std::nullopt;
  };
  EXPECT_EQ(fd("on", "0"), 2u);
  EXPECT_EQ(fd("on", "45"), 30u);
  EXPECT_EQ(fd("on", "15"), 15u);
  EXPECT_EQ(fd("off", "0"), 0u);  // without STP the kernel takes any
}

TEST(CompileLinks, RejectsLinkNamesLongerThanTheKernelTakes) {
  // The driver copies names into 1 KiB netlink requests: a long one overflowed the request.
  std::string long_name(2000, 'b');
  Error e = compile_error("iface " + long_name + " inet manual\n\tbridge-ports eno1\n");
  EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
  EXPECT_NE(e.to_string().find("interfaces:1:"), std::string::npos) << e.to_string();
  EXPECT_NE(e.message().find("longer than 15"), std::string::npos) << e.message();

  e = compile_error("iface br0 inet manual\n\tbridge-ports eno1 " + long_name + "\n");
  EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
  EXPECT_NE(e.to_string().find("interfaces:2:"), std::string::npos) << e.to_string();

  e = compile_error(
      "iface vp0 inet manual\n"
      "\tlink-type veth\n"
      "\tveth-peer-name " +
      long_name + "\n");
  EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
  EXPECT_NE(e.to_string().find("interfaces:3:"), std::string::npos) << e.to_string();

  // 15 characters is the longest name the kernel takes, and it passes.
  EXPECT_NE(
      find(compile("iface abcdefghijklmno inet manual\n\tbridge-ports eno1\n"), "abcdefghijklmno"),
      nullptr);
}

TEST(PlanLinks, FreshNodeCreatesMastersFirstThenConfigures) {
  std::vector<LinkOp> plan = plan_links(fresh_node(), compile(kNode));
  EXPECT_EQ(lines(plan), (std::vector<std::string>{
                             "create bridge vmbr0 stp off forward-delay 0 mtu 1450",
                             "create veth vp0 peer vp0p",
                             "create vxlan vx100 id 100 local 10.250.0.1 remote 10.250.0.2 "
                             "dstport 4789 dev ul0 mtu 1450",
                             "add address 10.250.0.1/24 to ul0",
                             "set ul0 up (kernel has down)",
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
                                               "set vmbr0 mtu 1450 (kernel has 9000)",
                                               "delete address 192.0.2.9/24 from vmbr0",
                                               "add address 10.0.0.1/24 to vmbr0",
                                               "set vx100 master vmbr0 (kernel has nomaster)",
                                           }));
}

TEST(PlanLinks, AVethPeerNamedInTheFileIsConfiguredInTheApplyThatMakesIt) {
  // The peer exists only once its veth is made: it was skipped as a missing NIC, so the plan
  // after the apply still enslaved it (not idempotent); a pair declared from both ends was
  // created twice (EEXIST).
  std::vector<LinkSpec> desired = compile(
      "auto vl0\n"
      "iface vl0 inet manual\n"
      "\tlink-type veth\n"
      "\tveth-peer-name vl0p\n"
      "\n"
      "auto vl0p\n"
      "iface vl0p inet static\n"
      "\taddress 10.7.0.1/24\n"
      "\tgateway 10.7.0.254\n"
      "\tmtu 1400\n"
      "\n"
      "auto ab\n"
      "iface ab inet manual\n"
      "\tlink-type veth\n"
      "\tveth-peer-name ba\n"
      "\n"
      "auto ba\n"
      "iface ba inet manual\n"
      "\tlink-type veth\n"
      "\tveth-peer-name ab\n"
      "\n"
      "auto br1\n"
      "iface br1 inet manual\n"
      "\tbridge-ports vl0 ba\n"
      "\n"
      "auto br2\n"
      "iface br2 inet manual\n"
      "\tbridge-ports ab\n");
  Observed o = fresh_node();
  std::vector<LinkOp> plan = plan_links(o, desired);
  std::vector<std::string> text = lines(plan);
  EXPECT_EQ(std::count_if(text.begin(), text.end(),
                          [](const std::string& l) { return l.starts_with("create veth"); }),
            2)
      << to_string(plan);
  for (std::string_view want :
       {"set vl0p mtu 1400", "add address 10.7.0.1/24 to vl0p", "set vl0p up", "set ba master br1",
        "set ab master br2", "add route default via 10.7.0.254 dev vl0p"}) {
    EXPECT_NE(std::find(text.begin(), text.end(), want), text.end()) << want << "\n"
                                                                     << to_string(plan);
  }
  fake_apply(o, plan);
  EXPECT_EQ(to_string(plan_links(o, desired)), "(no changes)\n");
}

TEST(PlanLinks, ChangedMtuPlansOnlyThat) {
  Observed o = fresh_node();
  std::vector<LinkSpec> desired = compile(kNode);
  fake_apply(o, plan_links(o, desired));
  for (LinkSpec& s : desired) {
    if (s.name == "vmbr0") s.mtu = 1400;
  }
  EXPECT_EQ(lines(plan_links(o, desired)),
            std::vector<std::string>{"set vmbr0 mtu 1400 (kernel has 1450)"});
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
  EXPECT_EQ(lines(plan),
            (std::vector<std::string>{"set vp0 nomaster (kernel has master vmbr0)",
                                      "set vx100 nomaster (kernel has master vmbr0)"}));
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

  // A changed vxlan-physdev too (the kernel cannot move a VXLAN to another underlay); it was
  // never applied.
  fake_apply(o, plan_links(o, desired));
  for (LinkSpec& s : desired) {
    if (s.name == "vx100") s.vxlan.dev.clear();
  }
  std::vector<std::string> text = lines(plan_links(o, desired));
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.front(), "delete link vx100");
  fake_apply(o, plan_links(o, desired));
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
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
                             "set eno1 master bond0 (kernel has nomaster)",
                             "set eno1 up (kernel has down)",
                             "set eno2 master bond0 (kernel has nomaster)",
                             "set eno2 up (kernel has down)",
                         }));
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

TEST(PlanLinks, BridgeOptionDriftIsSetBackInPlaceAndSaysWhatTheKernelHas) {
  auto [o, desired] = applied_node();
  for (ObservedLink& l : o.links) {
    if (l.name == "vmbr0") l.bridge = BridgeSpec{.stp = true, .forward_delay = 15};
  }
  std::vector<LinkOp> plan = plan_links(o, desired);
  EXPECT_EQ(lines(plan),
            std::vector<std::string>{
                "set vmbr0 stp off forward-delay 0 (kernel has stp on forward-delay 15)"});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].type, LinkOp::Type::SetBridge);
  EXPECT_EQ(plan[0].line, 22);
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  // A forward delay the file does not name is left alone.
  for (LinkSpec& s : desired) s.bridge.forward_delay.reset();
  for (ObservedLink& l : o.links) {
    if (l.name == "vmbr0") l.bridge->forward_delay = 15;
  }
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

TEST(PlanLinks, BondOptionsAreCreatedAndRepairedAndAChangedModeRecreates) {
  std::vector<LinkSpec> desired = compile(
      "auto bond0\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1 eno2\n"
      "\tbond-mode active-backup\n"
      "\tbond-miimon 100\n"
      "\tbond-primary eno1\n"
      "\tbond-xmit-hash-policy layer3+4\n");
  const LinkSpec* bond = find(desired, "bond0");
  ASSERT_NE(bond, nullptr);
  EXPECT_EQ(bond->bond.xmit_hash_policy, XmitHashPolicy::Layer34);
  EXPECT_EQ(bond->bond.primary, "eno1");
  Observed o{.links = {{.name = "eno1", .mtu = 1500}, {.name = "eno2", .mtu = 1500}}};
  std::vector<LinkOp> plan = plan_links(o, desired);
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(to_string(plan[0]),
            "create bond bond0 mode active-backup miimon 100 xmit-hash-policy layer3+4 primary "
            "eno1");
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  for (ObservedLink& l : o.links) {
    if (l.name == "bond0") l.bond->miimon = 0;
  }
  EXPECT_EQ(lines(plan_links(o, desired)),
            std::vector<std::string>{
                "set bond0 miimon 100 xmit-hash-policy layer3+4 primary eno1 (kernel has miimon "
                "0)"});

  for (ObservedLink& l : o.links) {
    if (l.name == "bond0") l.bond->mode = BondMode::BalanceRr;
  }
  plan = plan_links(o, desired);
  ASSERT_GE(plan.size(), 2u);
  EXPECT_EQ(to_string(plan[0]), "delete link bond0");
  EXPECT_EQ(plan[1].type, LinkOp::Type::Create);
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  Error e = compile_error(
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1\n"
      "\tbond-xmit-hash-policy layer9\n");
  EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
  EXPECT_NE(e.to_string().find("interfaces:3:"), std::string::npos) << e.to_string();
}

TEST(PlanLinks, AVlanOnARecreatedBondIsMadeAgainInTheSamePlan) {
  // The kernel deletes bond0.100 with bond0: the plan recreated bond0 but went on as if
  // bond0.100 were still there, so the VLAN and its bridge port were missing until the next
  // apply, and its own ops (mtu, up) would fail with ENODEV.
  std::string file =
      "auto bond0\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1 eno2\n"
      "\tbond-mode active-backup\n"
      "\n"
      "auto bond0.100\n"
      "iface bond0.100 inet manual\n"
      "\n"
      "auto vmbr0v100\n"
      "iface vmbr0v100 inet manual\n"
      "\tbridge-ports bond0.100\n";
  std::vector<LinkSpec> desired = compile(file);
  Observed o{.links = {{.name = "eno1", .mtu = 1500}, {.name = "eno2", .mtu = 1500}}};
  fake_apply(o, plan_links(o, desired));
  ASSERT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
  ASSERT_NE(o.find("bond0.100"), nullptr);

  std::string changed = file;
  changed.replace(changed.find("active-backup"), 13, "802.3ad");
  desired = compile(changed);
  std::vector<LinkOp> plan = plan_links(o, desired);
  std::vector<std::string> text = lines(plan);
  for (std::string_view want : {"delete link bond0", "set bond0.100 master vmbr0v100"}) {
    EXPECT_NE(std::find(text.begin(), text.end(), want), text.end()) << want << "\n"
                                                                     << to_string(plan);
  }
  // Not deleted by the plan itself (the kernel does it), and made after its parent.
  EXPECT_EQ(std::find(text.begin(), text.end(), "delete link bond0.100"), text.end());
  auto at = [&](std::string_view prefix) {
    return std::find_if(text.begin(), text.end(),
                        [&](const std::string& l) { return l.starts_with(prefix); }) -
           text.begin();
  };
  EXPECT_LT(at("create bond bond0"), at("create vlan bond0.100"));
  EXPECT_LT(at("create vlan bond0.100"), std::ssize(text)) << to_string(plan);
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

TEST(PlanLinks, AVxlanOverARecreatedUnderlayIsMadeAgainInTheSamePlan) {
  // The kernel deletes a VXLAN with its vxlan-physdev.
  std::string file =
      "auto ul0\n"
      "iface ul0 inet manual\n"
      "\tvlan-raw-device eno1\n"
      "\tvlan-id 10\n"
      "\n"
      "auto vx100\n"
      "iface vx100 inet manual\n"
      "\tvxlan-id 100\n"
      "\tvxlan-physdev ul0\n";
  std::vector<LinkSpec> desired = compile(file);
  Observed o{.links = {{.name = "eno1", .mtu = 1500}}};
  fake_apply(o, plan_links(o, desired));
  ASSERT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  std::string changed = file;
  changed.replace(changed.find("vlan-id 10"), 10, "vlan-id 20");
  desired = compile(changed);
  std::vector<LinkOp> plan = plan_links(o, desired);
  fake_apply(o, plan);
  EXPECT_NE(o.find("vx100"), nullptr) << to_string(plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

TEST(PlanLinks, ALinkUnderAVlanMoatDoesNotOwnIsNeverDeleted) {
  // Deleting bond0 makes the kernel delete the VLANs on it: here Proxmox's bond0.100, the
  // uplink of a guest bridge that is not in the file.
  std::vector<LinkSpec> desired = compile(
      "auto bond0\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1 eno2\n"
      "\tbond-mode 802.3ad\n");
  auto bond = [](std::string name, std::string alias) {
    return ObservedLink{.name = std::move(name),
                        .kind = "bond",
                        .mtu = 1500,
                        .alias = std::move(alias),
                        .bond = BondSpec{.mode = BondMode::ActiveBackup}};
  };
  auto vlan = [](std::string name, std::string parent, std::string alias) {
    return ObservedLink{.name = std::move(name),
                        .kind = "vlan",
                        .mtu = 1500,
                        .alias = std::move(alias),
                        .vlan = VlanSpec{.id = 100, .parent = std::move(parent)}};
  };
  Observed o{.links = {{.name = "eno1", .master = "bond0", .mtu = 1500},
                       {.name = "eno2", .master = "bond0", .mtu = 1500},
                       bond("bond0", "moat"),
                       vlan("bond0.100", "bond0", "")}};
  std::vector<std::string> text = lines(plan_links(o, desired));
  EXPECT_EQ(std::find(text.begin(), text.end(), "delete link bond0"), text.end())
      << ::testing::PrintToString(text);

  // Also through a VLAN of Moat's on which someone else stacked one (QinQ).
  o.links[3] = vlan("bond0.100", "bond0", "moat");
  o.links.push_back(vlan("bond0.100.5", "bond0.100", ""));
  text = lines(plan_links(o, desired));
  EXPECT_EQ(std::find(text.begin(), text.end(), "delete link bond0"), text.end())
      << ::testing::PrintToString(text);

  // With only Moat's VLANs on it, the bond is recreated (and so are they, when desired).
  o.links.pop_back();
  text = lines(plan_links(o, desired));
  EXPECT_NE(std::find(text.begin(), text.end(), "delete link bond0"), text.end())
      << ::testing::PrintToString(text);
}

TEST(PlanLinks, VlanProtocolOrParentChangeRecreatesTheVlan) {
  std::vector<LinkSpec> desired = compile(testing::kVlanFile);
  Observed o{.links = {{.name = "eno1", .mtu = 9000},
                       {.name = "eno2", .mtu = 1500},
                       {.name = "eno3", .mtu = 1500}}};
  fake_apply(o, plan_links(o, desired));
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
  for (ObservedLink& l : o.links) {
    if (l.name == "vlan200") l.vlan->protocol = VlanProtocol::Dot1Q;
  }
  std::vector<LinkOp> plan = plan_links(o, desired);
  ASSERT_GE(plan.size(), 2u);
  EXPECT_EQ(to_string(plan[0]), "delete link vlan200");
  EXPECT_EQ(to_string(plan[1]), "create vlan vlan200 id 200 parent eno1 protocol 802.1ad mtu 1500");
  EXPECT_EQ(plan[0].line, 17);
}

TEST(PlanLinks, SeveralVxlanRemotesBecomeFdbEntriesAndFollowTheFile) {
  std::vector<LinkSpec> desired = compile(testing::kVxlanFile);
  Observed o;
  std::vector<LinkOp> plan = plan_links(o, desired);
  EXPECT_EQ(lines(plan), (std::vector<std::string>{
                             "create bridge vnet1 stp off forward-delay 0 mtu 1450",
                             "create vxlan vxlan_vnet1 id 100000 local 192.0.2.1 remote 192.0.2.2 "
                             "remote 192.0.2.3 dstport 4789 mtu 1450",
                             "set vnet1 up",
                             "set vxlan_vnet1 master vnet1",
                             "set vxlan_vnet1 up",
                             "add fdb 00:00:00:00:00:00 dst 192.0.2.2 to vxlan_vnet1",
                             "add fdb 00:00:00:00:00:00 dst 192.0.2.3 to vxlan_vnet1",
                         }));
  EXPECT_EQ(plan[5].line, 4);
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  // One remote replaced by another: only the FDB changes, the link stays.
  for (LinkSpec& s : desired) {
    if (s.name == "vxlan_vnet1") s.vxlan.remotes = {*parse_ip("192.0.2.2"), *parse_ip("192.0.2.4")};
  }
  EXPECT_EQ(lines(plan_links(o, desired)),
            (std::vector<std::string>{"delete fdb 00:00:00:00:00:00 dst 192.0.2.3 from vxlan_vnet1",
                                      "add fdb 00:00:00:00:00:00 dst 192.0.2.4 to vxlan_vnet1"}));
  // An entry added by hand is drift on a link of Moat's.
  for (ObservedLink& l : o.links) {
    if (l.name == "vxlan_vnet1") l.fdb_remotes.push_back(*parse_ip("198.51.100.7"));
  }
  std::vector<std::string> got = lines(plan_links(o, desired));
  EXPECT_NE(std::find(got.begin(), got.end(),
                      "delete fdb 00:00:00:00:00:00 dst 198.51.100.7 from vxlan_vnet1"),
            got.end());
}

TEST(PlanLinks, GatewaysBecomeDefaultRoutesAndOnlyMoatsRoutesAreRemoved) {
  std::vector<LinkSpec> desired = compile(testing::kDefaultFile);
  const LinkSpec* br = find(desired, "vmbr0");
  ASSERT_NE(br, nullptr);
  EXPECT_EQ(br->gateways, std::vector<IpAddress>{*parse_ip("192.168.1.1")});
  Observed o{.links = {{.name = "eno1", .mtu = 1500}}};
  std::vector<LinkOp> plan = plan_links(o, desired);
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(to_string(plan.back()), "add route default via 192.168.1.1 dev vmbr0");
  EXPECT_EQ(plan.back().line, 18);
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  // Someone else's routes stay; a default route to the same gateway of another protocol
  // already does the job.
  o.routes.push_back({.dst = {.ip = *parse_ip("::"), .prefix = 0},
                      .gateway = parse_ip("fe80::1"),
                      .link = "eno1",
                      .protocol = 3});
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});

  // The gateway leaves the file: Moat's route goes, first of all.
  for (LinkSpec& s : desired) s.gateways.clear();
  plan = plan_links(o, desired);
  EXPECT_EQ(lines(plan),
            std::vector<std::string>{"delete route default via 192.168.1.1 dev vmbr0"});
  fake_apply(o, plan);
  EXPECT_EQ(o.routes.size(), 1u);
}

TEST(PlanLinks, LinksLeftInTheDeleteGroupAreTakenOutUnlessThePlanDeletesThem) {
  auto [o, desired] = applied_node();
  o.links.push_back({.name = "old0", .kind = "bridge", .alias = "moat"});
  std::sort(o.links.begin(), o.links.end(),
            [](const ObservedLink& a, const ObservedLink& b) { return a.name < b.name; });
  for (ObservedLink& l : o.links) {
    if (l.name == "vmbr0" || l.name == "ul0" || l.name == "old0") l.group = kDeleteGroup;
  }
  std::vector<LinkOp> plan = plan_links(o, desired);
  EXPECT_EQ(lines(plan), (std::vector<std::string>{
                             "set ul0 group default (kernel has group 0x6d6f6174)",
                             "set vmbr0 group default (kernel has group 0x6d6f6174)",
                             "delete link old0",
                         }));
  fake_apply(o, plan);
  EXPECT_EQ(lines(plan_links(o, desired)), std::vector<std::string>{});
}

}  // namespace
}  // namespace moat::bridges
