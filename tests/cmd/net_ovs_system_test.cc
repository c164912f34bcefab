// `moat net plan|apply|show --ovsdb` against a private ovsdb-server and ovs-vswitchd in a node
// namespace: the plan lists the link and OVS operations, apply makes an internal port with an
// address that a guest on the same VLAN pings, the second plan is empty, show lists the OVS
// rows, hand drift shows in the plan, and a bad ovs_options word is an error at file:line.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "bridges/ovs_fixture.h"
#include "moat/base/file.h"
#include "moat/base/subprocess.h"

namespace moat {
namespace {

const std::string kMoat = std::string(MOAT_BUILD_DIR) + "/cmd/moat";

class NetOvsCliTest : public bridges::testing::OvsDaemonTest {};

TEST_F(NetOvsCliTest, PlanApplyShowWithOvsdb) {
  auto node = topo().add_node("node");
  ASSERT_TRUE(node) << node.error().to_string();
  start_vswitchd(node->ns);
  std::string g1 = guest(node->ns, "g1", "p1", "10.6.0.1/24");
  ASSERT_FALSE(HasFailure());
  const std::string file = dir_ + "/interfaces";
  auto write = [&](const std::string& p1_options) {
    ASSERT_TRUE(write_file_atomic(file,
                                  "auto vmbr0\niface vmbr0 inet manual\n"
                                  "\tovs_type OVSBridge\n\tovs_ports p1 int0\n\n"
                                  "auto p1\niface p1 inet manual\n\tovs_type OVSPort\n"
                                  "\tovs_bridge vmbr0\n\tovs_options " +
                                      p1_options +
                                      "\n\n"
                                      "auto int0\niface int0 inet static\n"
                                      "\taddress 10.6.0.254/24\n\tovs_type OVSIntPort\n"
                                      "\tovs_bridge vmbr0\n\tovs_options tag=10\n"
                                      "\tovs_mtu 1400\n"));
  };
  write("tag=10");
  auto moat = [&](const std::string& verb) {
    auto r = run({.argv = {kMoat, "net", verb, "--interfaces", file, "--netns", node->ns, "--ovsdb",
                           db_target()}});
    EXPECT_TRUE(r);
    return r ? *r : RunResult{};
  };

  auto plan = moat("plan");
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  std::printf("moat net plan:\n%s", plan.out.c_str());
  // The link plan already shows what the internal port gets once OVS made it.
  EXPECT_NE(plan.out.find("add address 10.6.0.254/24 to int0"), std::string::npos) << plan.out;
  // OVS makes int0 with the mtu it is asked for (mtu_request): nothing for the link plan.
  EXPECT_EQ(plan.out.find("int0 mtu"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("ovsdb " + db_target() +
                          ":\n1. initialize the Open_vSwitch table\n"
                          "2. create bridge vmbr0 datapath "),
            std::string::npos)
      << plan.out;
  EXPECT_NE(plan.out.find("create port int0 on vmbr0 type internal tag 10"), std::string::npos)
      << plan.out;

  auto apply = moat("apply");
  EXPECT_EQ(apply.exit_code, 0) << apply.err;
  std::printf("moat net apply:\n%s%s", apply.out.c_str(), apply.err.c_str());
  EXPECT_NE(apply.out.find("realized by ovs-vswitchd"), std::string::npos) << apply.out;
  EXPECT_EQ(moat("plan").out, "(no changes)\novsdb " + db_target() + ":\n(no changes)\n");
  EXPECT_NE(moat("apply").out.find("nothing to do"), std::string::npos);
  EXPECT_TRUE(talks(g1, "10.6.0.254"));

  auto show = run({.argv = {kMoat, "net", "show", "--netns", node->ns, "--ovsdb", db_target()}});
  ASSERT_TRUE(show);
  std::printf("moat net show:\n%s", show->out.c_str());
  EXPECT_NE(show->out.find("ovs bridge vmbr0 datapath"), std::string::npos) << show->out;
  EXPECT_NE(show->out.find("port p1"), std::string::npos) << show->out;
  EXPECT_NE(show->out.find("tag 10 interfaces p1 (moat)"), std::string::npos) << show->out;
  EXPECT_NE(show->out.find("10.6.0.254/24"), std::string::npos) << show->out;

  // Hand drift shows in the plan; apply repairs it.
  auto drift = vsctl({"set", "Port", "p1", "tag=20"});
  ASSERT_TRUE(drift && drift->exit_code == 0);
  EXPECT_NE(moat("plan").out.find("1. update port p1: tag 20 -> 10"), std::string::npos);
  EXPECT_EQ(moat("apply").exit_code, 0);
  EXPECT_TRUE(talks(g1, "10.6.0.254"));

  // A bad ovs_options word: exit 2 at file:line:column, nothing changes.
  write("tag=10 colour=blue");
  auto bad = moat("apply");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find(file + ":10:21:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("colour=blue"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace moat
