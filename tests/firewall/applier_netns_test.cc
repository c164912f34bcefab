// The Applier against a real kernel: what it remembers of its last apply (the state file and
// the nftables generation) and what it does when someone else commits in the namespace,
// before a plan or between a plan and its batch.
#include "moat/firewall/applier.h"

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <set>

#include "harness/netns.h"
#include "moat/firewall/names.h"

namespace moat::firewall {
namespace {

// A table `inet moat` whose input chain accepts these TCP ports.
nft::Ruleset accepting(std::initializer_list<uint16_t> ports) {
  nft::Ruleset rs;
  nft::Chain& c = rs.table(nft::Family::Inet, "moat").chains["input"];
  c.name = "input";
  c.base = nft::BaseChain{nft::Hook::Input, 0, false};
  for (uint16_t port : ports) {
    nft::Rule r;
    r.matches = {{.fields = {nft::Field::L4proto}, .values = {nft::single(nft::u8(6))}},
                 {.fields = {nft::Field::Dport}, .values = {nft::single(nft::be16(port))}}};
    r.verdict = {nft::VerdictCode::Accept, {}};
    r.origin = "port " + std::to_string(port);
    c.rules.push_back(std::move(r));
  }
  return rs;
}

// A clock that runs `before_batch` the first time the Applier reads the monotonic time,
// which it does right before sending a batch: a commit by someone else lands between the
// plan and the batch.
class InterleavingClock final : public Clock {
 public:
  mutable std::function<void()> before_batch;  // const monotonic() takes it
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point monotonic() const override {
    if (auto f = std::exchange(before_batch, nullptr)) f();
    return std::chrono::steady_clock::now();
  }
};

class ApplierTest : public testing::NetnsTest {
 protected:
  void SetUp() override {
    testing::NetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto node = topo().add_node("node");
    ASSERT_TRUE(node) << node.error().to_string();
    node_ = *node;
  }

  Result<Applier> open(const Clock& clock = SystemClock::instance()) {
    return Applier::open(
        {.netns = node_.ns, .state_dir = std::filesystem::temp_directory_path() / topo().prefix()},
        clock);
  }

  // `nft ARGS...` in the node's namespace, as another tool would run it; its stdout.
  std::string nft(std::vector<std::string> args) {
    args.insert(args.begin(), "nft");
    auto r = topo().exec(node_.ns, args);
    EXPECT_TRUE(r && r->exit_code == 0) << (r ? r->err : r.error().to_string());
    return r ? r->out : "";
  }

  bool link_exists(const std::string& name) {
    auto r = topo().exec(node_.ns, {"ip", "link", "show", "dev", name});
    return r && r->exit_code == 0;
  }

  testing::Node node_;
};

// Where the kernel has bridge conntrack, the probe's batch is valid: committed, it would move
// the generation, and every apply after it would replace our tables whole. Here the kernel
// refuses it either way; NftDriverNetnsTest.CheckValidatesWithoutCommitting checks a valid one.
TEST_F(ApplierTest, TheStrategyProbeCommitsNothing) {
  auto applier = open();
  ASSERT_TRUE(applier) << applier.error().to_string();
  auto before = applier->kernel_generation();
  ASSERT_TRUE(before) << before.error().to_string();
  auto strategy = applier->probe_strategy();
  ASSERT_TRUE(strategy) << strategy.error().to_string();
  EXPECT_EQ(applier->kernel_generation().value_or(0), *before);
  EXPECT_EQ(nft({"list", "tables"}), "");
}

TEST_F(ApplierTest, AnApplyAfterTheProbeIsADiffNotAResync) {
  auto applier = open();
  ASSERT_TRUE(applier) << applier.error().to_string();
  ASSERT_TRUE(applier->apply(accepting({22}), GuestStrategy::BrNetfilter));
  ASSERT_TRUE(applier->probe_strategy());
  auto report = applier->apply(accepting({22, 80}), GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_FALSE(report->resync);
  EXPECT_EQ(report->plan.size(), 1u);  // the one new rule
  auto state = applier->state();
  ASSERT_TRUE(state && *state);
  EXPECT_EQ((*state)->generation, applier->kernel_generation().value_or(0));

  auto again = applier->apply(accepting({22, 80}), GuestStrategy::BrNetfilter);
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_TRUE(again->plan.empty());
  EXPECT_EQ(again->messages, 0u);
}

TEST_F(ApplierTest, SomeoneElsesCommitBeforeThePlanIsReplacedWhole) {
  auto applier = open();
  ASSERT_TRUE(applier) << applier.error().to_string();
  ASSERT_TRUE(applier->apply(accepting({22}), GuestStrategy::BrNetfilter));
  nft({"add", "rule", "inet", "moat", "input", "tcp", "dport", "9999", "accept"});
  auto report = applier->apply(accepting({22}), GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_TRUE(report->resync);
  std::string listed = nft({"list", "table", "inet", "moat"});
  EXPECT_EQ(listed.find("9999"), std::string::npos) << listed;
  EXPECT_NE(listed.find("dport 22"), std::string::npos) << listed;
}

TEST_F(ApplierTest, SomeoneElsesCommitBetweenPlanAndBatchMakesItPlanAgain) {
  InterleavingClock clock;
  auto applier = open(clock);
  ASSERT_TRUE(applier) << applier.error().to_string();
  ASSERT_TRUE(applier->apply(accepting({22}), GuestStrategy::BrNetfilter));
  // The diff (one rule added) is made; then another tool edits our chain before it is sent.
  clock.before_batch = [&] {
    nft({"add", "rule", "inet", "moat", "input", "tcp", "dport", "9999", "accept"});
  };
  auto report = applier->apply(accepting({22, 80}), GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_FALSE(clock.before_batch);  // it ran
  EXPECT_TRUE(report->resync);
  std::string listed = nft({"list", "table", "inet", "moat"});
  EXPECT_EQ(listed.find("9999"), std::string::npos) << listed;
  EXPECT_NE(listed.find("dport 80"), std::string::npos) << listed;
  auto state = applier->state();
  ASSERT_TRUE(state && *state);
  EXPECT_EQ((*state)->generation, applier->kernel_generation().value_or(0));
}

// A state file this version cannot read (another version's format, damage) must not keep
// the node from getting its firewall: the apply replaces every table Moat owns (`moat`,
// `moat-*`), including one the unreadable state alone knew of, and leaves the others.
TEST_F(ApplierTest, AnUnreadableStateFileIsReplacedByAResync) {
  auto applier = open();
  ASSERT_TRUE(applier) << applier.error().to_string();
  nft::Ruleset with_guests = accepting({22});
  nft::Table& guests = with_guests.table(nft::Family::Netdev, "moat-guests-7");
  guests.chains["c"].name = "c";
  ASSERT_TRUE(applier->apply(with_guests, GuestStrategy::BrNetfilter));
  nft({"add", "table", "inet", "someone-else"});
  {
    std::ofstream damaged(applier->state_file(), std::ios::trunc);
    damaged << "{\"ruleset\": {\"tables\": 7}}";
  }
  auto report = applier->apply(accepting({22, 80}), GuestStrategy::BrNetfilter);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_TRUE(report->resync);
  std::string tables = nft({"list", "tables"});
  EXPECT_EQ(tables.find("moat-guests-7"), std::string::npos) << tables;
  EXPECT_NE(tables.find("table inet someone-else\n"), std::string::npos) << tables;
  EXPECT_NE(tables.find("table inet moat\n"), std::string::npos) << tables;
  EXPECT_NE(nft({"list", "table", "inet", "moat"}).find("dport 80"), std::string::npos);
  auto state = applier->state();
  ASSERT_TRUE(state) << state.error().to_string();
  ASSERT_TRUE(*state);
  EXPECT_EQ((*state)->ruleset, accepting({22, 80}));
}

// A guest leaves bridge vmbr1, and the kernel refuses the new ruleset: the ruleset in place
// still forwards vmbr1's rejects to its reject port, so the port stays until an apply succeeds.
TEST_F(ApplierTest, AFailedApplyKeepsTheRejectPortsOfTheRulesetInPlace) {
  for (const char* bridge : {"vmbr0", "vmbr1"})
    ASSERT_TRUE(topo().add_bridge({.node = node_, .name = bridge}));
  auto applier = open();
  ASSERT_TRUE(applier) << applier.error().to_string();
  auto apply = [&](nft::Ruleset ruleset, std::set<std::string> bridges) {
    CompileResult compiled;
    compiled.ruleset = std::move(ruleset);
    compiled.reject_port_bridges = std::move(bridges);
    auto prepared = applier->prepare(compiled);
    EXPECT_TRUE(prepared) << prepared.error().to_string();
    return applier->apply(compiled.ruleset, GuestStrategy::BrNetfilter);
  };
  ASSERT_TRUE(apply(accepting({22}), {"vmbr0", "vmbr1"}));
  EXPECT_TRUE(link_exists(names::reject_port("vmbr1")));

  nft::Ruleset refused = accepting({22, 80});
  nft::Rule to_nowhere;
  to_nowhere.verdict = {nft::VerdictCode::Jump, "nowhere"};
  refused.tables.begin()->second.chains["input"].rules.push_back(to_nowhere);
  EXPECT_FALSE(apply(refused, {"vmbr0"}));
  EXPECT_TRUE(link_exists(names::reject_port("vmbr1")));
  EXPECT_TRUE(link_exists(names::reject_peer("vmbr1")));

  ASSERT_TRUE(apply(accepting({22, 80}), {"vmbr0"}));
  EXPECT_FALSE(link_exists(names::reject_port("vmbr1")));
  EXPECT_FALSE(link_exists(names::reject_peer("vmbr1")));
  EXPECT_TRUE(link_exists(names::reject_port("vmbr0")));
}

}  // namespace
}  // namespace moat::firewall
