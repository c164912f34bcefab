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
    // observe() names the underlay too (the kernel deletes the VXLAN with it).
    Result<Observed> seen = observe(ns);
    ASSERT_TRUE(seen) << seen.error().to_string();
    const ObservedLink* vxl = seen->find("vx100");
    ASSERT_TRUE(vxl && vxl->vxlan);
    EXPECT_EQ(vxl->vxlan->dev, "ul0");
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
  EXPECT_EQ(lines(mtu.plan), std::vector<std::string>{"set vmbr0 mtu 1400 (kernel has 1450)"});
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

// Node `self` of three on one underlay: a VXLAN with the two other nodes as remotes (FDB
// entries, head-end replication) under a bridge with the given STP settings.
std::string mesh_file(int self, const std::string& stp_lines, const std::vector<int>& peers) {
  std::string s = std::to_string(self);
  std::string out =
      "auto ul0\n"
      "iface ul0 inet static\n"
      "\taddress 10.251.0." +
      s +
      "/24\n"
      "\n"
      "auto vx100\n"
      "iface vx100 inet manual\n"
      "\tvxlan-id 100\n"
      "\tvxlan-local-tunnelip 10.251.0." +
      s + "\n";
  for (int p : peers) out += "\tvxlan-remoteip 10.251.0." + std::to_string(p) + "\n";
  out +=
      "\tvxlan-physdev ul0\n"
      "\tmtu 1450\n"
      "\n"
      "auto vmbr0\n"
      "iface vmbr0 inet static\n"
      "\taddress 10.1.0." +
      s +
      "/24\n"
      "\tbridge-ports vx100\n" +
      stp_lines + "\tmtu 1450\n";
  return out;
}

Status apply_text(const std::string& ns, const std::string& text) {
  Planned p = plan_for(ns, text);
  if (!p.error.empty()) return fail(ErrorCode::Internal, p.error);
  MOAT_TRY(apply_links({.netns = ns, .plan = p.plan, .file = "interfaces"}));
  return {};
}

TEST_F(LinksNetnsTest, VxlanWithTwoRemotesReachesBothPeersAndStpDriftIsRepaired) {
  auto ul = topo().add_node("ul");
  ASSERT_TRUE(ul) << ul.error().to_string();
  auto ulbr = topo().add_bridge({.node = *ul, .name = "ulbr"});
  ASSERT_TRUE(ulbr) << ulbr.error().to_string();
  const std::string off = "\tbridge-stp off\n\tbridge-fd 0\n";
  std::vector<testing::Node> nodes;
  for (int i = 1; i <= 3; ++i) {
    auto n = topo().add_node("n" + std::to_string(i));
    ASSERT_TRUE(n) << n.error().to_string();
    std::string port = "ul" + std::to_string(i);
    for (const std::vector<std::string>& argv :
         {std::vector<std::string>{"ip", "link", "add", port, "type", "veth", "peer", "name", "ul0",
                                   "netns", n->ns},
          {"ip", "link", "set", port, "master", "ulbr", "up"}}) {
      auto r = topo().exec(ul->ns, argv);
      ASSERT_TRUE(r && r->exit_code == 0) << (r ? r->err : r.error().to_string());
    }
    nodes.push_back(*n);
  }
  auto peers_of = [](int self) {
    std::vector<int> out;
    for (int p = 1; p <= 3; ++p) {
      if (p != self) out.push_back(p);
    }
    return out;
  };
  for (int i = 1; i <= 3; ++i) {
    Planned p = plan_for(nodes[i - 1].ns, mesh_file(i, off, peers_of(i)));
    ASSERT_EQ(p.error, "");
    auto applied = apply_links({.netns = nodes[i - 1].ns, .plan = p.plan, .file = "interfaces"});
    ASSERT_TRUE(applied) << applied.error().to_string() << "\nplan:\n" << to_string(p.plan);
    EXPECT_EQ(to_string(plan_for(nodes[i - 1].ns, mesh_file(i, off, peers_of(i))).plan),
              "(no changes)\n");
  }
  auto fdb = topo().exec(nodes[0].ns, {"bridge", "fdb", "show", "dev", "vx100"});
  ASSERT_TRUE(fdb);
  EXPECT_NE(fdb->out.find("00:00:00:00:00:00 dst 10.251.0.2 self permanent"), std::string::npos)
      << fdb->out;
  EXPECT_NE(fdb->out.find("00:00:00:00:00:00 dst 10.251.0.3 self permanent"), std::string::npos)
      << fdb->out;
  EXPECT_EQ(link(nodes[0].ns, "vx100").find(" remote "), std::string::npos);

  std::vector<testing::Guest> guests;
  for (int i = 1; i <= 3; ++i) {
    std::string s = std::to_string(i);
    auto g = topo().add_guest({.bridge = {nodes[i - 1].ns, "vmbr0", "10.1.0." + s, ""},
                               .name = "g" + s,
                               .port = "tap" + s + "00i0",
                               .ipv4 = "10.1.0.1" + s + "/24"});
    ASSERT_TRUE(g) << g.error().to_string();
    guests.push_back(*g);
  }
  EXPECT_TRUE(ping_converges(guests[0].ns, "10.1.0.12"));
  EXPECT_TRUE(ping_converges(guests[0].ns, "10.1.0.13"));
  EXPECT_TRUE(ping_converges(guests[1].ns, "10.1.0.13"));

  // STP and forward delay changed by hand are drift: planned back, with what the kernel has.
  const std::string& n1 = nodes[0].ns;
  auto by_hand = topo().exec(n1, {"ip", "link", "set", "vmbr0", "type", "bridge", "stp_state", "1",
                                  "forward_delay", "500"});
  ASSERT_TRUE(by_hand && by_hand->exit_code == 0) << (by_hand ? by_hand->err : "");
  Planned drift = plan_for(n1, mesh_file(1, off, peers_of(1)));
  ASSERT_EQ(drift.error, "");
  EXPECT_EQ(lines(drift.plan), std::vector<std::string>{"set vmbr0 stp off forward-delay 0 "
                                                        "(kernel has stp on forward-delay 5)"});
  {
    Status st = apply_text(n1, mesh_file(1, off, peers_of(1)));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  std::string br = link(n1, "vmbr0");
  EXPECT_NE(br.find("stp_state 0"), std::string::npos) << br;
  EXPECT_NE(br.find("forward_delay 0 "), std::string::npos) << br;

  // The file turns STP on: set in place, and the kernel runs it.
  const std::string on = "\tbridge-stp on\n\tbridge-fd 2\n";
  Planned stp = plan_for(n1, mesh_file(1, on, peers_of(1)));
  EXPECT_EQ(lines(stp.plan), std::vector<std::string>{"set vmbr0 stp on forward-delay 2 "
                                                      "(kernel has stp off forward-delay 0)"});
  {
    Status st = apply_text(n1, mesh_file(1, on, peers_of(1)));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  br = link(n1, "vmbr0");
  EXPECT_NE(br.find("stp_state 1"), std::string::npos) << br;
  EXPECT_NE(br.find("forward_delay 200 "), std::string::npos) << br;
  EXPECT_EQ(to_string(plan_for(n1, mesh_file(1, on, peers_of(1))).plan), "(no changes)\n");

  // A remote is replaced: its FDB entry goes, the new one comes, nothing else changes.
  Planned moved = plan_for(n1, mesh_file(1, on, {2, 4}));
  EXPECT_EQ(lines(moved.plan),
            (std::vector<std::string>{"delete fdb 00:00:00:00:00:00 dst 10.251.0.3 from vx100",
                                      "add fdb 00:00:00:00:00:00 dst 10.251.0.4 to vx100"}));
  {
    Status st = apply_text(n1, mesh_file(1, on, {2, 4}));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  fdb = topo().exec(n1, {"bridge", "fdb", "show", "dev", "vx100"});
  ASSERT_TRUE(fdb);
  EXPECT_EQ(fdb->out.find("00:00:00:00:00:00 dst 10.251.0.3"), std::string::npos) << fdb->out;
  EXPECT_NE(fdb->out.find("00:00:00:00:00:00 dst 10.251.0.4"), std::string::npos) << fdb->out;
  EXPECT_EQ(to_string(plan_for(n1, mesh_file(1, on, {2, 4})).plan), "(no changes)\n");
}

// A node whose vmbr0 has an address and a gateway in each family.
std::string gateway_file(bool with_gateways) {
  return std::string(
             "auto vp0\n"
             "iface vp0 inet manual\n"
             "\tlink-type veth\n"
             "\tveth-peer-name vp0p\n"
             "\n"
             "auto vmbr0\n"
             "iface vmbr0 inet static\n"
             "\taddress 192.0.2.1/24\n") +
         (with_gateways ? "\tgateway 192.0.2.254\n" : "") +
         "\tbridge-ports vp0\n"
         "\tbridge-stp off\n"
         "\tbridge-fd 0\n"
         "\n"
         "iface vmbr0 inet6 static\n"
         "\taddress 2001:db8:5::1/64\n" +
         (with_gateways ? "\tgateway 2001:db8:5::fffe\n" : "");
}

TEST_F(LinksNetnsTest, GatewaysBecomeMoatsDefaultRoutesAndLeaveWithTheFile) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  // Someone else's default route stays whatever the file says.
  Planned first = plan_for(n->ns, gateway_file(true));
  ASSERT_EQ(first.error, "");
  auto applied = apply_links({.netns = n->ns, .plan = first.plan, .file = "interfaces"});
  ASSERT_TRUE(applied) << applied.error().to_string() << "\n" << to_string(first.plan);
  auto v4 = topo().exec(n->ns, {"ip", "-4", "route", "show", "default"});
  auto v6 = topo().exec(n->ns, {"ip", "-6", "route", "show", "default"});
  ASSERT_TRUE(v4 && v6);
  EXPECT_NE(v4->out.find("default via 192.0.2.254 dev vmbr0 proto 77"), std::string::npos)
      << v4->out;
  EXPECT_NE(v6->out.find("default via 2001:db8:5::fffe dev vmbr0 proto 77"), std::string::npos)
      << v6->out;
  EXPECT_EQ(to_string(plan_for(n->ns, gateway_file(true)).plan), "(no changes)\n");

  auto theirs = topo().exec(
      n->ns, {"ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.253", "proto", "static"});
  ASSERT_TRUE(theirs && theirs->exit_code == 0) << (theirs ? theirs->err : "");
  Planned gone = plan_for(n->ns, gateway_file(false));
  EXPECT_EQ(lines(gone.plan),
            (std::vector<std::string>{"delete route default via 192.0.2.254 dev vmbr0",
                                      "delete route default via 2001:db8:5::fffe dev vmbr0"}));
  {
    Status st = apply_text(n->ns, gateway_file(false));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  v4 = topo().exec(n->ns, {"ip", "route", "show"});
  v6 = topo().exec(n->ns, {"ip", "-6", "route", "show", "default"});
  ASSERT_TRUE(v4 && v6);
  EXPECT_EQ(v4->out.find("default"), std::string::npos) << v4->out;
  EXPECT_NE(v4->out.find("198.51.100.0/24 via 192.0.2.253"), std::string::npos) << v4->out;
  EXPECT_EQ(v6->out, "");
  EXPECT_EQ(to_string(plan_for(n->ns, gateway_file(false)).plan), "(no changes)\n");
}

TEST_F(LinksNetnsTest, AVethPairJoiningTwoBridgesIsCompleteAfterOneApply) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  // Both ends declared (ifupdown2 style), each end a port of its own bridge.
  const std::string file =
      "auto lk1\niface lk1 inet manual\n\tlink-type veth\n\tveth-peer-name lk2\n\n"
      "auto lk2\niface lk2 inet manual\n\tlink-type veth\n\tveth-peer-name lk1\n\n"
      "auto brx\niface brx inet static\n\taddress 10.8.0.1/24\n\tbridge-ports lk1\n\n"
      "auto bry\niface bry inet manual\n\tbridge-ports lk2\n";
  Planned first = plan_for(n->ns, file);
  ASSERT_EQ(first.error, "");
  auto applied = apply_links({.netns = n->ns, .plan = first.plan, .file = "interfaces"});
  ASSERT_TRUE(applied) << applied.error().to_string() << "\n" << to_string(first.plan);
  EXPECT_NE(link(n->ns, "lk1").find("master brx"), std::string::npos) << link(n->ns, "lk1");
  EXPECT_NE(link(n->ns, "lk2").find("master bry"), std::string::npos) << link(n->ns, "lk2");
  EXPECT_EQ(to_string(plan_for(n->ns, file).plan), "(no changes)\n");
}

TEST_F(LinksNetnsTest, AddressesWithALifetimeAreLeftToWhoeverAddedThem) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  const std::string file =
      "auto br5\niface br5 inet static\n\taddress 10.6.0.1/24\n\tbridge-ports none\n";
  {
    Status st = apply_text(n->ns, file);
    ASSERT_TRUE(st) << st.error().to_string();
  }
  // What SLAAC or a DHCP client adds has a lifetime; they would add it back after a delete.
  for (std::vector<std::string> add :
       {std::vector<std::string>{"ip", "addr", "add", "10.6.0.77/24", "dev", "br5", "valid_lft",
                                 "300", "preferred_lft", "300"},
        std::vector<std::string>{"ip", "-6", "addr", "add", "2001:db8:6::77/64", "dev", "br5",
                                 "valid_lft", "300", "preferred_lft", "300"}}) {
    auto r = topo().exec(n->ns, add);
    ASSERT_TRUE(r && r->exit_code == 0) << (r ? r->err : "");
  }
  EXPECT_EQ(to_string(plan_for(n->ns, file).plan), "(no changes)\n");
  // A permanent address the file does not have is still removed.
  auto r = topo().exec(n->ns, {"ip", "addr", "add", "10.6.0.88/24", "dev", "br5"});
  ASSERT_TRUE(r && r->exit_code == 0) << (r ? r->err : "");
  EXPECT_EQ(lines(plan_for(n->ns, file).plan),
            std::vector<std::string>{"delete address 10.6.0.88/24 from br5"});
}

TEST_F(LinksNetnsTest, AStaticAddressThatExistsWithALifetimeBecomesPermanent) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  const std::string file =
      "auto br7\niface br7 inet static\n\taddress 10.7.0.1/24\n"
      "\taddress 2001:db8:7::1/64\n\tbridge-ports none\n";
  {
    Status st = apply_text(n->ns, "auto br7\niface br7 inet manual\n\tbridge-ports none\n");
    ASSERT_TRUE(st) << st.error().to_string();
  }
  // The addresses the file asks for exist, but as a DHCP client or SLAAC left them.
  for (std::vector<std::string> add :
       {std::vector<std::string>{"ip", "addr", "add", "10.7.0.1/24", "dev", "br7", "valid_lft",
                                 "300", "preferred_lft", "300"},
        std::vector<std::string>{"ip", "-6", "addr", "add", "2001:db8:7::1/64", "dev", "br7",
                                 "nodad", "valid_lft", "300", "preferred_lft", "300"}}) {
    auto r = topo().exec(n->ns, add);
    ASSERT_TRUE(r && r->exit_code == 0) << (r ? r->err : "");
  }
  Status st = apply_text(n->ns, file);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(to_string(plan_for(n->ns, file).plan), "(no changes)\n");
  auto show = topo().exec(n->ns, {"ip", "addr", "show", "dev", "br7"});
  ASSERT_TRUE(show);
  EXPECT_EQ(show->out.find("valid_lft 2"), std::string::npos) << show->out;
}

TEST_F(LinksNetnsTest, StpWithAForwardDelayBelowTwoSecondsAppliesAgainWithoutChanges) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  // Proxmox writes bridge-fd 0; with STP on the kernel makes that 2 s and refuses 0.
  const std::string file =
      "auto br6\niface br6 inet manual\n\tbridge-ports none\n\tbridge-stp on\n"
      "\tbridge-fd 0\n";
  for (int pass = 0; pass < 2; ++pass) {
    Status st = apply_text(n->ns, file);
    ASSERT_TRUE(st) << "pass " << pass << ": " << st.error().to_string();
  }
  EXPECT_EQ(to_string(plan_for(n->ns, file).plan), "(no changes)\n");
  EXPECT_NE(link(n->ns, "br6").find("stp_state 1"), std::string::npos) << link(n->ns, "br6");
}

TEST_F(LinksNetnsTest, AFailedClearGroupStopsTheApplyBeforeTheGroupIsDeleted) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  // keep0 is someone else's link left in Moat's delete group; gone0 is Moat's, to delete.
  for (std::vector<std::string> cmd :
       {std::vector<std::string>{"ip", "link", "add", "keep0", "type", "bridge"},
        std::vector<std::string>{"ip", "link", "set", "keep0", "group",
                                 std::to_string(kDeleteGroup)},
        std::vector<std::string>{"ip", "link", "add", "gone0", "type", "bridge"},
        std::vector<std::string>{"ip", "link", "set", "gone0", "alias", "moat"}}) {
    auto r = topo().exec(n->ns, cmd);
    ASSERT_TRUE(r && r->exit_code == 0) << (r ? r->err : "");
  }
  // The kernel refuses the first op (a name longer than IFNAMSIZ): it stands for a ClearGroup
  // that failed, e.g. the one that should have taken keep0 out of the group.
  std::vector<LinkOp> plan = {
      {.type = LinkOp::Type::ClearGroup, .link = "a-name-far-too-long-for-ifnamsiz"},
      {.type = LinkOp::Type::Delete, .link = "gone0"},
  };
  auto applied = apply_links({.netns = n->ns, .plan = plan, .file = "interfaces"});
  ASSERT_FALSE(applied);
  EXPECT_NE(applied.error().to_string().find("group default"), std::string::npos)
      << applied.error().to_string();
  auto keep = topo().exec(n->ns, {"ip", "link", "show", "dev", "keep0"});
  EXPECT_TRUE(keep && keep->exit_code == 0) << "keep0 was deleted with the group";
}

TEST_F(LinksNetnsTest, RecreatesAChangedVxlanAndMapsAFailedRequestToItsOpAndLine) {
  auto n = topo().add_node("node");
  ASSERT_TRUE(n) << n.error().to_string();
  auto vxlan_file = [](int id, const std::string& extra) {
    return "auto vx1\n"               // 1
           "iface vx1 inet manual\n"  // 2
           "\tvxlan-id " +
           std::to_string(id) +
           "\n"                            // 3
           "\tvxlan-remoteip 192.0.2.9\n"  // 4
           "\n"                            // 5
           "auto br1\n"                    // 6
           "iface br1 inet manual\n"       // 7
           "\tbridge-ports vx1\n" +        // 8
           extra;
  };
  {
    Status st = apply_text(n->ns, vxlan_file(10, ""));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  // A new id: the link is deleted (by group) and made again, and joins its bridge again, in
  // one apply.
  Planned changed = plan_for(n->ns, vxlan_file(11, ""));
  ASSERT_GE(changed.plan.size(), 2u);
  EXPECT_EQ(to_string(changed.plan[0]), "delete link vx1");
  {
    Status st = apply_text(n->ns, vxlan_file(11, ""));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  std::string vx = link(n->ns, "vx1");
  EXPECT_NE(vx.find("vxlan id 11 "), std::string::npos) << vx;
  EXPECT_NE(vx.find("master br1"), std::string::npos) << vx;
  EXPECT_EQ(to_string(plan_for(n->ns, vxlan_file(11, "")).plan), "(no changes)\n");

  // The kernel refuses a gateway it cannot reach: the error names that op and its stanza's
  // line; the ops before it ran.
  std::string bad = vxlan_file(11,
                               "\taddress 192.0.2.1/24\n"
                               "\tgateway 198.51.100.1\n"
                               "\tmtu 1400\n");
  Planned p = plan_for(n->ns, bad);
  ASSERT_EQ(lines(p.plan), (std::vector<std::string>{
                               "set br1 mtu 1400 (kernel has 1500)",
                               "add address 192.0.2.1/24 to br1",
                               "add route default via 198.51.100.1 dev br1",
                           }));
  auto applied = apply_links({.netns = n->ns, .plan = p.plan, .file = "interfaces"});
  ASSERT_FALSE(applied);
  const Error& e = applied.error();
  ASSERT_TRUE(e.where().has_value()) << e.to_string();
  EXPECT_EQ(e.where()->file, "interfaces");
  EXPECT_EQ(e.where()->line, 7) << e.to_string();
  ASSERT_FALSE(e.context().empty());
  EXPECT_EQ(e.context().front(), "add route default via 198.51.100.1 dev br1") << e.to_string();
  EXPECT_NE(link(n->ns, "br1").find("mtu 1400"), std::string::npos);
  auto a = topo().exec(n->ns, {"ip", "-4", "addr", "show", "dev", "br1"});
  ASSERT_TRUE(a);
  EXPECT_NE(a->out.find("192.0.2.1/24"), std::string::npos) << a->out;

  // A link left in the delete group (as by an apply that failed between moving it there and
  // deleting the group) is taken out, so that the next delete cannot take it along.
  auto grouped =
      topo().exec(n->ns, {"ip", "link", "set", "br1", "group", std::to_string(kDeleteGroup)});
  ASSERT_TRUE(grouped && grouped->exit_code == 0) << (grouped ? grouped->err : "");
  Planned regroup = plan_for(n->ns, vxlan_file(11, ""));
  ASSERT_FALSE(regroup.plan.empty());
  EXPECT_EQ(to_string(regroup.plan[0]), "set br1 group default (kernel has group 0x6d6f6174)");
  {
    Status st = apply_text(n->ns, vxlan_file(11, ""));
    ASSERT_TRUE(st) << st.error().to_string();
  }
  EXPECT_NE(link(n->ns, "br1").find("group default"), std::string::npos) << link(n->ns, "br1");
  EXPECT_EQ(to_string(plan_for(n->ns, vxlan_file(11, "")).plan), "(no changes)\n");
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
      // Only a kernel without the feature is a reason to skip (also under CI=true).
      ASSERT_EQ(e.code(), ErrorCode::Unavailable) << e.to_string();
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
      "\tbond-slaves eno1\n"
      "\tbond-mode active-backup\n"
      "\tbond-miimon 100\n"
      "\tbond-primary eno1\n"
      "\tbond-xmit-hash-policy layer2+3\n",
      2, "this kernel has no bonding", "bond mode active-backup");
}

TEST_F(MissingKindTest, VlanAwareBridge) {
  apply_or_skip(
      "auto vmbr0\n"
      "iface vmbr0 inet manual\n"
      "\tbridge-ports eno1\n"
      "\tbridge-vlan-aware yes\n",
      2, "this kernel has no bridge VLAN filtering", "vlan_filtering 1");
}

}  // namespace
}  // namespace moat::bridges
