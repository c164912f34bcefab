// The link reconciler against a real kernel: two node namespaces joined by an underlay veth,
// each given a VXLAN bridge by plan_links()/apply_links() from an interfaces text, with a guest
// namespace on each side. Checks the kernel's listing (`ip -d link`), idempotence (a second
// plan is empty), traffic across the tunnel, and that an mtu change re-plans only that while a
// running ping between the guests keeps getting answers.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "harness/netns.h"
#include "moat/bridges/link_driver.h"
#include "moat/bridges/links.h"

namespace moat::bridges {
namespace {

using namespace std::chrono_literals;

// The interfaces file of node `self` (1 or 2) whose VXLAN peer is node `peer`.
std::string node_file(int self, int peer, int bridge_mtu) {
  std::string s = std::to_string(self);
  std::string p = std::to_string(peer);
  return "auto lo\n"
         "iface lo inet loopback\n"
         "\n"
         "auto ul0\n"
         "iface ul0 inet static\n"
         "\taddress 10.250.0." +
         s +
         "/24\n"
         "\n"
         "auto vx100\n"
         "iface vx100 inet manual\n"
         "\tvxlan-id 100\n"
         "\tvxlan-local-tunnelip 10.250.0." +
         s +
         "\n"
         "\tvxlan-remoteip 10.250.0." +
         p +
         "\n"
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
         "\taddress 10.0.0." +
         s +
         "/24\n"
         "\tbridge-ports vx100 vp0\n"
         "\tbridge-stp off\n"
         "\tbridge-fd 0\n"
         "\tmtu " +
         std::to_string(bridge_mtu) + "\n";
}

struct Planned {
  std::vector<LinkOp> plan;
  std::string error;  // empty when planning worked
};

Planned plan_for(const std::string& ns, const std::string& text) {
  Result<InterfacesFile> file = parse_interfaces(text, "interfaces");
  if (!file) return {{}, file.error().to_string()};
  Result<std::vector<LinkSpec>> desired = compile_links(*file);
  if (!desired) return {{}, desired.error().to_string()};
  Result<Observed> observed = observe(ns);
  if (!observed) return {{}, observed.error().to_string()};
  return {plan_links(*observed, *desired), ""};
}

std::vector<std::string> lines(const std::vector<LinkOp>& plan) {
  std::vector<std::string> out;
  for (const LinkOp& op : plan) out.push_back(to_string(op));
  return out;
}

class LinksNetnsTest : public testing::NetnsTest {
 protected:
  std::string ip_d_link(const std::string& ns) {
    auto r = topo().exec(ns, {"ip", "-d", "link", "show"});
    EXPECT_TRUE(r && r->exit_code == 0);
    return r ? r->out : std::string();
  }
  std::string link(const std::string& ns, const std::string& name) {
    auto r = topo().exec(ns, {"ip", "-d", "link", "show", "dev", name});
    EXPECT_TRUE(r && r->exit_code == 0) << name << " in " << ns;
    return r ? r->out : std::string();
  }
  bool ping_converges(const std::string& from, const std::string& to) {
    for (int i = 0; i < 10; ++i) {
      if (topo().ping(from, to)) return true;
    }
    return false;
  }
};

TEST_F(LinksNetnsTest, BuildsVxlanBridgesAcrossTwoNodesAndReconfiguresWithoutBreakingFlows) {
  auto n1 = topo().add_node("node1");
  ASSERT_TRUE(n1) << n1.error().to_string();
  auto n2 = topo().add_node("node2");
  ASSERT_TRUE(n2) << n2.error().to_string();
  // The underlay stands for the NICs: made by the test, managed (address, up) by the plan.
  auto ul = topo().exec(
      n1->ns, {"ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", n2->ns});
  ASSERT_TRUE(ul && ul->exit_code == 0) << (ul ? ul->err : ul.error().to_string());

  const testing::Node* nodes[2] = {&*n1, &*n2};
  for (int i = 0; i < 2; ++i) {
    const std::string& ns = nodes[i]->ns;
    Planned p = plan_for(ns, node_file(i + 1, 2 - i, 1450));
    ASSERT_EQ(p.error, "");
    ASSERT_FALSE(p.plan.empty());
    EXPECT_EQ(p.plan.front().type, LinkOp::Type::Create) << to_string(p.plan);
    auto applied = apply_links({.netns = ns, .plan = p.plan, .file = "interfaces"});
    ASSERT_TRUE(applied) << applied.error().to_string() << "\nplan:\n" << to_string(p.plan);
    EXPECT_EQ(applied->applied, p.plan.size());
  }

  // The kernel's own listing.
  for (int i = 0; i < 2; ++i) {
    const std::string& ns = nodes[i]->ns;
    std::string self = std::to_string(i + 1), peer = std::to_string(2 - i);
    std::string vx = link(ns, "vx100");
    EXPECT_NE(
        vx.find("vxlan id 100 remote 10.250.0." + peer + " local 10.250.0." + self + " dev ul0"),
        std::string::npos)
        << vx;
    EXPECT_NE(vx.find("dstport 4789"), std::string::npos) << vx;
    EXPECT_NE(vx.find("master vmbr0"), std::string::npos) << vx;
    EXPECT_NE(vx.find("mtu 1450"), std::string::npos) << vx;
    EXPECT_NE(vx.find("state UNKNOWN"), std::string::npos) << vx;  // up (no carrier concept)
    std::string br = link(ns, "vmbr0");
    EXPECT_NE(br.find("bridge forward_delay"), std::string::npos) << br;
    EXPECT_NE(br.find("<BROADCAST,MULTICAST,UP"), std::string::npos) << br;
    EXPECT_NE(link(ns, "vp0").find("master vmbr0"), std::string::npos);
    EXPECT_NE(link(ns, "vp0").find("veth"), std::string::npos);
    EXPECT_NE(link(ns, "vp0p").find(",UP"), std::string::npos);
    EXPECT_NE(link(ns, "vp0").find("alias moat"), std::string::npos) << link(ns, "vp0");
    auto a = topo().exec(ns, {"ip", "-4", "addr", "show", "dev", "vmbr0"});
    ASSERT_TRUE(a);
    EXPECT_NE(a->out.find("inet 10.0.0." + self + "/24"), std::string::npos) << a->out;
    EXPECT_NE(ip_d_link(ns).find("ul0@"), std::string::npos);
  }

  // Idempotent: a fresh snapshot gives an empty plan.
  for (int i = 0; i < 2; ++i) {
    Planned again = plan_for(nodes[i]->ns, node_file(i + 1, 2 - i, 1450));
    ASSERT_EQ(again.error, "");
    EXPECT_EQ(to_string(again.plan), "(no changes)\n");
  }

  // A guest on each side, talking across the tunnel.
  auto g1 = topo().add_guest({.bridge = {n1->ns, "vmbr0", "10.0.0.1", ""},
                              .name = "g1",
                              .port = "tap100i0",
                              .ipv4 = "10.0.0.11/24"});
  ASSERT_TRUE(g1) << g1.error().to_string();
  auto g2 = topo().add_guest({.bridge = {n2->ns, "vmbr0", "10.0.0.2", ""},
                              .name = "g2",
                              .port = "tap200i0",
                              .ipv4 = "10.0.0.12/24"});
  ASSERT_TRUE(g2) << g2.error().to_string();
  ASSERT_TRUE(ping_converges(g1->ns, "10.0.0.12"));
  EXPECT_TRUE(topo().ping(g2->ns, "10.0.0.11"));
  EXPECT_TRUE(topo().ping(g1->ns, "10.0.0.2"));  // the far node's bridge address

  // Guest ports are not in the file and not Moat's: still nothing to do.
  Planned with_guests = plan_for(n1->ns, node_file(1, 2, 1450));
  ASSERT_EQ(with_guests.error, "");
  EXPECT_EQ(to_string(with_guests.plan), "(no changes)\n");

  // A running ping keeps getting answers while the bridge's mtu changes.
  auto running = std::async(std::launch::async, [&] {
    return topo().exec(g1->ns, {"ping", "-n", "-c", "30", "-i", "0.1", "-W", "1", "10.0.0.12"},
                       20s);
  });
  std::this_thread::sleep_for(1s);
  Planned mtu = plan_for(n1->ns, node_file(1, 2, 1400));
  ASSERT_EQ(mtu.error, "");
  EXPECT_EQ(lines(mtu.plan), std::vector<std::string>{"set vmbr0 mtu 1400"});
  auto applied = apply_links({.netns = n1->ns, .plan = mtu.plan, .file = "interfaces"});
  ASSERT_TRUE(applied) << applied.error().to_string();
  auto pinged = running.get();
  ASSERT_TRUE(pinged) << pinged.error().to_string();
  EXPECT_EQ(pinged->exit_code, 0) << pinged->out << pinged->err;
  EXPECT_NE(pinged->out.find("30 received"), std::string::npos) << pinged->out;
  EXPECT_NE(link(n1->ns, "vmbr0").find("mtu 1400"), std::string::npos);
  EXPECT_NE(link(n1->ns, "tap100i0").find("master vmbr0"), std::string::npos);
  EXPECT_TRUE(topo().ping(g1->ns, "10.0.0.12"));

  Planned settled = plan_for(n1->ns, node_file(1, 2, 1400));
  ASSERT_EQ(settled.error, "");
  EXPECT_EQ(to_string(settled.plan), "(no changes)\n");
}

// Applies `text` to a fresh node; on a kernel without the link kind, checks that the failure
// names the op and its interfaces-file line, then skips with `reason`.
class MissingKindTest : public LinksNetnsTest {
 protected:
  void apply_or_skip(const std::string& text, int line, const std::string& reason,
                     const std::string& expect_in_ip_link) {
    auto n = topo().add_node("node");
    ASSERT_TRUE(n) << n.error().to_string();
    auto nic =
        topo().exec(n->ns, {"ip", "link", "add", "eno1", "type", "veth", "peer", "name", "eno1p"});
    ASSERT_TRUE(nic && nic->exit_code == 0);
    Planned p = plan_for(n->ns, text);
    ASSERT_EQ(p.error, "");
    ASSERT_FALSE(p.plan.empty());
    auto applied = apply_links({.netns = n->ns, .plan = p.plan, .file = "interfaces"});
    if (!applied) {
      const Error& e = applied.error();
      ASSERT_TRUE(e.where().has_value()) << e.to_string();
      EXPECT_EQ(e.where()->line, line) << e.to_string();
      ASSERT_FALSE(e.context().empty());
      EXPECT_EQ(e.context().front().rfind("create ", 0), 0u) << e.to_string();
      GTEST_SKIP() << reason << " (" << e.to_string() << ")";
    }
    EXPECT_NE(ip_d_link(n->ns).find(expect_in_ip_link), std::string::npos);
    Planned again = plan_for(n->ns, text);
    EXPECT_EQ(to_string(again.plan), "(no changes)\n");
  }
};

TEST_F(MissingKindTest, VlanDevice) {
  apply_or_skip(
      "auto eno1.20\n"
      "iface eno1.20 inet static\n"
      "\taddress 192.0.2.1/24\n",
      2, "this kernel has no 802.1q VLAN devices", "vlan protocol 802.1Q id 20");
}

TEST_F(MissingKindTest, Bond) {
  apply_or_skip(
      "auto bond0\n"
      "iface bond0 inet manual\n"
      "\tbond-slaves eno1\n",
      2, "this kernel has no bonding", "bond_slave");
}

TEST_F(MissingKindTest, VlanAwareBridge) {
  apply_or_skip(
      "auto vmbr0\n"
      "iface vmbr0 inet manual\n"
      "\tbridge-ports eno1\n"
      "\tbridge-vlan-aware yes\n",
      2,
      "this kernel has no bridge VLAN filtering (and the libnl-route 3.7 driver cannot set it "
      "yet)",
      "vlan_filtering 1");
}

}  // namespace
}  // namespace moat::bridges
