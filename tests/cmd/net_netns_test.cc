// `moat net` against a real kernel: plan, apply, plan again (empty), show, and a
// validation error, in a sandbox node namespace.
#include <gtest/gtest.h>

#include "harness/netns.h"
#include "moat/base/file.h"
#include "moat/base/subprocess.h"

namespace moat {
namespace {

const std::string kMoat = std::string(MOAT_BUILD_DIR) + "/cmd/moat";

class NetCliTest : public testing::NetnsTest {};

TEST_F(NetCliTest, PlanApplyIsIdempotentAndShowListsTheLinks) {
  auto node = topo().add_node("node1");
  ASSERT_TRUE(node) << node.error().to_string();
  auto file = std::filesystem::temp_directory_path() / (topo().prefix() + ".interfaces");
  ASSERT_TRUE(write_file_atomic(file,
                                "auto vp0\niface vp0 inet manual\n\tlink-type veth\n"
                                "\tveth-peer-name vp0p\n\n"
                                "auto vmbr0\niface vmbr0 inet static\n\taddress 192.0.2.1/24\n"
                                "\tbridge-ports vp0\n\tbridge-stp off\n\tbridge-fd 0\n"));
  auto moat = [&](const std::string& verb) {
    auto r =
        run({.argv = {kMoat, "net", verb, "--interfaces", file.string(), "--netns", node->ns}});
    EXPECT_TRUE(r);
    return r ? *r : RunResult{};
  };
  auto plan = moat("plan");
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_NE(plan.out.find("create bridge vmbr0"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("set vp0 master vmbr0"), std::string::npos) << plan.out;
  auto apply = moat("apply");
  EXPECT_EQ(apply.exit_code, 0) << apply.err;
  EXPECT_NE(apply.out.find("applied"), std::string::npos) << apply.out;
  EXPECT_EQ(moat("plan").out, "(no changes)\n");
  EXPECT_NE(moat("apply").out.find("nothing to do"), std::string::npos);

  auto show = run({.argv = {kMoat, "net", "show", "--netns", node->ns}});
  ASSERT_TRUE(show);
  EXPECT_NE(show->out.find("192.0.2.1/24"), std::string::npos) << show->out;
  EXPECT_NE(show->out.find("master vmbr0"), std::string::npos) << show->out;
  // The kernel agrees.
  auto ip = topo().exec(node->ns, {"ip", "-o", "link", "show", "vp0"});
  ASSERT_TRUE(ip);
  EXPECT_NE(ip->out.find("master vmbr0"), std::string::npos) << ip->out;

  // A port claimed by two bridges: exit 2 naming file, line and both bridges; nothing changes.
  ASSERT_TRUE(write_file_atomic(file,
                                "auto vmbr0\niface vmbr0 inet manual\n\tbridge-ports vp0\n\n"
                                "auto vmbr1\niface vmbr1 inet manual\n\tbridge-ports vp0\n"));
  auto bad = moat("apply");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find(file.string() + ":7:"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("vmbr0"), std::string::npos) << bad.err;
  auto after = topo().exec(node->ns, {"ip", "-o", "link", "show", "vmbr1"});
  ASSERT_TRUE(after);
  EXPECT_NE(after->exit_code, 0) << "vmbr1 must not have been created";
  std::filesystem::remove(file);
}

}  // namespace
}  // namespace moat
