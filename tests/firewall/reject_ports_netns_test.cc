// sync_reject_ports() against a real kernel: the veth pairs it makes, checked through the
// kernel's own listing (`ip -d -j link show`) and the IPv6 sysctls; a repeated call keeps them
// (same ifindexes), a bridge that appears later gets its port attached, a port moved to another
// bridge or made to flood again is put back, the port's static FDB entry for names::kRejectMac
// is kept there, and a bridge dropped from the set loses its pair.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <string>
#include <vector>

#include "harness/netns.h"
#include "moat/base/strings.h"
#include "moat/base/subprocess.h"
#include "moat/firewall/reject_ports.h"

namespace moat::firewall {
namespace {

bool is_up(const boost::json::object& link) {
  for (const auto& f : link.at("flags").as_array())
    if (f.as_string() == "UP") return true;
  return false;
}

std::string master_of(const boost::json::object& link) {
  return link.contains("master") ? std::string(link.at("master").as_string()) : std::string();
}

int64_t ifindex(const std::map<std::string, boost::json::object>& links, const std::string& name) {
  auto it = links.find(name);
  return it == links.end() ? -1 : it->second.at("ifindex").as_int64();
}

class RejectPortsTest : public testing::NetnsTest {
 protected:
  void SetUp() override {
    testing::NetnsTest::SetUp();
    if (IsSkipped()) return;
    auto node = topo().add_node("node1");
    ASSERT_TRUE(node) << node.error().to_string();
    ns_ = node->ns;
    auto bridge = topo().add_bridge({.node = *node, .name = "vmbr0"});
    ASSERT_TRUE(bridge) << bridge.error().to_string();
  }

  // `ip` inside the node; a failure is a test failure.
  std::string ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"ip", "-n", ns_};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run({.argv = argv});
    EXPECT_TRUE(r && r->exit_code == 0)
        << join(argv, " ") << ": " << (r ? r->err : r.error().to_string());
    return r ? r->out : std::string();
  }

  // The node's links by name, as `ip -d -j link show` describes them.
  std::map<std::string, boost::json::object> links() {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(ip({"-d", "-j", "link", "show"}), ec);
    std::map<std::string, boost::json::object> out;
    EXPECT_FALSE(ec) << ec.message();
    if (ec || !v.is_array()) return out;
    for (const auto& l : v.as_array()) {
      const auto& o = l.as_object();
      out[std::string(o.at("ifname").as_string())] = o;
    }
    return out;
  }

  // Whether `port` has the static FDB entry on `bridge` that OUT REJECTs are sent by.
  bool has_reject_fdb(const std::string& port, const std::string& bridge) {
    auto r = run({.argv = {"bridge", "-n", ns_, "-j", "fdb", "show", "dev", port}});
    EXPECT_TRUE(r && r->exit_code == 0) << (r ? r->err : r.error().to_string());
    if (!r || r->exit_code != 0) return false;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(r->out, ec);
    if (ec || !v.is_array()) return false;
    for (const auto& e : v.as_array()) {
      const auto& o = e.as_object();
      if (o.at("mac").as_string() != "fe:ff:ff:ff:ff:fe" || !o.contains("master") ||
          o.at("master").as_string() != bridge || !o.contains("state"))
        continue;
      if (o.at("state").as_string() == "static") return true;
    }
    return false;
  }

  std::string sysctl(const std::string& dev) {
    auto r = topo().exec(ns_, {"cat", "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"});
    EXPECT_TRUE(r && r->exit_code == 0) << dev;
    return r ? std::string(trim(r->out)) : std::string();
  }

  // Checks the pair of `bridge`: both ends veths, up, IPv6 off; the port enslaved to `master`
  // ("" = unattached) and, when enslaved, quiet.
  void expect_pair(const std::map<std::string, boost::json::object>& links,
                   const std::string& bridge, const std::string& master) {
    SCOPED_TRACE("reject port of " + bridge);
    std::string port = "mrj." + bridge, peer = "mrp." + bridge;
    ASSERT_TRUE(links.contains(port));
    ASSERT_TRUE(links.contains(peer));
    for (const auto& name : {port, peer}) {
      const auto& l = links.at(name);
      EXPECT_EQ(l.at("linkinfo").at("info_kind").as_string(), "veth") << name;
      EXPECT_TRUE(is_up(l)) << name;
      EXPECT_EQ(sysctl(name), "1") << name;
    }
    EXPECT_EQ(links.at(port).at("link").as_string(), peer);
    EXPECT_EQ(master_of(links.at(port)), master);
    EXPECT_EQ(master_of(links.at(peer)), "");
    if (master.empty()) return;
    EXPECT_TRUE(has_reject_fdb(port, master));
    const auto& info = links.at(port).at("linkinfo").as_object();
    ASSERT_EQ(info.at("info_slave_kind").as_string(), "bridge");
    const auto& flags = info.at("info_slave_data").as_object();
    for (const char* flag : {"learning", "flood", "mcast_flood", "bcast_flood"}) {
      ASSERT_TRUE(flags.contains(flag)) << flag;
      EXPECT_FALSE(flags.at(flag).as_bool()) << flag;
    }
  }

  std::string ns_;
};

TEST_F(RejectPortsTest, MakesQuietPortsAttachesThemLaterAndRemovesThoseOfDroppedBridges) {
  auto made = sync_reject_ports(ns_, {"vmbr0", "vmbr9"});
  ASSERT_TRUE(made) << made.error().to_string();
  auto first = links();
  expect_pair(first, "vmbr0", "vmbr0");
  expect_pair(first, "vmbr9", "");

  // The peer carries the MAC that FDB entry names.
  EXPECT_EQ(std::string(first.at("mrp.vmbr0").at("address").as_string()), "fe:ff:ff:ff:ff:fe");

  // Again: nothing is made anew; an FDB entry someone deleted comes back.
  auto del = run({.argv = {"bridge", "-n", ns_, "fdb", "del", "fe:ff:ff:ff:ff:fe", "dev",
                           "mrj.vmbr0", "master", "static"}});
  ASSERT_TRUE(del && del->exit_code == 0) << (del ? del->err : del.error().to_string());
  EXPECT_FALSE(has_reject_fdb("mrj.vmbr0", "vmbr0"));
  auto again = sync_reject_ports(ns_, {"vmbr0", "vmbr9"});
  ASSERT_TRUE(again) << again.error().to_string();
  auto second = links();
  for (const char* name : {"mrj.vmbr0", "mrp.vmbr0", "mrj.vmbr9", "mrp.vmbr9"})
    EXPECT_EQ(ifindex(second, name), ifindex(first, name)) << name;
  expect_pair(second, "vmbr0", "vmbr0");

  // The missing bridge appears; a port taken to another bridge and made to flood comes back.
  ip({"link", "add", "vmbr9", "type", "bridge"});
  ip({"link", "set", "vmbr9", "up"});
  // A bridge without a set MAC takes its lowest port MAC: the reject port must not be it.
  ip({"link", "add", "x9", "address", "fe:00:00:00:09:01", "type", "veth", "peer", "name", "x9p"});
  ip({"link", "set", "x9", "master", "vmbr9"});
  ip({"link", "add", "vmbr1", "type", "bridge"});
  ip({"link", "set", "mrj.vmbr0", "master", "vmbr1"});
  ip({"link", "set", "mrj.vmbr0", "type", "bridge_slave", "flood", "on", "learning", "on"});
  auto attach = sync_reject_ports(ns_, {"vmbr0", "vmbr9"});
  ASSERT_TRUE(attach) << attach.error().to_string();
  auto third = links();
  expect_pair(third, "vmbr0", "vmbr0");
  expect_pair(third, "vmbr9", "vmbr9");
  EXPECT_EQ(ifindex(third, "mrj.vmbr9"), ifindex(first, "mrj.vmbr9"));
  EXPECT_EQ(std::string(third.at("vmbr9").at("address").as_string()), "fe:00:00:00:09:01");

  auto drop = sync_reject_ports(ns_, {"vmbr0"});
  ASSERT_TRUE(drop) << drop.error().to_string();
  auto fourth = links();
  EXPECT_FALSE(fourth.contains("mrj.vmbr9"));
  EXPECT_FALSE(fourth.contains("mrp.vmbr9"));
  EXPECT_TRUE(fourth.contains("vmbr9"));
  EXPECT_EQ(ifindex(fourth, "mrj.vmbr0"), ifindex(first, "mrj.vmbr0"));
  expect_pair(fourth, "vmbr0", "vmbr0");

  auto none = sync_reject_ports(ns_, {});
  ASSERT_TRUE(none) << none.error().to_string();
  for (const auto& [name, _] : links()) EXPECT_FALSE(name.starts_with("mr")) << name;
}

TEST_F(RejectPortsTest, ReplacesALinkThatHoldsAPortNameButIsNotItsVethPair) {
  // Half of some other veth pair (this kernel may lack the dummy driver).
  ip({"link", "add", "mrp.vmbr0", "type", "veth", "peer", "name", "other0"});
  auto synced = sync_reject_ports(ns_, {"vmbr0"});
  ASSERT_TRUE(synced) << synced.error().to_string();
  expect_pair(links(), "vmbr0", "vmbr0");
}

TEST_F(RejectPortsTest, NamesTheBridgeThatIsNotALinuxBridge) {
  ip({"link", "add", "vmbr5", "type", "veth", "peer", "name", "vmbr5p"});
  auto synced = sync_reject_ports(ns_, {"vmbr0", "vmbr5"});
  ASSERT_FALSE(synced);
  EXPECT_NE(synced.error().to_string().find("vmbr5 is not a Linux bridge"), std::string::npos)
      << synced.error().to_string();
  // The other pair is made all the same, and this one unattached.
  auto now = links();
  expect_pair(now, "vmbr0", "vmbr0");
  expect_pair(now, "vmbr5", "");
}

TEST_F(RejectPortsTest, FailsOnAMissingNamespace) {
  auto synced = sync_reject_ports(topo().prefix() + "-nonexistent", {"vmbr0"});
  EXPECT_FALSE(synced);
}

}  // namespace
}  // namespace moat::firewall
