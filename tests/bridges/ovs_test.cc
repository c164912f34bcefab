// compile_ovs() and plan_ovs() against fake OVSDB snapshots: access ports, trunks, bonds,
// dot1q-tunnel, drift, ownership, idempotence and file:line errors. Pure; no daemons.
#include "moat/bridges/ovs.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "moat/bridges/links.h"

#include <string>
#include <vector>

namespace moat::bridges {
namespace {

// eth1 is on line 7, its ovs_options on line 10.
constexpr std::string_view kFile =
    "auto vmbr0\n"                                                                    // 1
    "iface vmbr0 inet manual\n"                                                       // 2
    "\tovs_type OVSBridge\n"                                                          // 3
    "\tovs_ports eth1 eth2 int0 bond0\n"                                              // 4
    "\n"                                                                              // 5
    "auto eth1\n"                                                                     // 6
    "iface eth1 inet manual\n"                                                        // 7
    "\tovs_type OVSPort\n"                                                            // 8
    "\tovs_bridge vmbr0\n\tovs_options tag=10\n"                                      // 9-10
    "auto eth2\n"                                                                     // 11
    "iface eth2 inet manual\n"                                                        // 12
    "\tovs_type OVSPort\n"                                                            // 13
    "\tovs_bridge vmbr0\n\tovs_options trunks=20,10 vlan_mode=trunk\n"                // 14-15
    "auto int0\n"                                                                     // 16
    "iface int0 inet static\n"                                                        // 17
    "\taddress 10.0.0.1/24\n\tovs_type OVSIntPort\n"                                  // 18-19
    "\tovs_bridge vmbr0\n\tovs_options tag=10\n\tovs_mtu 1400\n"                      // 20-22
    "auto bond0\n"                                                                    // 23
    "iface bond0 inet manual\n"                                                       // 24
    "\tovs_type OVSBond\n\tovs_bridge vmbr0\n\tovs_bonds eth4 eth3\n"                 // 25-27
    "\tovs_options bond_mode=balance-tcp lacp=active other_config:lacp-time=fast\n";  // 28

InterfacesFile parse(std::string_view text) {
  Result<InterfacesFile> f = parse_interfaces(text, "interfaces");
  EXPECT_TRUE(f.has_value()) << f.error().to_string();
  return f ? *f : InterfacesFile("interfaces");
}

OvsDesired compile(std::string_view text, OvsDatapath datapath = OvsDatapath::Netdev) {
  InterfacesFile file = parse(text);
  Result<OvsDesired> d = compile_ovs({.file = &file, .datapath = datapath});
  EXPECT_TRUE(d.has_value()) << d.error().to_string();
  return d ? *d : OvsDesired{};
}

Error compile_error(std::string_view text) {
  InterfacesFile file = parse(text);
  Result<OvsDesired> d = compile_ovs({.file = &file});
  EXPECT_FALSE(d.has_value());
  return d ? Error(ErrorCode::Internal, "no error") : d.error();
}

const OvsPortSpec* port(const OvsDesired& d, std::string_view name) {
  for (const auto& p : d.ports) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// What OVSDB holds after Moat applied `d`: every row owned, uuids made from the names.
OvsObserved observed_from(const OvsDesired& d) {
  OvsObserved o{.root_uuid = "root"};
  for (const auto& b : d.bridges) {
    o.bridges.push_back({.uuid = "b-" + b.name,
                         .name = b.name,
                         .datapath_type = to_string(b.datapath),
                         .owned = true});
  }
  for (const auto& p : d.ports) {
    ObservedOvsPort op{.uuid = "p-" + p.name,
                       .name = p.name,
                       .bridge = p.bridge,
                       .tag = p.tag,
                       .trunks = p.trunks,
                       .vlan_mode = p.vlan_mode,
                       .bond_mode = p.bond_mode,
                       .lacp = p.lacp,
                       .bond_updelay = p.bond_updelay,
                       .bond_downdelay = p.bond_downdelay,
                       .other_config = p.other_config,
                       .owned = true};
    for (const auto& i : p.interfaces) {
      op.interfaces.push_back("i-" + i.name);
      o.interfaces.push_back({.uuid = "i-" + i.name,
                              .name = i.name,
                              .type = i.type,
                              .mtu_request = i.mtu_request,
                              .owned = true});
    }
    for (auto& b : o.bridges) {
      if (b.name == p.bridge) b.ports.push_back(op.uuid);
    }
    o.ports.push_back(std::move(op));
  }
  return o;
}

ObservedOvsPort* observed_port(OvsObserved& o, std::string_view name) {
  for (auto& p : o.ports) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// Adds a port nobody told Moat about (ovs-vsctl add-port BRIDGE NAME).
void add_foreign_port(OvsObserved& o, const std::string& bridge, const std::string& name) {
  o.ports.push_back(
      {.uuid = "p-" + name, .name = name, .bridge = bridge, .interfaces = {"i-" + name}});
  o.interfaces.push_back({.uuid = "i-" + name, .name = name});
  for (auto& b : o.bridges) {
    if (b.name == bridge) b.ports.push_back("p-" + name);
  }
}

std::vector<std::string> lines(const std::vector<OvsOp>& plan) {
  std::vector<std::string> out;
  for (const OvsOp& op : plan) out.push_back(to_string(op));
  return out;
}

TEST(CompileOvs, MapsAccessTrunkInternalAndBondPortsToRows) {
  OvsDesired d = compile(kFile);
  ASSERT_EQ(d.bridges.size(), 1u);
  EXPECT_EQ(d.bridges[0].name, "vmbr0");
  EXPECT_EQ(d.bridges[0].datapath, OvsDatapath::Netdev);
  EXPECT_EQ(d.bridges[0].line, 2);
  ASSERT_EQ(d.ports.size(), 5u);  // the bridge's own port too

  const OvsPortSpec* own = port(d, "vmbr0");
  ASSERT_NE(own, nullptr);
  EXPECT_EQ(own->interfaces,
            (std::vector<OvsInterfaceSpec>{{.name = "vmbr0", .type = "internal"}}));

  const OvsPortSpec* access = port(d, "eth1");
  ASSERT_NE(access, nullptr);
  EXPECT_EQ(access->bridge, "vmbr0");
  EXPECT_EQ(access->tag, 10u);
  EXPECT_EQ(access->interfaces[0].type, "");
  EXPECT_EQ(access->line, 7);

  const OvsPortSpec* trunk = port(d, "eth2");
  ASSERT_NE(trunk, nullptr);
  EXPECT_EQ(trunk->trunks, (std::vector<uint32_t>{10, 20}));
  EXPECT_EQ(trunk->vlan_mode, "trunk");
  EXPECT_FALSE(trunk->tag);

  const OvsPortSpec* internal = port(d, "int0");
  ASSERT_NE(internal, nullptr);
  EXPECT_EQ(
      internal->interfaces,
      (std::vector<OvsInterfaceSpec>{{.name = "int0", .type = "internal", .mtu_request = 1400}}));
  EXPECT_EQ(internal->tag, 10u);

  const OvsPortSpec* bond = port(d, "bond0");
  ASSERT_NE(bond, nullptr);
  ASSERT_EQ(bond->interfaces.size(), 2u);
  EXPECT_EQ(bond->interfaces[0].name, "eth3");  // sorted
  EXPECT_EQ(bond->interfaces[1].name, "eth4");
  EXPECT_EQ(bond->bond_mode, "balance-tcp");
  EXPECT_EQ(bond->lacp, "active");
  EXPECT_EQ(bond->other_config.at("lacp-time"), "fast");
}

TEST(CompileOvs, DatapathIsTheCallersChoice) {
  EXPECT_EQ(compile(kFile, OvsDatapath::System).bridges[0].datapath, OvsDatapath::System);
  EXPECT_EQ(compile(kFile, OvsDatapath::Netdev).bridges[0].datapath, OvsDatapath::Netdev);
}

TEST(CompileOvs, BondModesAndDot1qTunnel) {
  for (std::string mode : {"active-backup", "balance-slb", "balance-tcp"}) {
    std::string text =
        "iface br0 inet manual\n\tovs_type OVSBridge\n\tovs_ports b0\n"
        "iface b0 inet manual\n\tovs_type OVSBond\n\tovs_bridge br0\n\tovs_bonds e1 e2\n"
        "\tovs_options bond_mode=" +
        mode + " bond_updelay=200\n";
    OvsDesired d = compile(text);
    ASSERT_NE(port(d, "b0"), nullptr);
    EXPECT_EQ(port(d, "b0")->bond_mode, mode);
    EXPECT_EQ(port(d, "b0")->bond_updelay, 200u);
  }
  OvsDesired d = compile(
      "iface br0 inet manual\n\tovs_type OVSBridge\n\tovs_ports p0\n"
      "iface p0 inet manual\n\tovs_type OVSPort\n\tovs_bridge br0\n"
      "\tovs_options vlan_mode=dot1q-tunnel tag=100 other_config:qinq-ethtype=802.1q\n");
  const OvsPortSpec* p = port(d, "p0");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->vlan_mode, "dot1q-tunnel");
  EXPECT_EQ(p->tag, 100u);
  EXPECT_EQ(p->other_config.at("qinq-ethtype"), "802.1q");
  // The plan prints it the way ovs-vsctl would set it.
  std::vector<OvsOp> plan = plan_ovs(OvsObserved{.root_uuid = "r"}, d);
  EXPECT_EQ(lines(plan),
            (std::vector<std::string>{"create bridge br0 datapath netdev",
                                      "create port p0 on br0 tag 100 vlan_mode dot1q-tunnel "
                                      "other_config:qinq-ethtype=802.1q"}));
}

struct BadCase {
  std::string text;
  std::string where;    // "interfaces:LINE:COL"
  std::string message;  // a part of the message
};

TEST(CompileOvs, RejectsBadFilesAtTheirLine) {
  const std::string bridge = "iface br0 inet manual\n\tovs_type OVSBridge\n\tovs_ports p0\n";
  const std::string port = "iface p0 inet manual\n\tovs_type OVSPort\n\tovs_bridge br0\n";
  std::vector<BadCase> cases = {
      {bridge + port + "\tovs_options tag=10 speed=fast\n", "interfaces:7:21", "speed=fast"},
      {bridge + port + "\tovs_options tag=5000\n", "interfaces:7:14", "not a VLAN id"},
      {bridge + port + "\tovs_options trunks=10,x\n", "interfaces:7:14", "list of VLAN ids"},
      {bridge + port + "\tovs_options vlan_mode=qinq\n", "interfaces:7:14", "not a VLAN mode"},
      {bridge + port + "\tovs_options bond_mode=balance-slb\n", "interfaces:7:14", "OVSBond only"},
      {bridge + port + "\tovs_options vlan_mode=dot1q-tunnel\n", "interfaces:7:14", "needs tag="},
      {bridge + port + "\tovs_extra set port p0 tag=3\n", "interfaces:7:12", "ovs_extra"},
      {bridge + "iface p0 inet manual\n\tovs_type OVSPort\n", "interfaces:4:7", "needs ovs_bridge"},
      {bridge + "iface p0 inet manual\n\tovs_type OVSPort\n\tovs_bridge br9\n", "interfaces:6:13",
       "'br9' of 'p0' is not an OVSBridge"},
      {bridge + "iface p0 inet manual\n\tovs_type OVSBond\n\tovs_bridge br0\n\tovs_bonds e1\n",
       "interfaces:7:12", "at least two"},
      {bridge + "iface p0 inet manual\n\tovs_type OVSBond\n\tovs_bridge br0\n"
                "\tovs_bonds e1 e2\n\tovs_options bond_mode=round-robin\n",
       "interfaces:8:14", "not an OVS bond mode"},
      {"iface br0 inet manual\n\tovs_type OVSBridge\n\tovs_ports p0 eth9\n" + port,
       "interfaces:3:15", "'eth9' is in ovs_ports of 'br0'"},
      {bridge + port +
           "iface b1 inet manual\n\tovs_type OVSBond\n\tovs_bridge br0\n"
           "\tovs_bonds p0 e2\n",
       "interfaces:10:12", "'p0' is already used by 'p0'"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    Error e = compile_error(c.text);
    EXPECT_EQ(e.code(), ErrorCode::InvalidConfig);
    ASSERT_TRUE(e.where().has_value()) << e.to_string();
    EXPECT_EQ(e.where()->to_string(), c.where) << e.to_string();
    EXPECT_NE(e.message().find(c.message), std::string::npos) << e.to_string();
  }
}

TEST(CompileOvs, InternalPortsAndBridgesAreLinuxLinksForTheirAddresses) {
  InterfacesFile file = parse(kFile);
  Result<std::vector<LinkSpec>> compiled = compile_links(file);
  ASSERT_TRUE(compiled) << compiled.error().to_string();
  std::vector<LinkSpec>& links = *compiled;
  ASSERT_EQ(links.size(), 2u);  // OVSPorts and OVSBonds are OVS's alone
  EXPECT_EQ(links[0].name, "int0");
  EXPECT_EQ(links[0].kind, LinkKind::Physical);
  EXPECT_EQ(links[0].mtu, 1400u);
  EXPECT_TRUE(links[0].up);
  EXPECT_EQ(links[0].master, "");
  ASSERT_EQ(links[0].addresses.size(), 1u);
  EXPECT_EQ(links[0].addresses[0].to_string(), "10.0.0.1/24");
  EXPECT_EQ(links[1].name, "vmbr0");
  EXPECT_TRUE(links[1].addresses.empty());

  // Until OVS made them there is nothing to do; then their address and up.
  EXPECT_TRUE(plan_links(Observed{}, links).empty());
  Observed made{.links = {{.name = "int0", .mtu = 1400}, {.name = "vmbr0", .mtu = 1500}}};
  std::string plan = to_string(plan_links(made, links));
  EXPECT_NE(plan.find("add address 10.0.0.1/24 to int0"), std::string::npos) << plan;
  EXPECT_NE(plan.find("set int0 up"), std::string::npos) << plan;

  // On the kernel datapath OVS enslaves them to ovs-system; the link plan leaves that be.
  Observed kernel{.links = {{.name = "int0", .master = "ovs-system", .mtu = 1400, .up = true},
                            {.name = "vmbr0", .master = "ovs-system", .mtu = 1500, .up = true}}};
  kernel.links[0].addresses = links[0].addresses;
  EXPECT_TRUE(plan_links(kernel, links).empty()) << to_string(plan_links(kernel, links));
}

TEST(PlanOvs, EmptyDatabaseGetsRootBridgeThenPortsInOrder) {
  OvsDesired d = compile(kFile);
  std::vector<OvsOp> plan = plan_ovs(OvsObserved{}, d);
  EXPECT_EQ(lines(plan),
            (std::vector<std::string>{
                "initialize the Open_vSwitch table",
                "create bridge vmbr0 datapath netdev",
                "create port bond0 on vmbr0 bond eth3,eth4 bond_mode balance-tcp lacp active "
                "other_config:lacp-time=fast",
                "create port eth1 on vmbr0 tag 10",
                "create port eth2 on vmbr0 trunks 10,20 vlan_mode trunk",
                "create port int0 on vmbr0 type internal tag 10 mtu 1400",
            }));
  EXPECT_EQ(plan[3].line, 7);
}

TEST(PlanOvs, PlanAfterApplyIsEmpty) {
  OvsDesired d = compile(kFile);
  EXPECT_TRUE(plan_ovs(observed_from(d), d).empty());
  EXPECT_EQ(to_string(plan_ovs(observed_from(d), d)), "(no changes)\n");
}

TEST(PlanOvs, HandDriftIsRepaired) {
  OvsDesired d = compile(kFile);
  OvsObserved o = observed_from(d);
  observed_port(o, "eth1")->tag = 20;
  observed_port(o, "eth2")->trunks = {10};
  observed_port(o, "bond0")->bond_mode = "active-backup";
  for (auto& i : o.interfaces) {
    if (i.name == "int0") i.mtu_request = 1500;
  }
  EXPECT_EQ(lines(plan_ovs(o, d)), (std::vector<std::string>{
                                       "update port bond0: bond_mode active-backup -> balance-tcp",
                                       "update port eth1: tag 20 -> 10",
                                       "update port eth2: trunks 10 -> 10,20",
                                       "update interface int0: mtu_request 1500 -> 1400",
                                   }));
}

TEST(PlanOvs, InterfaceUpdateLeavesTheImmutableNameOut) {
  // vswitch.ovsschema makes Interface "name" immutable: ovsdb-server refuses an update that
  // names it, even with the row's own value, so an mtu repair failed the whole transaction.
  OvsDesired d = compile(kFile);
  OvsObserved o = observed_from(d);
  for (auto& i : o.interfaces) {
    if (i.name == "int0") i.mtu_request = 1500;
  }
  std::vector<OvsOp> plan = plan_ovs(o, d);
  ASSERT_EQ(plan.size(), 1u);
  boost::json::array tx = ovs_transaction(plan);
  int updates = 0;
  for (const boost::json::value& v : tx) {
    const boost::json::object& op = v.as_object();
    if (op.at("op") != "update") continue;
    ++updates;
    EXPECT_EQ(op.at("table"), "Interface");
    const boost::json::object& row = op.at("row").as_object();
    EXPECT_FALSE(row.contains("name")) << boost::json::serialize(op);
    EXPECT_EQ(row.at("mtu_request"), 1400) << boost::json::serialize(op);
  }
  EXPECT_EQ(updates, 1) << boost::json::serialize(tx);
}

TEST(PlanOvs, NeverTouchesPortsMoatDoesNotOwn) {
  OvsDesired d = compile(kFile);
  OvsObserved o = observed_from(d);
  add_foreign_port(o, "vmbr0", "tap100i0");
  add_foreign_port(o, "vmbr0", "veth101i0");
  add_foreign_port(o, "vmbr0", "mirror0");
  EXPECT_TRUE(plan_ovs(o, d).empty());

  // Dropping every port from the file deletes only Moat's.
  OvsDesired fewer = d;
  std::erase_if(fewer.ports, [](const OvsPortSpec& p) { return p.name != "vmbr0"; });
  EXPECT_EQ(
      lines(plan_ovs(o, fewer)),
      (std::vector<std::string>{"delete port bond0 from vmbr0", "delete port eth1 from vmbr0",
                                "delete port eth2 from vmbr0", "delete port int0 from vmbr0"}));

  // A bridge gone from the file stays while it holds a guest port; its own ports still go.
  std::vector<OvsOp> gone = plan_ovs(o, OvsDesired{});
  for (const OvsOp& op : gone) EXPECT_NE(op.type, OvsOp::Type::DeleteBridge) << to_string(op);
  EXPECT_EQ(gone.size(), 4u);
}

TEST(PlanOvs, DeletesAnOwnedBridgeWithItsPortsInOneOp) {
  OvsDesired d = compile(kFile);
  std::vector<OvsOp> plan = plan_ovs(observed_from(d), OvsDesired{});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(to_string(plan[0]), "delete bridge vmbr0");
  EXPECT_EQ(plan[0].uuid, "b-vmbr0");
}

TEST(PlanOvs, AdoptsRowsTheFileDeclares) {
  OvsDesired d = compile(kFile);
  OvsObserved o = observed_from(d);
  o.bridges[0].owned = false;
  observed_port(o, "eth1")->owned = false;
  std::vector<std::string> plan = lines(plan_ovs(o, d));
  EXPECT_EQ(plan,
            (std::vector<std::string>{"update bridge vmbr0: adopt", "update port eth1: adopt"}));
}

TEST(PlanOvs, BondMemberChangeKeepsTheMemberThatStays) {
  OvsDesired d = compile(kFile);
  OvsObserved o = observed_from(d);
  OvsDesired changed = d;
  for (auto& p : changed.ports) {
    if (p.name == "bond0") p.interfaces[1].name = "eth5";
  }
  std::vector<OvsOp> plan = plan_ovs(o, changed);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(to_string(plan[0]), "update port bond0: interfaces eth3,eth4 -> eth3,eth5");
  EXPECT_EQ(plan[0].kept_interfaces, (std::map<std::string, std::string>{{"eth3", "i-eth3"}}));

  // The transaction keeps eth3's row and inserts eth5.
  std::string tx = boost::json::serialize(ovs_transaction(plan));
  EXPECT_NE(tx.find(R"(["uuid","i-eth3"])"), std::string::npos) << tx;
  EXPECT_NE(tx.find(R"("name":"eth5")"), std::string::npos) << tx;
  EXPECT_EQ(tx.find(R"("name":"eth4")"), std::string::npos) << tx;
}

TEST(PlanOvs, PortMovesBetweenBridges) {
  std::string two = std::string(kFile) + "iface vmbr1 inet manual\n\tovs_type OVSBridge\n";
  OvsDesired d = compile(two);
  OvsObserved o = observed_from(d);
  OvsDesired moved = d;
  for (auto& p : moved.ports) {
    if (p.name == "eth1") p.bridge = "vmbr1";
  }
  std::vector<OvsOp> plan = plan_ovs(o, moved);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(to_string(plan[0]), "update port eth1: bridge vmbr0 -> vmbr1");
  EXPECT_EQ(plan[0].bridge_uuid, "b-vmbr0");
  std::string tx = boost::json::serialize(ovs_transaction(plan));
  EXPECT_NE(tx.find(R"("mutations":[["ports","delete",["uuid","p-eth1"]]])"), std::string::npos)
      << tx;
  EXPECT_NE(tx.find(R"("mutations":[["ports","insert",["uuid","p-eth1"]]])"), std::string::npos)
      << tx;
}

TEST(PlanOvs, BridgeGoneFromTheFileIsDeletedWhileItsPortMovesInTheSameTransaction) {
  std::string two = std::string(kFile) + "iface vmbr1 inet manual\n\tovs_type OVSBridge\n";
  OvsObserved o = observed_from(compile(two));
  // eth1 sits on vmbr1, which the file no longer has.
  for (auto& b : o.bridges) {
    if (b.name == "vmbr0") std::erase(b.ports, "p-eth1");
    if (b.name == "vmbr1") b.ports.push_back("p-eth1");
  }
  observed_port(o, "eth1")->bridge = "vmbr1";
  std::vector<OvsOp> plan = plan_ovs(o, compile(kFile));
  EXPECT_EQ(lines(plan), (std::vector<std::string>{"delete bridge vmbr1",
                                                   "update port eth1: bridge vmbr1 -> vmbr0"}));
}

TEST(PlanOvs, TransactionUsesNamedUuidsAndMutatesTheRootsBridges) {
  OvsDesired d = compile(kFile);
  boost::json::array tx = ovs_transaction(plan_ovs(OvsObserved{}, d));
  std::string text = boost::json::serialize(tx);
  EXPECT_EQ(tx[0].at("op"), "insert");
  EXPECT_EQ(tx[0].at("table"), "Open_vSwitch");
  EXPECT_NE(text.find(R"("mutations":[["bridges","insert",["named-uuid","bridge)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"("external_ids":["map",[["moat-owned","true"]]])"), std::string::npos);
  EXPECT_NE(text.find(R"("datapath_type":"netdev")"), std::string::npos);
  // Every port joins vmbr0 by a named-uuid.
  size_t joins = 0;
  for (size_t at = 0;
       (at = text.find(R"(["ports","insert",["named-uuid")", at)) != std::string::npos; ++at)
    ++joins;
  EXPECT_EQ(joins, 4u);
}

}  // namespace
}  // namespace moat::bridges
