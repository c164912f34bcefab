#include "moat/firewall/analysis.h"

#include <gtest/gtest.h>

#include "config_fixture.h"

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moat/firewall/compiler.h"
#include "moat/firewall/parser.h"

namespace moat::firewall {
namespace {

using Findings = std::vector<std::string>;

// Builds a FirewallConfig from file texts, compiles it and analyses the compiled ruleset.
class AnalysisTest : public testing::ConfigFixture {
 protected:
  // The rules of VM 100 start on line 3 of its file.
  void vm_rules(std::string_view rules) {
    vm(100, "[OPTIONS]\nenable: 1\n[RULES]\n" + std::string(rules));
  }

  Findings dead() {
    auto compiled = compile(config_, CompileOptions{});
    if (!compiled) {
      ADD_FAILURE() << compiled.error().to_string();
      return {};
    }
    return find_dead_rules(compiled->ruleset);
  }
};

TEST_F(AnalysisTest, BroaderAcceptShadowsLaterPortRule) {
  vm_rules("IN ACCEPT -p tcp\nIN DROP -p tcp -dport 22\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (ACCEPT)"});
}

TEST_F(AnalysisTest, SameMatchWithOtherVerdictIsShadowed) {
  vm_rules("IN DROP -p tcp -dport 22\nIN ACCEPT -p tcp -dport 22\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (DROP)"});
}

TEST_F(AnalysisTest, PortRangeShadowsPortInside) {
  vm_rules("IN ACCEPT -p tcp -dport 1000:2000\nIN DROP -p tcp -dport 1500\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (ACCEPT)"});
}

TEST_F(AnalysisTest, PortRangeDoesNotShadowPortOutside) {
  vm_rules("IN ACCEPT -p tcp -dport 1000:2000\nIN DROP -p tcp -dport 2001\n");
  EXPECT_EQ(dead(), Findings{});
}

TEST_F(AnalysisTest, PortListShadowsPortInList) {
  vm_rules("IN ACCEPT -p tcp -dport 22,80,443\nIN DROP -p tcp -dport 80\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (ACCEPT)"});
}

TEST_F(AnalysisTest, EarlierRuleWithSourceTheLaterLacksDoesNotShadow) {
  vm_rules("IN ACCEPT -p tcp -source 10.0.0.0/8\nIN DROP -p tcp -dport 22\n");
  EXPECT_EQ(dead(), Findings{});
}

TEST_F(AnalysisTest, NarrowerSourceInsideEarlierSourceIsShadowed) {
  vm_rules("IN ACCEPT -source 10.0.0.0/8\nIN DROP -p tcp -source 10.1.2.3\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (ACCEPT)"});
}

TEST_F(AnalysisTest, DifferentProtocolsDoNotShadow) {
  vm_rules("IN ACCEPT -p udp -dport 53\nIN DROP -p tcp -dport 53\n");
  EXPECT_EQ(dead(), Findings{});
}

TEST_F(AnalysisTest, RuleAfterMatchAllIsUnreachable) {
  vm_rules("IN ACCEPT\nIN DROP -p tcp -dport 22\nIN DROP -p udp\n");
  EXPECT_EQ(dead(), (Findings{"firewall/100.fw:5: rule is unreachable after firewall/100.fw:4",
                              "firewall/100.fw:6: rule is unreachable after firewall/100.fw:4"}));
}

TEST_F(AnalysisTest, RuleWithLogIsReportedOnceForItsVerdict) {
  // Line 4 compiles to a log rule and a DROP rule; line 5 is shadowed by the DROP, and the
  // log rule of line 4 is neither a finding of its own nor a second one for line 5.
  vm_rules("IN DROP -p tcp -dport 22 -log warning\nIN ACCEPT -p tcp -dport 22 -log info\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (DROP)"});
}

TEST_F(AnalysisTest, GroupJumpIsNotTerminal) {
  cluster("[OPTIONS]\nenable: 1\n[group web]\nIN ACCEPT -p tcp -dport 80\n");
  vm_rules("GROUP web\nIN DROP -p tcp -dport 80\n");
  EXPECT_EQ(dead(), Findings{});
}

TEST_F(AnalysisTest, GroupRuleIsUnreachableOnlyWhenBothDirectionsAre) {
  cluster("[OPTIONS]\nenable: 1\n[group web]\nIN ACCEPT -p tcp -dport 80\n");
  // A GROUP jumps from the IN and the OUT chain: an IN ACCEPT leaves the OUT jump live.
  vm_rules("IN ACCEPT\nGROUP web\n");
  EXPECT_EQ(dead(), Findings{});
  vm_rules("IN ACCEPT\nOUT ACCEPT\nGROUP web\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:6: rule is unreachable after firewall/100.fw:4"});
}

TEST_F(AnalysisTest, MacroShadowsEquivalentPlainRule) {
  vm_rules("IN SSH(ACCEPT)\nIN ACCEPT -p tcp -dport 22\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (ACCEPT)"});
}

TEST_F(AnalysisTest, RejectIsTerminal) {
  vm_rules("IN REJECT -p tcp -dport 3306\nIN ACCEPT -p tcp -dport 3306\n");
  EXPECT_EQ(dead(), Findings{"firewall/100.fw:5: rule never matches: shadowed by "
                             "firewall/100.fw:4 (REJECT)"});
}

TEST_F(AnalysisTest, PartlyShadowedMultiFamilyRuleIsNotReported) {
  // Ping expands to an ICMP rule (shadowed by line 4) and an ICMPv6 rule (live).
  vm_rules("IN ACCEPT -p icmp\nIN Ping(DROP)\n");
  EXPECT_EQ(dead(), Findings{});
}

TEST_F(AnalysisTest, HostRulesAreAnalysedToo) {
  host("[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT -p tcp -dport 22\nIN DROP -p tcp -dport 22\n");
  EXPECT_EQ(dead(), Findings{"nodes/node1/host.fw:5: rule never matches: shadowed by "
                             "nodes/node1/host.fw:4 (ACCEPT)"});
}

TEST_F(AnalysisTest, DirectionsAreSeparateChains) {
  vm_rules("OUT ACCEPT -p tcp\nIN DROP -p tcp -dport 22\n");
  EXPECT_EQ(dead(), Findings{});
}

// ---- on hand-built IR: the terminal-verdict rules ----

nft::Match tcp_dport(uint16_t lo, uint16_t hi) {
  return nft::Match{
      {nft::Field::Dport}, nft::Match::Op::Eq, {{nft::be16(lo), nft::be16(hi)}}, {}, 0};
}
nft::Match l4(uint8_t proto) {
  return nft::Match{
      {nft::Field::L4proto}, nft::Match::Op::Eq, {nft::single(nft::u8(proto))}, {}, 0};
}

nft::Rule rule(std::vector<nft::Match> m, nft::VerdictCode v, std::string origin,
               std::string chain = {}) {
  nft::Rule r;
  r.matches = std::move(m);
  r.verdict = {v, std::move(chain)};
  r.origin = std::move(origin);
  return r;
}

Findings analyse(std::vector<nft::Rule> rules, std::map<std::string, nft::Set> sets = {}) {
  nft::Ruleset rs;
  nft::Table& t = rs.table(nft::Family::Inet, "moat");
  t.sets = std::move(sets);
  t.chains["c"] = nft::Chain{"c", std::nullopt, std::move(rules)};
  return find_dead_rules(rs);
}

TEST(AnalysisIrTest, LogOnlyRuleIsNotTerminalNorReported) {
  nft::Rule log = rule({l4(6)}, nft::VerdictCode::None, "a.fw:1");
  log.log = nft::Log{"x", 0};
  EXPECT_EQ(analyse({log, rule({l4(6), tcp_dport(22, 22)}, nft::VerdictCode::Accept, "a.fw:2"),
                     rule({l4(6), tcp_dport(22, 22)}, nft::VerdictCode::None, "a.fw:3")}),
            Findings{});
  log.origin = "a.fw:4";
  // After a terminal rule a log-only rule is dead, but only rules with a verdict are reported.
  EXPECT_EQ(analyse({rule({l4(6)}, nft::VerdictCode::Drop, "a.fw:1"), log}), Findings{});
}

TEST(AnalysisIrTest, LimitedRuleIsNotTerminal) {
  nft::Rule limited = rule({l4(6)}, nft::VerdictCode::Accept, "a.fw:1");
  limited.limit = nft::Limit{};
  EXPECT_EQ(analyse({limited, rule({l4(6), tcp_dport(22, 22)}, nft::VerdictCode::Drop, "a.fw:2")}),
            Findings{});
}

TEST(AnalysisIrTest, OnlyJumpToDoRejectIsTerminal) {
  auto later = rule({l4(6), tcp_dport(22, 22)}, nft::VerdictCode::Accept, "a.fw:2");
  EXPECT_EQ(analyse({rule({l4(6)}, nft::VerdictCode::Jump, "a.fw:1", "group-x-in"), later}),
            Findings{});
  EXPECT_EQ(analyse({rule({l4(6)}, nft::VerdictCode::Jump, "a.fw:1", "do-reject"), later}),
            Findings{"a.fw:2: rule never matches: shadowed by a.fw:1 (REJECT)"});
  EXPECT_EQ(analyse({rule({l4(6)}, nft::VerdictCode::Return, "a.fw:1"), later}), Findings{});
}

TEST(AnalysisIrTest, RulesWithoutUserOriginAreNeitherReportedNorShadowers) {
  auto r = [](std::string origin) { return rule({l4(6)}, nft::VerdictCode::Accept, origin); };
  EXPECT_EQ(analyse({r("policy"), r("a.fw:2")}), Findings{});
  EXPECT_EQ(analyse({r("a.fw:1"), r("policy")}), Findings{});
}

TEST(AnalysisIrTest, PortInNamedSetIsShadowedByEnclosingRange) {
  nft::Set ports{.name = "p", .key = {nft::Field::Dport}};
  ports.elements = {{{nft::single(nft::be16(80))}}, {{nft::single(nft::be16(443))}}};
  nft::Match in_set{{nft::Field::Dport}, nft::Match::Op::In, {}, "p", 0};
  EXPECT_EQ(analyse({rule({l4(6), tcp_dport(1, 1023)}, nft::VerdictCode::Drop, "a.fw:1"),
                     rule({l4(6), in_set}, nft::VerdictCode::Accept, "a.fw:2")},
                    {{"p", ports}}),
            Findings{"a.fw:2: rule never matches: shadowed by a.fw:1 (DROP)"});
  EXPECT_EQ(analyse({rule({l4(6), tcp_dport(1, 100)}, nft::VerdictCode::Drop, "a.fw:1"),
                     rule({l4(6), in_set}, nft::VerdictCode::Accept, "a.fw:2")},
                    {{"p", ports}}),
            Findings{});
}

TEST(AnalysisIrTest, ValueOutsideExcludedSetImpliesNegation) {
  nft::Match not_22{{nft::Field::Dport}, nft::Match::Op::Neq, {nft::single(nft::be16(22))}, {}, 0};
  EXPECT_EQ(analyse({rule({l4(6), not_22}, nft::VerdictCode::Drop, "a.fw:1"),
                     rule({l4(6), tcp_dport(80, 80)}, nft::VerdictCode::Accept, "a.fw:2")}),
            Findings{"a.fw:2: rule never matches: shadowed by a.fw:1 (DROP)"});
  EXPECT_EQ(analyse({rule({l4(6), not_22}, nft::VerdictCode::Drop, "a.fw:1"),
                     rule({l4(6), tcp_dport(20, 30)}, nft::VerdictCode::Accept, "a.fw:2")}),
            Findings{});
  // Below the excluded value, too.
  EXPECT_EQ(analyse({rule({l4(6), not_22}, nft::VerdictCode::Drop, "a.fw:1"),
                     rule({l4(6), tcp_dport(10, 21)}, nft::VerdictCode::Accept, "a.fw:2")}),
            Findings{"a.fw:2: rule never matches: shadowed by a.fw:1 (DROP)"});
}

TEST(AnalysisIrTest, IdenticalOpaqueMatchesShadow) {
  // A concatenated set lookup and a ct state test are only compared for identity.
  nft::Match pair{{nft::Field::Iifname, nft::Field::Oifname}, nft::Match::Op::In, {}, "pairs", 0};
  nft::Match ct{{nft::Field::CtState}, nft::Match::Op::BitsAny, {}, {}, nft::kCtNew};
  EXPECT_EQ(analyse({rule({pair, ct}, nft::VerdictCode::Accept, "a.fw:1"),
                     rule({l4(6), ct, pair}, nft::VerdictCode::Drop, "a.fw:2")}),
            Findings{"a.fw:2: rule never matches: shadowed by a.fw:1 (ACCEPT)"});
  nft::Match other{{nft::Field::Iifname, nft::Field::Oifname}, nft::Match::Op::In, {}, "pairs2", 0};
  EXPECT_EQ(analyse({rule({pair, ct}, nft::VerdictCode::Accept, "a.fw:1"),
                     rule({l4(6), ct, other}, nft::VerdictCode::Drop, "a.fw:2")}),
            Findings{});
}

TEST(AnalysisIrTest, NarrowerCtStateImpliesWider) {
  auto ct = [](uint32_t mask) {
    return nft::Match{{nft::Field::CtState}, nft::Match::Op::BitsAny, {}, {}, mask};
  };
  uint32_t est_rel = nft::kCtEstablished | nft::kCtRelated;
  EXPECT_EQ(analyse({rule({ct(est_rel)}, nft::VerdictCode::Accept, "a.fw:1"),
                     rule({ct(nft::kCtRelated), l4(6)}, nft::VerdictCode::Drop, "a.fw:2")}),
            Findings{"a.fw:2: rule never matches: shadowed by a.fw:1 (ACCEPT)"});
  EXPECT_EQ(analyse({rule({ct(nft::kCtRelated)}, nft::VerdictCode::Accept, "a.fw:1"),
                     rule({ct(est_rel), l4(6)}, nft::VerdictCode::Drop, "a.fw:2")}),
            Findings{});
}

TEST(AnalysisIrTest, HostOrderMarkRangesAreNotCompared) {
  // Mark values are host-order bytes: byte order is not numeric order, so no containment.
  nft::Match wide{
      {nft::Field::Mark}, nft::Match::Op::Eq, {{nft::host32(0), nft::host32(0x1ff)}}, {}, 0};
  nft::Match one{{nft::Field::Mark}, nft::Match::Op::Eq, {nft::single(nft::host32(0x100))}, {}, 0};
  EXPECT_EQ(analyse({rule({wide}, nft::VerdictCode::Accept, "a.fw:1"),
                     rule({one}, nft::VerdictCode::Drop, "a.fw:2")}),
            Findings{});
}

}  // namespace
}  // namespace moat::firewall
