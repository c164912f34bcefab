// The OVS reconciler against a private ovsdb-server and ovs-vswitchd (userspace datapath) in a
// node namespace, proven with traffic between guest namespaces whose veth ends are OVS ports:
// VLAN access ports isolate, a trunk between two bridges carries both tags, an OVS bond keeps a
// ping flowing when a member goes down, an internal port with an address answers; a second
// plan is empty, hand drift is planned and repaired, ports others added are left alone.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bridges/ovs_fixture.h"
#include "moat/bridges/interfaces.h"
#include "moat/bridges/link_driver.h"
#include "moat/bridges/links.h"
#include "moat/bridges/ovs.h"
#include "moat/bridges/ovsdb.h"

namespace moat::bridges {
namespace {

using namespace std::chrono_literals;

class OvsSystemTest : public testing::OvsDaemonTest {
 protected:
  void SetUp() override {
    OvsDaemonTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto node = topo().add_node("node");
    ASSERT_TRUE(node) << node.error().to_string();
    node_ = node->ns;
    start_vswitchd(node_);
    if (HasFatalFailure()) return;
    client_.emplace();
    Status c = client_->connect(db_target());
    ASSERT_TRUE(c) << c.error().to_string();
  }

  std::string guest(const std::string& name, const std::string& port, const std::string& cidr) {
    return OvsDaemonTest::guest(node_, name, port, cidr);
  }

  // parse -> compile -> observe -> plan -> apply (one transaction, waits for vswitchd), then
  // the internal ports' Linux side (addresses, up) through the link reconciler. Returns the
  // OVS plan that ran.
  std::vector<OvsOp> apply(const std::string& text) {
    auto file = parse_interfaces(text, "interfaces");
    EXPECT_TRUE(file) << file.error().to_string();
    if (!file) return {};
    auto desired = compile_ovs({.file = &*file, .datapath = OvsDatapath::Netdev});
    EXPECT_TRUE(desired) << desired.error().to_string();
    if (!desired) return {};
    std::vector<OvsOp> plan = plan_now(*desired);
    auto report = apply_ovs({.client = &*client_, .plan = plan, .file = "interfaces"});
    EXPECT_TRUE(report) << report.error().to_string();
    auto links = observe(node_);
    EXPECT_TRUE(links) << links.error().to_string();
    if (!links) return plan;
    auto specs = compile_links(*file);
    EXPECT_TRUE(specs) << specs.error().to_string();
    if (!specs) return plan;
    auto link_plan = plan_links(*links, *specs);
    auto applied = apply_links({.netns = node_, .plan = link_plan, .file = "interfaces"});
    EXPECT_TRUE(applied) << applied.error().to_string();
    desired_ = *desired;
    return plan;
  }

  std::vector<OvsOp> plan_now(const OvsDesired& desired) {
    auto observed = observe_ovs(*client_);
    EXPECT_TRUE(observed) << observed.error().to_string();
    return observed ? plan_ovs(*observed, desired) : std::vector<OvsOp>{};
  }
  std::string replan() { return to_string(plan_now(desired_)); }

  void TearDown() override {
    client_.reset();  // before the server goes, so that it does not try to reconnect
    OvsDaemonTest::TearDown();
  }

  std::string node_;
  std::optional<OvsdbClient> client_;
  OvsDesired desired_;
};

std::string bridge(const std::string& name, const std::string& ports) {
  return "auto " + name + "\niface " + name + " inet manual\n\tovs_type OVSBridge\n\tovs_ports " +
         ports + "\n\n";
}
std::string port(const std::string& name, const std::string& on, const std::string& options) {
  return "auto " + name + "\niface " + name + " inet manual\n\tovs_type OVSPort\n\tovs_bridge " +
         on + (options.empty() ? "" : "\n\tovs_options " + options) + "\n\n";
}

TEST_F(OvsSystemTest, AccessPortsIsolateByTagAndInternalPortAnswers) {
  std::string g1 = guest("g1", "p1", "10.9.0.1/24");
  std::string g2 = guest("g2", "p2", "10.9.0.2/24");
  std::string g3 = guest("g3", "p3", "10.9.0.3/24");
  ASSERT_FALSE(HasFailure());
  const std::string file = bridge("vmbr0", "p1 p2 p3 int0") + port("p1", "vmbr0", "tag=10") +
                           port("p2", "vmbr0", "tag=10") + port("p3", "vmbr0", "tag=20") +
                           "auto int0\niface int0 inet static\n\taddress 10.9.0.254/24\n"
                           "\tovs_type OVSIntPort\n\tovs_bridge vmbr0\n\tovs_options tag=10\n";
  std::vector<OvsOp> plan = apply(file);
  EXPECT_EQ(to_string(plan),
            "1. initialize the Open_vSwitch table\n"
            "2. create bridge vmbr0 datapath netdev\n"
            "3. create port int0 on vmbr0 type internal tag 10\n"
            "4. create port p1 on vmbr0 tag 10\n"
            "5. create port p2 on vmbr0 tag 10\n"
            "6. create port p3 on vmbr0 tag 20\n");
  EXPECT_EQ(replan(), "(no changes)\n");

  EXPECT_TRUE(talks(g1, "10.9.0.2"));
  EXPECT_TRUE(silent(g1, "10.9.0.3"));
  EXPECT_TRUE(silent(g3, "10.9.0.2"));
  // The internal port is a Linux link in the node with its address, on VLAN 10 only.
  EXPECT_TRUE(talks(g1, "10.9.0.254"));
  EXPECT_TRUE(silent(g3, "10.9.0.254"));

  // Hand drift: p3 moved to VLAN 10 with ovs-vsctl. Plan names it; apply puts it back.
  auto drift = vsctl({"set", "Port", "p3", "tag=10"});
  ASSERT_TRUE(drift && drift->exit_code == 0) << (drift ? drift->err : "");
  EXPECT_TRUE(talks(g3, "10.9.0.1")) << "the drift is real";
  EXPECT_EQ(replan(), "1. update port p3: tag 10 -> 20\n");
  apply(file);
  EXPECT_EQ(replan(), "(no changes)\n");
  EXPECT_TRUE(silent(g3, "10.9.0.1"));

  // A guest port someone else added survives a reconfigure that drops p2.
  std::string g4 = guest("g4", "tap100i0", "10.9.0.4/24");
  auto added = vsctl({"add-port", "vmbr0", "tap100i0", "tag=10"});
  ASSERT_TRUE(added && added->exit_code == 0) << (added ? added->err : "");
  EXPECT_EQ(replan(), "(no changes)\n");
  const std::string without_p2 =
      bridge("vmbr0", "p1 p3 int0") + port("p1", "vmbr0", "tag=10") +
      port("p3", "vmbr0", "tag=20") +
      "auto int0\niface int0 inet static\n\taddress 10.9.0.254/24\n"
      "\tovs_type OVSIntPort\n\tovs_bridge vmbr0\n\tovs_options tag=10\n";
  EXPECT_EQ(to_string(apply(without_p2)), "1. delete port p2 from vmbr0\n");
  EXPECT_TRUE(talks(g4, "10.9.0.1"));
  EXPECT_TRUE(silent(g2, "10.9.0.1"));
}

TEST_F(OvsSystemTest, TrunkBetweenTwoBridgesCarriesBothTagsAndOnlyThose) {
  veth(node_, "trA", "trB");
  std::string a10 = guest("a10", "pa10", "10.8.0.1/24");
  std::string a20 = guest("a20", "pa20", "10.8.0.2/24");
  std::string b10 = guest("b10", "pb10", "10.8.0.3/24");
  std::string b20 = guest("b20", "pb20", "10.8.0.4/24");
  ASSERT_FALSE(HasFailure());
  auto file = [&](const std::string& trunks) {
    return bridge("brA", "trA pa10 pa20") + bridge("brB", "trB pb10 pb20") +
           port("trA", "brA", "vlan_mode=trunk trunks=" + trunks) +
           port("trB", "brB", "vlan_mode=trunk trunks=" + trunks) + port("pa10", "brA", "tag=10") +
           port("pa20", "brA", "tag=20") + port("pb10", "brB", "tag=10") +
           port("pb20", "brB", "tag=20");
  };
  apply(file("10,20"));
  EXPECT_EQ(replan(), "(no changes)\n");
  EXPECT_TRUE(talks(a10, "10.8.0.3"));
  EXPECT_TRUE(talks(a20, "10.8.0.4"));
  EXPECT_TRUE(silent(a10, "10.8.0.4"));
  EXPECT_TRUE(silent(a10, "10.8.0.2"));

  // The trunk narrowed to VLAN 10: 20 no longer crosses.
  EXPECT_EQ(to_string(apply(file("10"))),
            "1. update port trA: trunks 10,20 -> 10\n2. update port trB: trunks 10,20 -> 10\n");
  EXPECT_TRUE(talks(a10, "10.8.0.3"));
  EXPECT_TRUE(silent(a20, "10.8.0.4"));
}

// ovs_options of the two bonds facing each other (Proxmox's active-backup, lacp-balance-slb and
// lacp-balance-tcp); PRIMARY stands for the member on the first veth pair. Without LACP both
// sides must use the same pair: a bond drops broadcasts arriving on a member it does not use
// (and bond-primary counts for active-backup only, so a plain balance-slb bond facing another
// OVS bond does not work).
class OvsBondTest : public OvsSystemTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(OvsBondTest, KeepsTrafficFlowingWhenAMemberGoesDown) {
  veth(node_, "ba0", "bb0");
  veth(node_, "ba1", "bb1");
  std::string ga = guest("ga", "pga", "10.7.0.1/24");
  std::string gb = guest("gb", "pgb", "10.7.0.2/24");
  ASSERT_FALSE(HasFailure());
  auto bond = [](const std::string& name, const std::string& on, const std::string& members,
                 const std::string& primary) {
    std::string options = GetParam();
    if (size_t at = options.find("PRIMARY"); at != std::string::npos)
      options.replace(at, 7, primary);
    return "auto " + name + "\niface " + name + " inet manual\n\tovs_type OVSBond\n\tovs_bridge " +
           on + "\n\tovs_bonds " + members + "\n\tovs_options " + options + "\n\n";
  };
  const std::string file = bridge("brA", "bondA pga") + bridge("brB", "bondB pgb") +
                           bond("bondA", "brA", "ba0 ba1", "ba0") +
                           bond("bondB", "brB", "bb0 bb1", "bb0") + port("pga", "brA", "") +
                           port("pgb", "brB", "");
  std::vector<OvsOp> plan = apply(file);
  std::string mode = GetParam().substr(10, GetParam().find(' ') - 10);
  EXPECT_NE(to_string(plan).find("create port bondA on brA bond ba0,ba1 bond_mode " + mode),
            std::string::npos)
      << to_string(plan);
  EXPECT_EQ(replan(), "(no changes)\n");
  // LACP needs a PDU exchange before the bond carries traffic.
  ASSERT_TRUE(testing::eventually([&] { return topo().ping(ga, "10.7.0.2", 500ms); }, 15s));

  exec_ok(node_, {"ip", "link", "set", "ba0", "down"});  // bb0 loses its carrier too
  EXPECT_TRUE(testing::eventually([&] { return topo().ping(ga, "10.7.0.2", 500ms); }, 10s))
      << "no failover to ba1/bb1";
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(topo().ping(ga, "10.7.0.2", 1000ms));
  auto show =
      run({.argv = {"ovs-appctl", "--target=" + dir_ + "/ovs-vswitchd.ctl", "bond/show", "bondA"}});
  ASSERT_TRUE(show && show->exit_code == 0) << (show ? show->err : show.error().to_string());
  EXPECT_NE(show->out.find("bond_mode: " + mode), std::string::npos) << show->out;
  EXPECT_NE(show->out.find("member ba0: disabled"), std::string::npos) << show->out;
  EXPECT_NE(show->out.find("member ba1: enabled"), std::string::npos) << show->out;
  EXPECT_EQ(replan(), "(no changes)\n") << "a member's link state is not configuration drift";
}

INSTANTIATE_TEST_SUITE_P(
    Modes, OvsBondTest,
    ::testing::Values("bond_mode=active-backup other_config:bond-primary=PRIMARY",
                      "bond_mode=balance-slb lacp=active other_config:lacp-time=fast",
                      "bond_mode=balance-tcp lacp=active other_config:lacp-time=fast"),
    [](const ::testing::TestParamInfo<std::string>& info) {
      std::string name = info.param.substr(10, info.param.find(' ') - 10);
      std::erase(name, '-');
      return name;
    });

TEST_F(OvsSystemTest, PortMovesOffABridgeThatIsDeletedInTheSameTransaction) {
  std::string ga = guest("ga", "pa", "10.5.0.1/24");
  std::string gb = guest("gb", "pb", "10.5.0.2/24");
  ASSERT_FALSE(HasFailure());
  apply(bridge("brA", "pa") + bridge("brB", "pb") + port("pa", "brA", "") + port("pb", "brB", ""));
  EXPECT_TRUE(silent(ga, "10.5.0.2")) << "two separate bridges";
  EXPECT_EQ(
      to_string(apply(bridge("brA", "pa pb") + port("pa", "brA", "") + port("pb", "brA", ""))),
      "1. delete bridge brB\n2. update port pb: bridge brB -> brA\n");
  EXPECT_EQ(replan(), "(no changes)\n");
  EXPECT_TRUE(talks(ga, "10.5.0.2"));
}

TEST_F(OvsSystemTest, AnInterfaceMtuDriftIsRepairedInPlace) {
  const std::string file = bridge("vmbr0", "int0") +
                           "auto int0\niface int0 inet manual\n"
                           "\tovs_type OVSIntPort\n\tovs_bridge vmbr0\n\tovs_mtu 1400\n";
  apply(file);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(replan(), "(no changes)\n");
  auto drift = vsctl({"set", "Interface", "int0", "mtu_request=1500"});
  ASSERT_TRUE(drift && drift->exit_code == 0) << (drift ? drift->err : "");
  // ovsdb-server refused this update while it named the (immutable) Interface name.
  EXPECT_EQ(to_string(apply(file)), "1. update interface int0: mtu_request 1500 -> 1400\n");
  EXPECT_EQ(replan(), "(no changes)\n");
}

TEST_F(OvsSystemTest, ARowMarkedWithAnotherOwnedValueIsAdoptedOnce) {
  const std::string file = bridge("vmbr0", "int0") +
                           "auto int0\niface int0 inet manual\n"
                           "\tovs_type OVSIntPort\n\tovs_bridge vmbr0\n";
  apply(file);
  ASSERT_FALSE(HasFailure());
  auto mark = vsctl({"set", "Bridge", "vmbr0", "external_ids:moat-owned=false"});
  ASSERT_TRUE(mark && mark->exit_code == 0) << (mark ? mark->err : "");
  EXPECT_EQ(to_string(apply(file)), "1. update bridge vmbr0: adopt\n");
  // An OVSDB map insert keeps an existing key's value: adopting must replace it.
  EXPECT_EQ(replan(), "(no changes)\n");
}

TEST_F(OvsSystemTest, AConflictFailsTheWholeTransactionAtTheStanzasLine) {
  apply(bridge("vmbr0", "p1") + port("p1", "vmbr0", "tag=10"));
  // Someone else's bond already has an interface named eth7.
  auto other = vsctl({"add-br", "other", "--", "set", "Bridge", "other", "datapath_type=netdev",
                      "--", "add-bond", "other", "x", "eth7", "eth8"});
  ASSERT_TRUE(other && other->exit_code == 0) << (other ? other->err : "");

  auto file = parse_interfaces(
      bridge("vmbr0", "p1 eth7") + port("p1", "vmbr0", "tag=20") + port("eth7", "vmbr0", ""),
      "interfaces");
  ASSERT_TRUE(file) << file.error().to_string();
  auto desired = compile_ovs({.file = &*file, .datapath = OvsDatapath::Netdev});
  ASSERT_TRUE(desired) << desired.error().to_string();
  std::vector<OvsOp> plan = plan_now(*desired);
  ASSERT_EQ(to_string(plan), "1. create port eth7 on vmbr0\n2. update port p1: tag 10 -> 20\n");
  auto r = apply_ovs({.client = &*client_, .plan = plan, .file = "interfaces"});
  ASSERT_FALSE(r);
  std::printf("apply error: %s\n", r.error().to_string().c_str());
  EXPECT_EQ(r.error().code(), ErrorCode::AlreadyExists);
  ASSERT_TRUE(r.error().where());
  EXPECT_EQ(r.error().where()->to_string(), "interfaces:13");
  EXPECT_NE(r.error().to_string().find("create port eth7 on vmbr0"), std::string::npos);
  // All or nothing: p1 kept its tag.
  EXPECT_EQ(to_string(plan_now(*desired)), to_string(plan));
}

TEST_F(OvsSystemTest, MonitorSnapshotFollowsApplyAndDriftWithoutARoundTrip) {
  auto monitor = OvsMonitor::start(*client_);
  ASSERT_TRUE(monitor) << monitor.error().to_string();
  const std::string file = bridge("vmbr0", "p1 p2") + port("p1", "vmbr0", "tag=10") +
                           port("p2", "vmbr0", "trunks=10,20");
  apply(file);
  // Right after an apply that waited for ovs-vswitchd, the monitor has the commit.
  EXPECT_EQ(to_string(plan_ovs((*monitor)->snapshot(), desired_)), "(no changes)\n");
  auto observed = observe_ovs(*client_);
  ASSERT_TRUE(observed) << observed.error().to_string();
  const OvsObserved& selected = *observed;
  OvsObserved monitored = (*monitor)->snapshot();
  ASSERT_EQ(monitored.ports.size(), selected.ports.size());
  for (size_t i = 0; i < selected.ports.size(); ++i) {
    EXPECT_EQ(monitored.ports[i].name, selected.ports[i].name);
    EXPECT_EQ(monitored.ports[i].uuid, selected.ports[i].uuid);
    EXPECT_EQ(monitored.ports[i].tag, selected.ports[i].tag);
    EXPECT_EQ(monitored.ports[i].trunks, selected.ports[i].trunks);
    EXPECT_EQ(monitored.ports[i].bridge, selected.ports[i].bridge);
  }
  EXPECT_EQ(monitored.root_uuid, selected.root_uuid);

  auto drift = vsctl({"set", "Port", "p1", "tag=20"});
  ASSERT_TRUE(drift && drift->exit_code == 0);
  EXPECT_TRUE(testing::eventually(
      [&] {
        return to_string(plan_ovs((*monitor)->snapshot(), desired_)) ==
               "1. update port p1: tag 20 -> 10\n";
      },
      5s));
  auto removed = vsctl({"del-port", "vmbr0", "p2"});
  ASSERT_TRUE(removed && removed->exit_code == 0);
  EXPECT_TRUE(testing::eventually(
      [&] { return plan_ovs((*monitor)->snapshot(), desired_).size() == 2; }, 5s));
  apply(file);
  EXPECT_EQ(to_string(plan_ovs((*monitor)->snapshot(), desired_)), "(no changes)\n");
}

}  // namespace
}  // namespace moat::bridges
