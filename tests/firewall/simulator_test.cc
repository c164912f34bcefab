#include "moat/firewall/simulator.h"
#include "moat/firewall/nic_bridges.h"

#include <gtest/gtest.h>

#include "config_fixture.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>

#include "moat/firewall/compiler.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/parser.h"

namespace moat::firewall::sim {
namespace {

using V = Outcome::Verdict;

IpAddress ip(std::string_view text) {
  auto a = parse_ip(text);
  EXPECT_TRUE(a) << text;
  return a.value_or(IpAddress{});
}

bool traced(const Outcome& o, std::string_view chain, std::string_view text_part) {
  return std::any_of(o.trace.begin(), o.trace.end(), [&](const Step& s) {
    return s.chain == chain && s.rule_text.find(text_part) != std::string::npos;
  });
}

// Builds a FirewallConfig from file texts, compiles it (br_netfilter, as on this kernel) and
// simulates packets against the compiled ruleset.
class SimulatorTest : public testing::ConfigFixture {
 protected:
  Result<Outcome> try_run(const Packet& p) {
    auto compiled = compile(config_, CompileOptions{.layout = layout_});
    if (!compiled) return std::unexpected(compiled.error());
    ruleset_ = compiled->ruleset;
    return simulate(ruleset_, config_, p);
  }
  Outcome run(const Packet& p) {
    auto out = try_run(p);
    if (!out) {
      ADD_FAILURE() << out.error().to_string();
      return Outcome{V::Accept, "<error>", {}, {}, {}};
    }
    return *out;
  }

  nft::Ruleset ruleset_;
  GuestLayout layout_ = GuestLayout::Netdev;  // the default; tests of the other say so
};

constexpr std::string_view kWeb = R"([OPTIONS]
enable: 1
policy_in: DROP

[RULES]
IN ACCEPT -p tcp -dport 22
IN DROP -p tcp -dport 23 -log warning
|IN ACCEPT -p tcp -dport 24
)";  // rules on lines 6, 7, 8

TEST_F(SimulatorTest, GuestInPolicyDropsAPortNoRuleAllows) {
  vm(100, kWeb);
  auto o = run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_EQ(o.decided_by, "policy of guest-100-in");
}

TEST_F(SimulatorTest, GuestInAcceptsAnAllowedPortAndNamesTheFileLine) {
  vm(100, kWeb);
  auto o = run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 22});
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_EQ(o.decided_by, "firewall/100.fw:6");
  EXPECT_EQ(o.chain, "guest-100-in");
}

TEST_F(SimulatorTest, LogRuleMatchesButDoesNotDecide) {
  vm(100, kWeb);
  auto o = run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 23});
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_EQ(o.decided_by, "firewall/100.fw:7");
  EXPECT_TRUE(traced(o, "guest-100-in", "log prefix \":100:4:guest-100-in: DROP: \""));
}

TEST_F(SimulatorTest, DisabledRuleIsIgnored) {
  vm(100, kWeb);
  auto o = run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 24});
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_EQ(o.decided_by, "policy of guest-100-in");
}

TEST_F(SimulatorTest, RejectPolicyRejectsThroughTheInetForwardChain) {
  layout_ = GuestLayout::Bridge;  // its dispatch chains are traced
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: REJECT\n");
  auto o = run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(o.verdict, V::Reject);
  EXPECT_EQ(o.decided_by, "policy of guest-100-in");
  EXPECT_TRUE(traced(o, "do-reject", "reject with tcp reset"));
  auto u = run({.from = "outside", .to = "vm100", .protocol = "udp", .dport = 80});
  EXPECT_EQ(u.verdict, V::Reject);
  EXPECT_TRUE(traced(u, "do-reject", "icmpx port-unreachable"));
}

TEST_F(SimulatorTest, OutRejectRuleRejectsAndOtherPortsFollowTheOutPolicy) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nOUT REJECT -p tcp -dport 25\n");
  auto o = run({.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 25});
  EXPECT_EQ(o.verdict, V::Reject);
  EXPECT_EQ(o.decided_by, "firewall/100.fw:5");
  auto web = run({.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(web.verdict, V::Accept);
  EXPECT_EQ(web.decided_by, "policy of guest-100-out");
}

TEST_F(SimulatorTest, OutRejectToTheHostIsAnsweredAtTheBridgesRejectPort) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nOUT REJECT -p tcp -dport 8006\n");
  auto o = run({.from = "vm100", .to = "host", .protocol = "tcp", .dport = 8006});
  EXPECT_EQ(o.verdict, V::Reject);
  EXPECT_EQ(o.decided_by, "firewall/100.fw:5");
  EXPECT_TRUE(traced(o, "stash-prerouting", "ether daddr set fe:ff:ff:ff:ff:fe"));
  EXPECT_TRUE(traced(o, "answer-vmbr0", "reject with tcp reset"));
  // Never the host's input chain: the frame went to the reject port instead.
  for (const auto& step : o.trace) EXPECT_NE(step.chain, "input");
}

TEST_F(SimulatorTest, SecurityGroupWithInterfaceAppliesToThatNicOnly) {
  cluster(R"([OPTIONS]
enable: 1

[group web]
IN ACCEPT -p tcp -dport 80
)");
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nGROUP web -i net1\n",
     "net0: virtio=BC:24:11:00:00:10,bridge=vmbr0,firewall=1\n"
     "net1: virtio=BC:24:11:00:00:11,bridge=vmbr0,firewall=1\n");
  auto o = run({.from = "outside", .to = "vm100/net1", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_EQ(o.decided_by, "firewall/cluster.fw:5");
  EXPECT_EQ(o.chain, "group-web-in");
  EXPECT_EQ(o.via, "firewall/100.fw:5");
  auto other = run({.from = "outside", .to = "vm100/net0", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(other.verdict, V::Drop);
  EXPECT_EQ(other.decided_by, "policy of guest-100-in");
  // `vm100` alone is the lowest-numbered NIC.
  EXPECT_EQ(run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 80}).verdict,
            V::Drop);
}

TEST_F(SimulatorTest, IpsetNomatchEntryIsExcluded) {
  cluster(R"([OPTIONS]
enable: 1

[IPSET trusted]
10.0.0.0/8
! 10.0.0.13
)");
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22 -source +dc/trusted\n");
  Packet p{
      .from = "outside", .to = "vm100", .protocol = "tcp", .source = ip("10.0.0.12"), .dport = 22};
  EXPECT_EQ(run(p).verdict, V::Accept);
  EXPECT_EQ(run(p).decided_by, "firewall/100.fw:5");
  p.source = ip("10.0.0.13");
  EXPECT_EQ(run(p).verdict, V::Drop);
  p.source = ip("10.0.0.14");
  EXPECT_EQ(run(p).verdict, V::Accept);
}

TEST_F(SimulatorTest, MacroExpandsToUdpAndTcp) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nIN DNS(ACCEPT)\n");
  for (const char* proto : {"udp", "tcp"}) {
    auto o = run({.from = "outside", .to = "vm100", .protocol = proto, .dport = 53});
    EXPECT_EQ(o.verdict, V::Accept) << proto;
    EXPECT_EQ(o.decided_by, "firewall/100.fw:5") << proto;
  }
  EXPECT_EQ(run({.from = "outside", .to = "vm100", .protocol = "udp", .dport = 54}).verdict,
            V::Drop);
}

TEST_F(SimulatorTest, IcmpTypesMatchPerFamily) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nIN Ping(ACCEPT)\n");
  auto ping = run({.from = "outside", .to = "vm100", .protocol = "icmp"});
  EXPECT_EQ(ping.verdict, V::Accept);
  EXPECT_EQ(ping.decided_by, "firewall/100.fw:5");
  EXPECT_EQ(
      run({.from = "outside", .to = "vm100", .protocol = "icmp", .icmp_type = "timestamp-request"})
          .verdict,
      V::Drop);
  auto ping6 = run({.from = "outside", .to = "vm100", .protocol = "icmpv6"});
  EXPECT_EQ(ping6.verdict, V::Accept);
  EXPECT_TRUE(traced(ping6, "guest-100-in", "icmpv6 type 128 accept"));
}

TEST_F(SimulatorTest, AddressFamilyFollowsTheAddresses) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22 -source 2001:db8::/32\n");
  Packet p{.from = "outside",
           .to = "vm100",
           .protocol = "tcp",
           .source = ip("2001:db8::7"),
           .dport = 22};
  EXPECT_EQ(p.family(), 6);
  EXPECT_EQ(run(p).verdict, V::Accept);
  p.source = ip("2001:db9::7");
  EXPECT_EQ(run(p).verdict, V::Drop);
  p.source = ip("10.0.0.7");
  EXPECT_EQ(run(p).verdict, V::Drop);
}

TEST_F(SimulatorTest, HostInputPolicyDropsAndHostRuleAccepts) {
  host("[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 9100\n");
  auto o = run({.from = "outside", .to = "host", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_EQ(o.decided_by, "policy of input");
  auto exporter = run({.from = "outside", .to = "host", .protocol = "tcp", .dport = 9100});
  EXPECT_EQ(exporter.verdict, V::Accept);
  EXPECT_EQ(exporter.decided_by, "nodes/node1/host.fw:5");
  EXPECT_EQ(exporter.chain, "host-in");
}

TEST_F(SimulatorTest, SynfloodLimitIsNotExceededByOnePacket) {
  host("[OPTIONS]\nenable: 1\nprotection_synflood: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 9100\n");
  auto o = run({.from = "outside", .to = "host", .protocol = "tcp", .dport = 9100});
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_EQ(o.decided_by, "nodes/node1/host.fw:6");
}

TEST_F(SimulatorTest, SmurfSourcesAreDroppedButDhcpClientsPass) {
  host("[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p udp -dport 67\n");
  Packet p{.from = "outside", .to = "host", .protocol = "udp", .dport = 67};
  p.source = ip("255.255.255.255");
  auto bcast = run(p);
  EXPECT_EQ(bcast.verdict, V::Drop);
  EXPECT_EQ(bcast.decided_by, "nosmurfs");
  p.source = ip("239.1.2.3");
  EXPECT_EQ(run(p).decided_by, "nosmurfs");
  p.source = ip("0.0.0.0");
  EXPECT_EQ(run(p).verdict, V::Accept);
  p.source = ip("192.0.2.9");
  EXPECT_EQ(run(p).verdict, V::Accept);
}

TEST_F(SimulatorTest, ManagementIpsetReachesSshButNotOthers) {
  cluster(R"([OPTIONS]
enable: 1

[IPSET management]
192.0.2.0/24
)");
  Packet p{
      .from = "outside", .to = "host", .protocol = "tcp", .source = ip("192.0.2.5"), .dport = 22};
  auto o = run(p);
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_EQ(o.decided_by, "firewall/cluster.fw:4");
  p.dport = 8006;
  EXPECT_EQ(run(p).verdict, V::Accept);
  p.dport = 25;
  EXPECT_EQ(run(p).verdict, V::Drop);
  p.dport = 22;
  p.source = ip("198.51.100.5");
  EXPECT_EQ(run(p).decided_by, "policy of input");
}

TEST_F(SimulatorTest, BlacklistDropsBeforeManagement) {
  cluster(R"([OPTIONS]
enable: 1

[IPSET management]
192.0.2.0/24

[IPSET blacklist]
192.0.2.66
)");
  Packet p{
      .from = "outside", .to = "host", .protocol = "tcp", .source = ip("192.0.2.66"), .dport = 22};
  auto o = run(p);
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_EQ(o.decided_by, "firewall/cluster.fw:7");
}

TEST_F(SimulatorTest, IpfilterDropsASpoofedSource) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[IPSET ipfilter-net0]\n10.0.0.5\n");
  Packet p{
      .from = "vm100", .to = "outside", .protocol = "tcp", .source = ip("10.0.0.5"), .dport = 80};
  EXPECT_EQ(run(p).verdict, V::Accept);
  p.source = ip("10.0.0.6");
  auto o = run(p);
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_TRUE(o.decided_by.starts_with("ipfilter")) << o.decided_by;
  // Without --source, the address comes from the ipfilter set.
  EXPECT_EQ(run({.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 80}).verdict,
            V::Accept);
}

TEST_F(SimulatorTest, ContainerSendsFromItsConfiguredIp) {
  layout_ = GuestLayout::Bridge;  // its dispatch chains are traced
  guest(200, Guest::Type::Ct,
        "net0: "
        "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:02:00,ip=10.0.0.20/24,type=veth\n",
        "[OPTIONS]\nenable: 1\nipfilter: 1\n");
  auto o = run({.from = "ct200", .to = "outside", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_TRUE(traced(o, "out", "iifname vmap @out-ports"));
  auto spoof = run({.from = "ct200",
                    .to = "outside",
                    .protocol = "tcp",
                    .source = ip("10.0.0.21"),
                    .dport = 80});
  EXPECT_EQ(spoof.verdict, V::Drop);
  EXPECT_TRUE(spoof.decided_by.starts_with("ipfilter")) << spoof.decided_by;
  // The container's port is veth200i0; naming it directly is the same zone.
  EXPECT_EQ(
      run({.from = "vmbr0/veth200i0", .to = "outside", .protocol = "tcp", .dport = 80}).verdict,
      V::Accept);
}

TEST_F(SimulatorTest, MacfilterDropsFramesFromAnotherMac) {
  vm(100, "[OPTIONS]\nenable: 1\n");
  auto compiled = compile(config_, CompileOptions{});
  ASSERT_TRUE(compiled);
  // The guest now sends with a MAC its configuration (and so the ruleset) does not have.
  FirewallConfig spoofed = config_;
  spoofed.guests[100].nics[0].mac = "02:de:ad:be:ef:00";
  Packet p{.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 80};
  auto o = simulate(compiled->ruleset, spoofed, p);
  ASSERT_TRUE(o) << o.error().to_string();
  EXPECT_EQ(o->verdict, V::Drop);
  EXPECT_TRUE(o->decided_by.starts_with("macfilter")) << o->decided_by;
  auto real = simulate(compiled->ruleset, config_, p);
  ASSERT_TRUE(real);
  EXPECT_EQ(real->verdict, V::Accept);
}

TEST_F(SimulatorTest, MacfilterOffLetsAnyMacThrough) {
  vm(100, "[OPTIONS]\nenable: 1\nmacfilter: 0\n");
  auto compiled = compile(config_, CompileOptions{});
  ASSERT_TRUE(compiled);
  FirewallConfig spoofed = config_;
  spoofed.guests[100].nics[0].mac = "02:de:ad:be:ef:00";
  auto o = simulate(compiled->ruleset, spoofed,
                    {.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 80});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->verdict, V::Accept);
}

TEST_F(SimulatorTest, DhcpIsAllowedWhateverThePolicyUnlessDisabled) {
  vm(100, "[OPTIONS]\nenable: 1\npolicy_out: DROP\n");
  Packet p{.from = "vm100",
           .to = "outside",
           .protocol = "udp",
           .source = ip("0.0.0.0"),
           .dest = ip("255.255.255.255"),
           .sport = 68,
           .dport = 67};
  auto o = run(p);
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_EQ(o.decided_by, "dhcp");
  auto reply = run({.from = "outside", .to = "vm100", .protocol = "udp", .sport = 67, .dport = 68});
  EXPECT_EQ(reply.verdict, V::Accept);
  EXPECT_EQ(reply.decided_by, "dhcp");
  vm(100, "[OPTIONS]\nenable: 1\npolicy_out: ACCEPT\ndhcp: 0\n");
  auto off = run(p);
  EXPECT_EQ(off.verdict, V::Drop);
  EXPECT_EQ(off.decided_by, "dhcp");
}

TEST_F(SimulatorTest, HostToGuestRunsTheGuestInChainAtBridgeOutput) {
  layout_ = GuestLayout::Bridge;  // its dispatch chains are traced
  vm(100, kWeb);
  auto ssh = run({.from = "host", .to = "vm100", .protocol = "tcp", .dport = 22});
  EXPECT_EQ(ssh.verdict, V::Accept);
  EXPECT_EQ(ssh.decided_by, "firewall/100.fw:6");
  EXPECT_TRUE(traced(ssh, "in-local", "oifname vmap @in-ports"));
  auto web = run({.from = "host", .to = "vm100", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(web.verdict, V::Drop);
  EXPECT_EQ(web.decided_by, "policy of guest-100-in");
}

TEST_F(SimulatorTest, HostToGuestRejectIsDroppedByInLocalReject) {
  layout_ = GuestLayout::Bridge;  // its dispatch chains are traced
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: REJECT\n");
  auto o = run({.from = "host", .to = "vm100", .protocol = "tcp", .dport = 80});
  // No bridge-family reject on this kernel: the host's own packet is dropped instead, and the
  // drop is credited to the rule that asked for the reject.
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_EQ(o.decided_by, "policy of guest-100-in");
  EXPECT_TRUE(traced(o, "in-local-reject", "drop"));
}

TEST_F(SimulatorTest, NetdevHostToGuestRejectIsAnsweredByTheRejectPort) {
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: REJECT\n");
  auto o = run({.from = "host", .to = "vm100", .protocol = "tcp", .dport = 80});
  // The guest's egress chain sends the frame to the bridge's reject port; its peer answers.
  EXPECT_EQ(o.verdict, V::Reject);
  EXPECT_EQ(o.decided_by, "policy of guest-100-in");
  EXPECT_TRUE(traced(o, "do-reject", "fwd to \"mrj.vmbr0\""));
  EXPECT_TRUE(traced(o, "answer-vmbr0", "reject with tcp reset"));
}

TEST_F(SimulatorTest, NetdevOutRulesRecordTheirVerdictForAfterConntrack) {
  vm(100,
     "[OPTIONS]\nenable: 1\n\n[RULES]\nOUT DROP -p tcp -dport 3306\n"
     "OUT REJECT -p tcp -dport 25 -log info\n");
  auto drop = run({.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 3306});
  EXPECT_EQ(drop.verdict, V::Drop);
  EXPECT_EQ(drop.decided_by, "firewall/100.fw:5");
  EXPECT_TRUE(traced(drop, "guest-100-out", "jump rec-drop"));
  // The inet stash chain applies it, after conntrack.
  EXPECT_TRUE(traced(drop, "stash-prerouting", "== 0x8000000 drop"));
  // A logging rule is decided again after conntrack, in moat-verdicts, where it logs.
  auto smtp = run({.from = "vm100", .to = "outside", .protocol = "tcp", .dport = 25});
  EXPECT_EQ(smtp.verdict, V::Reject);
  EXPECT_EQ(smtp.decided_by, "firewall/100.fw:6");
  EXPECT_TRUE(traced(smtp, "guest-100-out", "jump rec-defer"));
  EXPECT_TRUE(traced(smtp, "out", "vmap @out-deferred"));
  EXPECT_TRUE(traced(smtp, "guest-100-out", "log prefix \":100:6:guest-100-out: REJECT: \""));
}

TEST_F(SimulatorTest, GuestToGuestRunsSenderOutThenReceiverIn) {
  vm(100, "[OPTIONS]\nenable: 1\n\n[RULES]\nOUT DROP -p tcp -dport 3306\n");
  vm(101,
     "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 3306\nIN ACCEPT -p tcp -dport "
     "5432\n");
  auto mysql = run({.from = "vm100", .to = "vm101", .protocol = "tcp", .dport = 3306});
  EXPECT_EQ(mysql.verdict, V::Drop);
  EXPECT_EQ(mysql.decided_by, "firewall/100.fw:5");
  auto pg = run({.from = "vm100", .to = "vm101", .protocol = "tcp", .dport = 5432});
  EXPECT_EQ(pg.verdict, V::Accept);
  EXPECT_EQ(pg.decided_by, "firewall/101.fw:6");  // the last accepting rule
  EXPECT_TRUE(traced(pg, "guest-100-out", "accept comment \"policy\""));
  EXPECT_TRUE(traced(pg, "guest-101-in", "th dport 5432 accept"));
  EXPECT_TRUE(traced(pg, "forward", "@bridged accept"));
  EXPECT_EQ(run({.from = "vm101", .to = "vm100", .protocol = "tcp", .dport = 5432}).decided_by,
            "policy of guest-100-in");
}

TEST_F(SimulatorTest, GuestsOnDifferentBridgesAreRoutedThroughTheHost) {
  layout_ = GuestLayout::Bridge;  // its dispatch chains are traced
  vm(100, "[OPTIONS]\nenable: 1\n");
  vm(101, "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n",
     "net0: virtio=BC:24:11:00:01:01,bridge=vmbr1,firewall=1\n");
  auto ssh = run({.from = "vm100", .to = "vm101", .protocol = "tcp", .dport = 22});
  EXPECT_EQ(ssh.verdict, V::Accept);
  EXPECT_EQ(ssh.decided_by, "firewall/101.fw:5");
  EXPECT_TRUE(traced(ssh, "forward", "accept comment \"policy\""));  // routed: not @bridged
  EXPECT_TRUE(traced(ssh, "in-local", "oifname vmap @in-ports"));
  EXPECT_EQ(run({.from = "vm100", .to = "vm101", .protocol = "tcp", .dport = 80}).decided_by,
            "policy of guest-101-in");
}

TEST_F(SimulatorTest, BridgedTrafficIsNotSubjectToTheForwardPolicy) {
  cluster("[OPTIONS]\nenable: 1\npolicy_forward: DROP\n");
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n");
  EXPECT_EQ(run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 80}).verdict,
            V::Accept);
  auto routed = run({.from = "outside", .to = "outside", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(routed.verdict, V::Drop);
  EXPECT_EQ(routed.decided_by, "policy of forward");
}

TEST_F(SimulatorTest, DisabledFirewallsAcceptByDefault) {
  vm(100, "[OPTIONS]\nenable: 0\npolicy_in: DROP\n");
  auto o = run({.from = "outside", .to = "vm100", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(o.verdict, V::Accept);
  EXPECT_EQ(o.decided_by, "default accept");
  cluster("[OPTIONS]\nenable: 0\n");
  auto off = run({.from = "outside", .to = "host", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(off.verdict, V::Accept);
  EXPECT_EQ(off.decided_by, "default accept");
  EXPECT_TRUE(off.trace.empty());
}

TEST_F(SimulatorTest, HostOutputAndLoopback) {
  cluster("[OPTIONS]\nenable: 1\npolicy_out: DROP\n\n[RULES]\nOUT ACCEPT -p udp -dport 53\n");
  auto dns = run({.from = "host", .to = "outside", .protocol = "udp", .dport = 53});
  EXPECT_EQ(dns.verdict, V::Accept);
  EXPECT_EQ(dns.decided_by, "firewall/cluster.fw:6");
  EXPECT_EQ(run({.from = "host", .to = "outside", .protocol = "tcp", .dport = 80}).decided_by,
            "policy of output");
  EXPECT_EQ(run({.from = "host", .to = "host", .protocol = "tcp", .dport = 80}).verdict, V::Accept);
}

TEST_F(SimulatorTest, ZonesThatDoNotExistAreInvalidArguments) {
  vm(100, kWeb);
  guest(200, Guest::Type::Ct, "net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:02:00\n");
  struct Case {
    const char* zone;
    const char* message;
  };
  for (auto [zone, message] :
       {Case{"vm999", "no guest with VMID 999"}, Case{"vm100/net7", "no interface net7"},
        Case{"ct100", "is a VM; use vm100"}, Case{"vm200", "is a container; use ct200"},
        Case{"moon", "expected host, outside"}, Case{"vm100/eth0", "net<N>"}}) {
    auto o = try_run({.from = zone, .to = "outside", .protocol = "tcp", .dport = 80});
    ASSERT_FALSE(o) << zone;
    EXPECT_EQ(o.error().code(), ErrorCode::InvalidArgument) << zone;
    EXPECT_NE(o.error().message().find(message), std::string::npos) << o.error().message();
    EXPECT_NE(o.error().message().find(zone), std::string::npos) << o.error().message();
  }
  auto same = try_run({.from = "vm100", .to = "vm100", .protocol = "tcp", .dport = 80});
  ASSERT_FALSE(same);
  EXPECT_EQ(same.error().code(), ErrorCode::InvalidArgument);
}

TEST_F(SimulatorTest, PacketsThatCannotExistAreInvalidArguments) {
  vm(100, kWeb);
  for (const Packet& p :
       {Packet{.from = "outside", .to = "vm100", .protocol = "tcp"},
        Packet{.from = "outside", .to = "vm100", .protocol = "icmp", .dport = 3},
        Packet{.from = "outside", .to = "vm100", .protocol = "tcpp", .dport = 3},
        Packet{.from = "outside", .to = "vm100", .protocol = "icmp", .icmp_type = "nope"},
        Packet{.from = "outside", .to = "vm100", .protocol = "udp", .dport = 1, .icmp_type = "8"},
        Packet{.from = "outside", .to = "vm100", .protocol = "icmp", .source = ip("::1")}}) {
    auto o = try_run(p);
    ASSERT_FALSE(o) << p.protocol;
    EXPECT_EQ(o.error().code(), ErrorCode::InvalidArgument) << o.error().message();
  }
}

// ---- the evaluator on hand-built IR ----

nft::Match eq(nft::Field f, nft::Bytes v) {
  return {{f}, nft::Match::Op::Eq, {nft::single(std::move(v))}, {}, 0};
}
nft::Rule rule(std::vector<nft::Match> m, nft::VerdictCode code, std::string chain = {},
               std::string origin = {}) {
  nft::Rule r;
  r.matches = std::move(m);
  r.verdict = {code, std::move(chain)};
  r.origin = std::move(origin);
  return r;
}

class SimulatorEvaluatorTest : public ::testing::Test {
 protected:
  nft::Table& inet() { return ruleset_.table(nft::Family::Inet, "t"); }
  nft::Chain& chain(const std::string& name, std::optional<nft::BaseChain> base = {}) {
    nft::Chain& c = inet().chains[name];
    c.name = name;
    c.base = base;
    return c;
  }
  Result<Outcome> to_host(uint16_t dport = 80) {
    return simulate(ruleset_, config_,
                    {.from = "outside", .to = "host", .protocol = "tcp", .dport = dport});
  }
  nft::Ruleset ruleset_;
  FirewallConfig config_;
};

TEST_F(SimulatorEvaluatorTest, GotoReturnsToTheCallerOfTheChainThatWent) {
  using C = nft::VerdictCode;
  chain("input", nft::BaseChain{nft::Hook::Input, 0, false}).rules = {
      rule({}, C::Jump, "a"), rule({}, C::Drop, {}, "after-a")};
  chain("a").rules = {rule({}, C::Goto, "b"), rule({}, C::Accept, {}, "never")};
  chain("b").rules = {rule({eq(nft::Field::Dport, nft::be16(22))}, C::Accept, {}, "ssh"),
                      rule({}, C::Return), rule({}, C::Accept, {}, "never")};
  auto o = to_host(80);
  ASSERT_TRUE(o) << o.error().to_string();
  EXPECT_EQ(o->verdict, V::Drop);
  EXPECT_EQ(o->decided_by, "after-a");
  auto ssh = to_host(22);
  ASSERT_TRUE(ssh);
  EXPECT_EQ(ssh->verdict, V::Accept);
  EXPECT_EQ(ssh->decided_by, "ssh");
}

TEST_F(SimulatorEvaluatorTest, BasePolicyDropAndVmapMiss) {
  using C = nft::VerdictCode;
  nft::Set& map = inet().sets["ports"];
  map.name = "ports";
  map.kind = nft::Set::Kind::Vmap;
  map.key = {nft::Field::Dport};
  map.elements = {{{nft::single(nft::be16(22))}, {C::Accept, {}}, 0}};
  nft::Rule vmap;
  vmap.vmap_fields = {nft::Field::Dport};
  vmap.vmap = "ports";
  vmap.origin = "ports map";
  chain("input", nft::BaseChain{nft::Hook::Input, 0, true}).rules = {vmap};
  auto miss = to_host(80);
  ASSERT_TRUE(miss);
  EXPECT_EQ(miss->verdict, V::Drop);
  EXPECT_EQ(miss->decided_by, "policy of input");
  auto hit = to_host(22);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->verdict, V::Accept);
  EXPECT_EQ(hit->decided_by, "ports map");
}

TEST_F(SimulatorEvaluatorTest, MarkPersistsAcrossHooksAndConcatenatedSetsMatch) {
  using C = nft::VerdictCode;
  nft::Rule set_mark;
  set_mark.mark = nft::MarkSet{0xffffff00, 0x42};
  set_mark.origin = "marker";
  chain("pre", nft::BaseChain{nft::Hook::Prerouting, 0, false}).rules = {set_mark};
  nft::Set& pairs = inet().sets["pairs"];
  pairs.name = "pairs";
  pairs.key = {nft::Field::Iifname, nft::Field::L4proto};
  pairs.elements = {{{nft::single(nft::ifname_bytes("eth0")), nft::single(nft::u8(6))}, {}, 0}};
  nft::Match in_pairs{
      {nft::Field::Iifname, nft::Field::L4proto}, nft::Match::Op::In, {}, "pairs", 0};
  nft::Match marked{{nft::Field::Mark}, nft::Match::Op::BitsAny, {}, {}, 0x40};
  nft::Match syn{{nft::Field::TcpFlags}, nft::Match::Op::BitsAny, {}, {}, 0x02};
  chain("input", nft::BaseChain{nft::Hook::Input, 0, false}).rules = {rule(
      {in_pairs, marked, syn, eq(nft::Field::Mark, nft::host32(0x42))}, C::RejectAdminProhibited)};
  auto o = to_host();
  ASSERT_TRUE(o) << o.error().to_string();
  EXPECT_EQ(o->verdict, V::Reject);
  EXPECT_EQ(o->decided_by, "marker");  // the rule tested the mark someone with an origin set
}

// Netdev chains run on the ports they are bound to: ingress before the bridge hooks (a mark
// set there is seen by bridge prerouting), egress after them, for bridged and host traffic.
TEST_F(SimulatorEvaluatorTest, NetdevChainsRunOnTheirPortsAroundTheBridgeHooks) {
  using C = nft::VerdictCode;
  nft::Table& ports = ruleset_.table(nft::Family::Netdev, "ports");
  auto base = [](nft::Hook hook, bool drop, std::string device) {
    return nft::BaseChain{hook, 0, drop, {std::move(device)}};
  };
  nft::Rule tag;
  tag.mark = nft::MarkSet{0, 0x42};
  nft::Chain& from =
      ports.chains["from_100"] = {"from_100", base(nft::Hook::Ingress, false, "tap100i0"), {}};
  from.rules = {tag, rule({eq(nft::Field::Dport, nft::be16(53))}, C::Drop, {}, "no-dns")};
  nft::Chain& to =
      ports.chains["to_101"] = {"to_101", base(nft::Hook::Egress, true, "tap101i0"), {}};
  to.rules = {rule({eq(nft::Field::Dport, nft::be16(22))}, C::Accept, {}, "ssh-in")};
  nft::Table& bridge = ruleset_.table(nft::Family::Bridge, "b");
  bridge.chains["pre"] = {"pre", nft::BaseChain{nft::Hook::Prerouting, 10, false}, {}};
  bridge.chains["pre"].rules = {
      rule({eq(nft::Field::Mark, nft::host32(0x42)), eq(nft::Field::Dport, nft::be16(80))}, C::Drop,
           {}, "tagged-at-ingress")};
  auto sim = [&](std::string from_zone, std::string to_zone, std::string proto, uint16_t port) {
    auto o = simulate(ruleset_, config_,
                      {.from = from_zone, .to = to_zone, .protocol = proto, .dport = port});
    EXPECT_TRUE(o) << o.error().to_string();
    return o.value_or(Outcome{});
  };
  auto dns = sim("vmbr0/tap100i0", "vmbr0/tap101i0", "udp", 53);
  EXPECT_EQ(dns.verdict, V::Drop);
  EXPECT_EQ(dns.decided_by, "no-dns");
  auto other = sim("vmbr0/tap102i0", "vmbr0/tap101i0", "udp", 53);
  EXPECT_EQ(other.verdict, V::Drop);
  EXPECT_EQ(other.decided_by, "policy of to_101");
  auto web = sim("vmbr0/tap100i0", "vmbr0/tap101i0", "tcp", 80);
  EXPECT_EQ(web.verdict, V::Drop);
  EXPECT_EQ(web.chain, "pre");
  EXPECT_EQ(sim("host", "vmbr0/tap101i0", "tcp", 22).verdict, V::Accept);
  auto telnet = sim("host", "vmbr0/tap101i0", "tcp", 23);
  EXPECT_EQ(telnet.verdict, V::Drop);
  EXPECT_EQ(telnet.decided_by, "policy of to_101");
  EXPECT_EQ(sim("vmbr0/tap101i0", "vmbr0/tap100i0", "udp", 53).verdict, V::Accept);
}

TEST_F(SimulatorEvaluatorTest, BrokenRulesetsAreInternalErrors) {
  using C = nft::VerdictCode;
  chain("input", nft::BaseChain{nft::Hook::Input, 0, false}).rules = {rule({}, C::Jump, "missing")};
  auto o = to_host();
  ASSERT_FALSE(o);
  EXPECT_EQ(o.error().code(), ErrorCode::Internal);
  chain("input", nft::BaseChain{nft::Hook::Input, 0, false}).rules = {rule({}, C::Jump, "loop")};
  chain("loop").rules = {rule({}, C::Jump, "loop")};
  auto loop = to_host();
  ASSERT_FALSE(loop);
  EXPECT_EQ(loop.error().code(), ErrorCode::Internal);
}

// ---- the example datacenter ----

class SimulatorExampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = load_config(std::string(MOAT_SOURCE_DIR) + "/examples/datacenter", "node1");
    ASSERT_TRUE(loaded) << loaded.error().to_string();
    config_ = loaded->config;
    auto compiled = compile(config_, CompileOptions{});
    ASSERT_TRUE(compiled) << compiled.error().to_string();
    ruleset_ = compiled->ruleset;
  }
  Outcome run(const Packet& p) {
    auto o = simulate(ruleset_, config_, p);
    if (!o) {
      ADD_FAILURE() << o.error().to_string();
      return Outcome{V::Accept, "<error>", {}, {}, {}};
    }
    return *o;
  }
  FirewallConfig config_;
  nft::Ruleset ruleset_;
};

TEST_F(SimulatorExampleTest, MysqlToTheDatabaseIsRejectedByTheGroup) {
  auto o = run({.from = "ct200", .to = "vm101", .protocol = "tcp", .dport = 3306});
  EXPECT_EQ(o.verdict, V::Reject);
  EXPECT_EQ(o.decided_by, "firewall/cluster.fw:35");
  EXPECT_EQ(o.chain, "group-dbserver-in");
  EXPECT_EQ(o.via, "firewall/101.fw:10");
  auto pg = run({.from = "ct200", .to = "vm101", .protocol = "tcp", .dport = 5432});
  EXPECT_EQ(pg.verdict, V::Accept);
  EXPECT_EQ(pg.decided_by, "firewall/cluster.fw:34");
}

TEST_F(SimulatorExampleTest, WebServerAndClient) {
  auto web = run({.from = "ct200", .to = "vm100", .protocol = "tcp", .dport = 80});
  EXPECT_EQ(web.verdict, V::Accept);
  EXPECT_EQ(web.decided_by, "firewall/cluster.fw:29");
  auto dns = run({.from = "ct200", .to = "vm100", .protocol = "udp", .dport = 53});
  EXPECT_EQ(dns.verdict, V::Drop);
  EXPECT_EQ(dns.decided_by, "firewall/100.fw:9");
  auto mail = run({.from = "ct200", .to = "outside", .protocol = "tcp", .dport = 25});
  EXPECT_EQ(mail.verdict, V::Reject);
  EXPECT_EQ(mail.decided_by, "firewall/200.fw:7");
  // ops (198.51.100.20, ct200's ip=) may ssh to the database.
  EXPECT_EQ(run({.from = "ct200", .to = "vm101", .protocol = "tcp", .dport = 22}).decided_by,
            "firewall/101.fw:11");
}

TEST_F(SimulatorExampleTest, HostAccess) {
  Packet admin{
      .from = "outside", .to = "host", .protocol = "tcp", .source = ip("192.0.2.5"), .dport = 22};
  EXPECT_EQ(run(admin).verdict, V::Accept);
  EXPECT_EQ(run(admin).decided_by, "firewall/cluster.fw:26");
  admin.source = ip("203.0.113.66");
  EXPECT_EQ(run(admin).verdict, V::Drop);
  EXPECT_EQ(run(admin).decided_by, "firewall/cluster.fw:15");
  auto corosync = run({.from = "outside",
                       .to = "host",
                       .protocol = "udp",
                       .source = ip("192.0.2.2"),
                       .dport = 5405});
  EXPECT_EQ(corosync.decided_by, "corosync");
}

TEST_F(SimulatorExampleTest, DatabaseCannotSpoofItsAddress) {
  auto o = run({.from = "vm101",
                .to = "outside",
                .protocol = "tcp",
                .source = ip("198.51.100.99"),
                .dport = 443});
  EXPECT_EQ(o.verdict, V::Drop);
  EXPECT_TRUE(o.decided_by.starts_with("ipfilter")) << o.decided_by;
  EXPECT_EQ(run({.from = "vm101", .to = "outside", .protocol = "tcp", .dport = 443}).verdict,
            V::Accept);
}

}  // namespace
}  // namespace moat::firewall::sim

namespace moat::firewall::sim {
namespace {

// A guest on an OVS bridge sits on its firewall bridge fwbr<vmid>i<N>: its chains, reject port
// and bridged pair follow that bridge, and the simulator crosses OVS between two of them.
TEST_F(SimulatorTest, GuestsOnAnOvsBridgeAreFilteredOnTheirFirewallBridges) {
  vm(100, "[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n");
  vm(101, "[OPTIONS]\nenable: 1\n");
  config_.guests[101].nics[0].firewall = false;  // plugged straight into OVS: untouched
  plug_nics(config_, {.ovs = {"vmbr0"}});
  EXPECT_EQ(config_.guests[100].nics[0].bridge, "fwbr100i0");
  EXPECT_EQ(config_.guests[100].nics[0].uplink, "vmbr0");
  EXPECT_EQ(config_.guests[101].nics[0].bridge, "vmbr0");
  EXPECT_EQ(config_.guests[101].nics[0].uplink, "");
  auto compiled = compile(config_, CompileOptions{});
  ASSERT_TRUE(compiled) << compiled.error().to_string();
  EXPECT_EQ(compiled->reject_port_bridges, std::set<std::string>{"fwbr100i0"});
  for (auto [from, to, port, want] :
       {std::tuple{"host", "vm100", 22, V::Accept},
        {"host", "vm100", 80, V::Drop},
        {"outside", "vm100", 22, V::Accept},
        {"outside", "vm100", 80, V::Drop},
        {"vm100", "outside", 80, V::Accept},
        {"vm100", "host", 8006, V::Drop}}) {  // the host's input policy
    auto o = run({.from = from, .to = to, .protocol = "tcp", .dport = static_cast<uint16_t>(port)});
    EXPECT_EQ(o.verdict, want) << from << " -> " << to << " tcp/" << port << ": " << o.decided_by;
  }
}

// Proxmox's iptables firewall puts every firewalled NIC on its own fwbr<vmid>i<N>, joined to
// the Linux bridge by a veth pair (fwln<vmid>i<N> - fwpr<vmid>p<N>): a frame between two such
// guests is bridged three times, each time through br_netfilter's hooks, so the cluster's
// FORWARD policy (DROP) must let all three pass; the host reaches them over vmbr0.
TEST_F(SimulatorTest, GuestsOnFirewallBridgesInFrontOfALinuxBridge) {
  cluster("[OPTIONS]\nenable: 1\npolicy_forward: DROP\n");
  vm(100,
     "[OPTIONS]\nenable: 1\npolicy_in: DROP\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n"
     "IN REJECT -p tcp -dport 25\n");
  vm(101,
     "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n\n[RULES]\nOUT REJECT -p tcp -dport 3306\n"
     "OUT REJECT -p udp -dport 514 -log info\n");        // decided again after conntrack (logs)
  vm(102, "[OPTIONS]\nenable: 1\npolicy_in: ACCEPT\n");  // started after `nftables: 1`
  plug_nics(config_, {.firewall_bridged = {"tap100i0", "tap101i0"}});
  EXPECT_EQ(config_.guests[100].nics[0].bridge, "fwbr100i0");
  EXPECT_EQ(config_.guests[100].nics[0].uplink, "vmbr0");
  EXPECT_EQ(config_.guests[102].nics[0].bridge, "vmbr0");
  auto compiled = compile(config_, CompileOptions{});
  ASSERT_TRUE(compiled) << compiled.error().to_string();
  // vmbr0's reject port answers for the guests on the firewall bridges joining it too.
  EXPECT_EQ(compiled->reject_port_bridges, (std::set<std::string>{"vmbr0"}));
  for (auto [from, to, port, want] : {std::tuple{"vm101", "vm100", 22, V::Accept},
                                      {"vm101", "vm100", 80, V::Drop},
                                      {"vm101", "vm100", 25, V::Reject},
                                      {"vm102", "vm100", 22, V::Accept},
                                      {"vm100", "vm102", 80, V::Accept},
                                      {"vm100", "vm101", 80, V::Accept},
                                      {"outside", "vm100", 22, V::Accept},
                                      {"outside", "vm100", 25, V::Reject},
                                      {"host", "vm100", 22, V::Accept},
                                      {"vm100", "outside", 80, V::Accept},
                                      {"vm100", "host", 8006, V::Drop},  // host input policy
                                      {"vm101", "vm100", 3306, V::Reject},
                                      {"vm101", "vm102", 3306, V::Reject},
                                      {"vm101", "host", 3306, V::Reject},
                                      {"vm101", "outside", 3306, V::Reject}}) {
    auto o = run({.from = from, .to = to, .protocol = "tcp", .dport = static_cast<uint16_t>(port)});
    EXPECT_EQ(o.verdict, want) << from << " -> " << to << " tcp/" << port << ": " << o.decided_by;
  }
  for (auto to : {"vm100", "vm102", "host", "outside"})
    EXPECT_EQ(run({.from = "vm101", .to = to, .protocol = "udp", .dport = 514}).verdict, V::Reject)
        << to;
  EXPECT_TRUE(compiled->warnings.empty());
  // Bridged by fwbr101i0, vmbr0 and fwbr100i0: the stash runs on each.
  auto o = run({.from = "vm101", .to = "vm100", .protocol = "tcp", .dport = 22});
  EXPECT_EQ(std::count_if(o.trace.begin(), o.trace.end(),
                          [](const Step& s) { return s.chain == "stash-prerouting"; }),
            3);
  // An OUT REJECT on a firewall bridge: flooded over its link into vmbr0, whose reject port
  // answers it.
  o = run({.from = "vm101", .to = "vm100", .protocol = "tcp", .dport = 3306});
  EXPECT_EQ(o.decided_by, "firewall/101.fw:6");
  EXPECT_TRUE(std::any_of(o.trace.begin(), o.trace.end(),
                          [](const Step& s) { return s.chain == "answer-vmbr0"; }));
  // The bridge layout's REJECTs are answered by the inet chains, which this does not suit.
  auto bridge_layout = compile(config_, CompileOptions{.layout = GuestLayout::Bridge});
  ASSERT_TRUE(bridge_layout);
  ASSERT_EQ(bridge_layout->warnings.size(), 1u);
  EXPECT_NE(bridge_layout->warnings[0].find(
                "fwbr100i0 joins vmbr0: the bridge layout does not answer the REJECTs"),
            std::string::npos)
      << bridge_layout->warnings[0];
}

// A guest's plugging changes how its frames travel, not the ruleset: the netdev layout gives a
// guest on its firewall bridge in front of a Linux bridge the very rules it gives that guest on
// the bridge itself. So a guest that Proxmox starts on a firewall bridge after an apply, which
// the apply took to be on the bridge (it was not running), is filtered and answered as it
// should be, with no apply again.
TEST_F(SimulatorTest, TheRulesetDoesNotDependOnWhetherAGuestIsOnItsFirewallBridge) {
  cluster("[OPTIONS]\nenable: 1\npolicy_forward: DROP\n");
  vm(100,
     "[OPTIONS]\nenable: 1\nlog_level_out: info\n\n[RULES]\nIN REJECT -p tcp -dport 25\n"
     "OUT REJECT -p udp -dport 514 -log info\n");
  vm(101, "[OPTIONS]\nenable: 1\n\n[RULES]\nOUT REJECT -p tcp -dport 3306\n",
     "net0: virtio=BC:24:11:00:01:01,bridge=vmbr0,firewall=1,tag=10\n");
  FirewallConfig on_fwbr = config_;
  plug_nics(config_, {});
  auto direct = compile(config_, CompileOptions{});
  ASSERT_TRUE(direct) << direct.error().to_string();
  plug_nics(on_fwbr, {.firewall_bridged = {"tap100i0", "tap101i0"}});
  ASSERT_EQ(on_fwbr.guests[101].nics[0].uplink, "vmbr0v10");
  auto plugged = compile(on_fwbr, CompileOptions{});
  ASSERT_TRUE(plugged) << plugged.error().to_string();
  EXPECT_EQ(nft::to_nft_text(plugged->ruleset), nft::to_nft_text(direct->ruleset));
  EXPECT_EQ(plugged->reject_port_bridges, direct->reject_port_bridges);
}

}  // namespace
}  // namespace moat::firewall::sim
