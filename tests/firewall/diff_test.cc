// The diff of set elements: element-granular, one op per direction and set, and nothing for a
// set whose elements are the same.
#include "moat/firewall/diff.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace moat::firewall::nft {
namespace {

SetElement port(uint16_t p, Verdict verdict = {}) {
  return {.key = {single(be16(p))}, .verdict = std::move(verdict)};
}

// A table `inet moat` with one verdict map `ports` holding these elements (sorted here).
Ruleset with_ports(std::vector<SetElement> elements) {
  Ruleset rs;
  Set& s = rs.table(Family::Inet, "moat").sets["ports"];
  s.name = "ports";
  s.kind = Set::Kind::Vmap;
  s.key = {Field::Dport};
  std::sort(elements.begin(), elements.end());
  s.elements = std::move(elements);
  return rs;
}

std::vector<SetElement> elements_of(const Plan& plan, Op::Kind kind) {
  std::vector<SetElement> out;
  for (const Op& op : plan)
    if (op.kind == kind) out.insert(out.end(), op.elements.begin(), op.elements.end());
  return out;
}

const Verdict kAccept{VerdictCode::Accept, {}};
const Verdict kDrop{VerdictCode::Drop, {}};

TEST(DiffTest, SetElementsAddedRemovedAndChangedAreOneOpEach) {
  Ruleset applied = with_ports({port(22, kAccept), port(25, kDrop), port(80, kAccept)});
  Ruleset desired = with_ports({port(22, kAccept), port(25, kAccept), port(443, kAccept)});
  Plan plan = diff(applied, desired);
  ASSERT_EQ(plan.size(), 2u);
  // Deletions come first: an element whose verdict changed goes, then comes back.
  EXPECT_EQ(plan[0].kind, Op::Kind::DeleteElements);
  EXPECT_EQ(plan[1].kind, Op::Kind::AddElements);
  EXPECT_EQ(elements_of(plan, Op::Kind::DeleteElements),
            (std::vector<SetElement>{port(25, kDrop), port(80, kAccept)}));
  EXPECT_EQ(elements_of(plan, Op::Kind::AddElements),
            (std::vector<SetElement>{port(25, kAccept), port(443, kAccept)}));
}

TEST(DiffTest, ElementsBeyondTheOtherSidesEndAreAddedOrRemoved) {
  Ruleset few = with_ports({port(22, kAccept)});
  Ruleset more = with_ports({port(22, kAccept), port(80, kAccept), port(443, kDrop)});
  EXPECT_EQ(elements_of(diff(few, more), Op::Kind::AddElements),
            (std::vector<SetElement>{port(80, kAccept), port(443, kDrop)}));
  EXPECT_TRUE(elements_of(diff(few, more), Op::Kind::DeleteElements).empty());
  EXPECT_EQ(elements_of(diff(more, few), Op::Kind::DeleteElements),
            (std::vector<SetElement>{port(80, kAccept), port(443, kDrop)}));
  Ruleset none = with_ports({});
  EXPECT_EQ(elements_of(diff(none, few), Op::Kind::AddElements),
            few.tables.begin()->second.sets.at("ports").elements);
}

TEST(DiffTest, TheSameElementsGiveNoOp) {
  Ruleset a = with_ports({port(22, kAccept), port(80, kDrop)});
  Ruleset b = a;
  EXPECT_TRUE(diff(a, b).empty());
  EXPECT_TRUE(diff(a, b, {{"inet moat", true, "ports"}}).empty());
}

}  // namespace
}  // namespace moat::firewall::nft
