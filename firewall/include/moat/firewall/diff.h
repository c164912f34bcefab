// The diff step: from the ruleset last applied (or nothing) to the desired one, an ordered
// list of nftables operations that the netlink driver sends as one atomic batch. Changes are
// rule- and element-granular, so changing one guest's rule deletes and inserts that rule only,
// and an unchanged input gives an empty plan. Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "moat/firewall/ir.h"

namespace moat::firewall::nft {

struct Op {
  enum class Kind {
    AddTable,
    DeleteTable,
    AddChain,  // chain (base chains carry hook, priority, policy)
    DeleteChain,
    FlushChain,
    AddRule,     // appended to chain `name`, or inserted before the rule at `index`
    DeleteRule,  // the rule at `index` of chain `name` (`rule`: what it is, for messages)
    AddSet,      // definition only; elements follow in AddElements
    DeleteSet,
    AddElements,
    DeleteElements,
    AddHelper,  // helper (a table's helpers change only with the whole table)
  };
  Kind kind = Kind::AddTable;
  Family family = Family::Inet;
  std::string table;
  std::string name;  // chain or set name
  // The objects an op adds or refers to live in the ruleset the plan was made from (not
  // copied: a full apply's plan holds every rule of the ruleset). Keep that ruleset alive and
  // unchanged while the plan is in use.
  const BaseChain* base = nullptr;  // AddChain of a base chain
  const Rule* rule = nullptr;       // AddRule, DeleteRule: the rule
  // AddRule/DeleteRule: a position in chain `name` as applied before this plan (the driver
  // resolves it to the kernel's rule handle); -1: none (AddRule appends).
  int index = -1;
  // AddSet: the set to define (its elements follow in AddElements); Add/DeleteElements: the
  // set whose key and kind the elements have.
  const Set* set = nullptr;
  std::vector<SetElement> elements;  // Add/DeleteElements
  const CtHelper* helper = nullptr;  // AddHelper
};

using Plan = std::vector<Op>;

// Orders: element deletions, chain flushes and rule deletions, chain/set/table deletions, then
// additions of
// tables, sets, chains, elements and rules, so every reference exists when it is added and
// nothing is deleted while still referenced. A chain whose rules changed keeps its common
// first and last rules; the ones between are deleted and the new ones inserted in their place
// (flushed and re-added when nothing is common).
Plan diff(const Ruleset& applied, const Ruleset& desired);
// A plan points into both rulesets: temporaries would leave it dangling.
Plan diff(Ruleset&& applied, const Ruleset& desired) = delete;
Plan diff(const Ruleset& applied, Ruleset&& desired) = delete;

// The plan that creates `desired` where nothing of it exists: diff() from an empty ruleset.
Plan creation(const Ruleset& desired);
Plan creation(Ruleset&& desired) = delete;

// A named object of a ruleset: a chain or a set of table `table` ("inet moat").
struct ObjectRef {
  std::string table;
  bool is_set = false;
  std::string name;
  friend auto operator<=>(const ObjectRef&, const ObjectRef&) = default;
};

// diff() restricted to `touched` objects (what an incremental recompile changed): the cost is
// that of the touched objects, not of the ruleset. A touched table that does not exist in
// `applied` is created with all its objects.
Plan diff(const Ruleset& applied, const Ruleset& desired, const std::vector<ObjectRef>& touched);
Plan diff(Ruleset&& applied, const Ruleset& desired, const std::vector<ObjectRef>&) = delete;
Plan diff(const Ruleset& applied, Ruleset&& desired, const std::vector<ObjectRef>&) = delete;

// Copies the `touched` objects of `desired` into `applied` (removing those gone), so `applied`
// again mirrors the kernel after the plan of the same objects was committed.
void patch(Ruleset& applied, const Ruleset& desired, const std::vector<ObjectRef>& touched);

// One line per operation, in nft-like syntax ("add rule inet moat input ...").
std::string to_string(const Plan& plan);

}  // namespace moat::firewall::nft
