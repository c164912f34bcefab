// Proves the netns harness: traffic between guests on one bridge, each probe outcome produced
// for real (by a listener, a closed port, nftables in the node, an absent address), and
// cleanup by name after a normal end, a failed ASSERT, and a half-made guest.
#include "harness/netns.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "moat/base/strings.h"
#include "moat/base/subprocess.h"

namespace moat::testing {
namespace {

using namespace std::chrono_literals;

// Short: every blocked probe waits this long.
constexpr auto kBlocked = 300ms;
// Long: a probe that expects an answer returns when it comes, so only a failure waits this
// long, and a loaded machine (ctest -j2) that is slow to answer a fresh topology's first
// packet does not fail the test.
constexpr auto kAnswered = 3s;

struct TwoGuests {
  Node node;
  Bridge bridge;
  Guest a;
  Guest b;
};

Result<TwoGuests> build_two_guests(Topology& t) {
  TwoGuests g;
  g.node = MOAT_TRY(t.add_node("node"));
  g.bridge = MOAT_TRY(t.add_bridge(
      {.node = g.node, .name = "vmbr0", .ipv4 = "10.77.0.1/24", .ipv6 = "fd77::1/64"}));
  g.a = MOAT_TRY(t.add_guest({.bridge = g.bridge,
                              .name = "a",
                              .port = "tap100i0",
                              .ipv4 = "10.77.0.100/24",
                              .ipv6 = "fd77::100/64",
                              .mac = "02:77:00:00:01:00"}));
  g.b = MOAT_TRY(t.add_guest({.bridge = g.bridge,
                              .name = "b",
                              .port = "veth101i0",
                              .ipv4 = "10.77.0.101/24",
                              .ipv6 = "fd77::101/64"}));
  return g;
}

std::string out_of(const Result<RunResult>& r) {
  if (!r) return "<" + r.error().to_string() + ">";
  return r->exit_code == 0 ? r->out : "<exit " + std::to_string(r->exit_code) + ": " + r->err + ">";
}

std::set<std::string> listed_namespaces() {
  auto r = run({.argv = {"ip", "netns", "list"}});
  std::set<std::string> out;
  if (!r || r->exit_code != 0) {
    ADD_FAILURE() << "ip netns list failed";
    return out;
  }
  for (std::string_view line : split(r->out, '\n'))
    if (auto f = split_ws(line); !f.empty()) out.emplace(f[0]);
  return out;
}

// Interface names in the host's (this process's) namespace.
std::set<std::string> host_links() {
  auto r = run({.argv = {"ip", "-o", "link", "show"}});
  std::set<std::string> out;
  if (!r || r->exit_code != 0) {
    ADD_FAILURE() << "ip link show failed";
    return out;
  }
  // "2: eth0@if3: <BROADCAST,...> ..."
  for (std::string_view line : split(r->out, '\n')) {
    auto f = split_ws(line);
    if (f.size() < 2) continue;
    std::string_view name = f[1].substr(0, f[1].find_first_of("@:"));
    out.emplace(name);
  }
  return out;
}

// Expects nothing of a destroyed topology to remain: no namespace (listed or as a file), no
// interface of its names in the host.
void expect_gone(const std::vector<std::string>& namespaces, const std::vector<std::string>& ports,
                 const std::set<std::string>& links_before) {
  ASSERT_FALSE(namespaces.empty());
  std::set<std::string> listed = listed_namespaces();
  std::set<std::string> links = host_links();
  for (const auto& ns : namespaces) {
    EXPECT_FALSE(listed.contains(ns)) << ns;
    EXPECT_NE(::access(("/run/netns/" + ns).c_str(), F_OK), 0) << ns;
  }
  for (const auto& port : ports)
    EXPECT_FALSE(links.contains(port) && !links_before.contains(port)) << port;
  std::string prefix = namespaces.front().substr(0, namespaces.front().find('-'));
  for (const auto& link : links) EXPECT_FALSE(link.starts_with(prefix)) << link;
}

using HarnessTest = NetnsTest;

TEST_F(HarnessTest, GuestsOnOneBridgeReachEachOther) {
  auto g = build_two_guests(topo());
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_TRUE(g->node.ns.starts_with(topo().prefix() + "-"));
  EXPECT_LE(topo().prefix().size(), 8u);

  // The kernel's view: exact port names on the bridge, the guest end is eth0 with its address.
  std::string ports =
      out_of(topo().exec(g->node.ns, {"ip", "-o", "link", "show", "master", "vmbr0"}));
  EXPECT_NE(ports.find(" tap100i0@"), std::string::npos) << ports;
  EXPECT_NE(ports.find(" veth101i0@"), std::string::npos) << ports;
  std::string eth0 = out_of(topo().exec(g->a.ns, {"ip", "-o", "addr", "show", "dev", "eth0"}));
  EXPECT_NE(eth0.find("10.77.0.100/24"), std::string::npos) << eth0;
  EXPECT_NE(eth0.find("fd77::100/64"), std::string::npos) << eth0;
  std::string mac = out_of(topo().exec(g->a.ns, {"cat", "/sys/class/net/eth0/address"}));
  EXPECT_EQ(trim(mac), "02:77:00:00:01:00");
  for (const char* key : {"net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
                          "net.bridge.bridge-nf-call-ip6tables"})
    EXPECT_EQ(trim(out_of(topo().exec(g->node.ns, {"sysctl", "-n", key}))), "1") << key;

  EXPECT_TRUE(topo().ping(g->a.ns, g->b.ipv4));
  EXPECT_TRUE(topo().ping(g->a.ns, g->b.ipv6));
  EXPECT_TRUE(topo().ping(g->a.ns, g->bridge.ipv4));

  ASSERT_TRUE(topo().listen_tcp(g->b.ns, 8080));
  EXPECT_EQ(topo().tcp_connect(g->a.ns, g->b.ipv4, 8080), TcpOutcome::Connected);
  EXPECT_EQ(topo().tcp_connect(g->a.ns, g->b.ipv6, 8080), TcpOutcome::Connected);
  EXPECT_EQ(topo().tcp_connect(g->b.ns, g->a.ipv4, 8080, kAnswered), TcpOutcome::Refused);

  EXPECT_EQ(topo().udp_probe(g->a.ns, g->b.ns, g->b.ipv4, 5353), UdpOutcome::Delivered);
  EXPECT_EQ(topo().udp_probe(g->a.ns, g->b.ns, g->b.ipv6, 5353), UdpOutcome::Delivered);
  // A port held by listen_udp() is proved by its echo.
  ASSERT_TRUE(topo().listen_udp(g->b.ns, 5354));
  EXPECT_EQ(topo().udp_probe(g->a.ns, g->b.ns, g->b.ipv4, 5354), UdpOutcome::Delivered);
}

TEST_F(HarnessTest, ProbesTellRefusedFromTimedOut) {
  auto g = build_two_guests(topo());
  ASSERT_TRUE(g) << g.error().to_string();
  const std::string& a = g->a.ns;

  // Nobody listens: the peer's kernel answers with a RST.
  EXPECT_EQ(topo().tcp_connect(a, g->b.ipv4, 9000, kAnswered), TcpOutcome::Refused);
  // Nobody has the address: no ARP answer, nothing comes back.
  EXPECT_EQ(topo().tcp_connect(a, "10.77.0.200", 9000, kBlocked), TcpOutcome::TimedOut);
  EXPECT_EQ(topo().udp_probe(a, g->b.ns, "10.77.0.200", 9000, kBlocked), UdpOutcome::Lost);
  EXPECT_FALSE(topo().ping(a, "10.77.0.200", kBlocked));

  // The node filters bridged traffic (br_netfilter -> inet forward); its ICMP rejects need the
  // address the node has on the bridge.
  auto nft = topo().exec(
      g->node.ns,
      {"nft",
       "add table inet t; add chain inet t filter { type filter hook forward priority 0; }; "
       "add rule inet t filter tcp dport 9001 reject with icmpx admin-prohibited; "
       "add rule inet t filter tcp dport 9002 drop; add rule inet t filter udp dport 9003 reject; "
       "add rule inet t filter udp dport 9004 drop"});
  ASSERT_TRUE(nft && nft->exit_code == 0) << out_of(nft);
  ASSERT_TRUE(topo().listen_tcp(g->b.ns, 9001));
  ASSERT_TRUE(topo().listen_tcp(g->b.ns, 9002));
  EXPECT_EQ(topo().tcp_connect(a, g->b.ipv4, 9001, kAnswered), TcpOutcome::Refused);
  EXPECT_EQ(topo().tcp_connect(a, g->b.ipv6, 9001, kAnswered), TcpOutcome::Refused);
  EXPECT_EQ(topo().tcp_connect(a, g->b.ipv4, 9002, kBlocked), TcpOutcome::TimedOut);
  EXPECT_EQ(topo().udp_probe(a, g->b.ns, g->b.ipv4, 9003, kAnswered), UdpOutcome::Rejected);
  EXPECT_EQ(topo().udp_probe(a, g->b.ns, g->b.ipv6, 9003, kAnswered), UdpOutcome::Rejected);
  EXPECT_EQ(topo().udp_probe(a, g->b.ns, g->b.ipv4, 9004, kBlocked), UdpOutcome::Lost);
  // Rejects stay observable in a burst (ICMP rate limits are off in the node).
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(topo().udp_probe(a, g->b.ns, g->b.ipv4, 9003, kAnswered), UdpOutcome::Rejected);
}

// After ~3 s the sender's kernel gives up on ARP and reports EHOSTUNREACH to itself; that is
// still "nothing came back", not a refusal.
TEST_F(HarnessTest, OwnNeighbourFailureIsNotARefusal) {
  auto g = build_two_guests(topo());
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_EQ(topo().tcp_connect(g->a.ns, "10.77.0.201", 9000, 4500ms), TcpOutcome::TimedOut);
}

TEST_F(HarnessTest, DestroyedTopologyLeavesNothing) {
  std::set<std::string> links_before = host_links();
  std::vector<std::string> namespaces;
  {
    Topology t;
    auto g = build_two_guests(t);
    ASSERT_TRUE(g) << g.error().to_string();
    ASSERT_TRUE(t.listen_tcp(g->b.ns, 8080));
    namespaces = {g->node.ns, g->a.ns, g->b.ns};
    // leftovers() sees a live topology, so an empty answer later means something.
    auto live = t.leftovers();
    std::sort(live.begin(), live.end());
    std::vector<std::string> expected = namespaces;
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(live, expected);
    for (const auto& ns : namespaces) EXPECT_TRUE(listed_namespaces().contains(ns)) << ns;
  }
  expect_gone(namespaces, {"vmbr0", "tap100i0", "veth101i0", "eth0"}, links_before);

  // cleanup() is idempotent and leftovers() of a cleaned topology is empty.
  Topology t;
  ASSERT_TRUE(t.add_node("n"));
  EXPECT_EQ(t.leftovers().size(), 1u);
  t.cleanup();
  t.cleanup();
  EXPECT_TRUE(t.leftovers().empty());
}

// Filled by the helper below; static because EXPECT_FATAL_FAILURE's statement cannot see locals.
std::vector<std::string> g_made;

void build_then_fail_partway() {
  Topology t;
  auto g = build_two_guests(t);
  ASSERT_TRUE(g) << g.error().to_string();
  ASSERT_TRUE(t.listen_tcp(g->b.ns, 8080));
  g_made = {g->node.ns, g->a.ns, g->b.ns};
  ASSERT_EQ(1, 2) << "deliberate failure partway";
  g_made.clear();  // not reached
}

TEST(HarnessCleanupTest, RunsWhenATestBodyFailsPartway) {
  MOAT_REQUIRE_NETNS();
  std::set<std::string> links_before = host_links();
  g_made.clear();
  EXPECT_FATAL_FAILURE(build_then_fail_partway(), "deliberate failure partway");
  expect_gone(g_made, {"vmbr0", "tap100i0", "veth101i0"}, links_before);
}

TEST(HarnessCleanupTest, RemovesAHalfMadeGuest) {
  MOAT_REQUIRE_NETNS();
  std::set<std::string> links_before = host_links();
  std::vector<std::string> made;
  {
    Topology t;
    auto node = t.add_node("node");
    ASSERT_TRUE(node) << node.error().to_string();
    auto br = t.add_bridge({.node = *node, .name = "vmbr0", .ipv4 = "10.78.0.1/24"});
    ASSERT_TRUE(br) << br.error().to_string();
    // The namespace and the veth are made, then the address is refused.
    auto bad =
        t.add_guest({.bridge = *br, .name = "bad", .port = "tap102i0", .ipv4 = "10.78.0.300/24"});
    ASSERT_FALSE(bad);
    made = t.leftovers();
    EXPECT_EQ(made.size(), 2u);
    std::string port = out_of(t.exec(node->ns, {"ip", "-o", "link", "show", "tap102i0"}));
    EXPECT_NE(port.find("tap102i0"), std::string::npos) << port;
    // Rejected before anything is made.
    EXPECT_FALSE(t.add_guest({.bridge = *br, .name = "x", .port = "much-too-long-name0"}));
    EXPECT_FALSE(t.add_node("bad/name"));
  }
  expect_gone(made, {"tap102i0"}, links_before);
}

}  // namespace
}  // namespace moat::testing
