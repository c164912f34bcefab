// find_dead_rules(): pairwise shadowing inside each chain of the compiled IR. A rule R is dead
// when an earlier terminal rule E matches a superset of R's packets, which we only claim when
// each match of E is implied by a match of R (a syntactic, sound but incomplete test).
#include "moat/firewall/analysis.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "compile_internal.h"
#include "moat/firewall/names.h"

namespace moat::firewall {

namespace {

using nft::Bytes;
using nft::Field;
using nft::Interval;
using nft::Match;
using nft::VerdictCode;

// Sorted, disjoint, non-adjacent intervals of one field.
using Values = std::vector<Interval>;

bool is_user_origin(const std::string& origin) { return origin.find(".fw:") != std::string::npos; }

// The verdict a netdev OUT rule records (a jump to a record chain), if it is one.
std::optional<std::string> recorded(const nft::Verdict& v) {
  if (v.code != VerdictCode::Jump) return std::nullopt;
  for (auto verdict : {Verdict::Accept, Verdict::Drop, Verdict::Reject})
    if (v.chain == detail::record_chain(verdict)) return std::string(to_string(verdict));
  if (v.chain == detail::record_chain(std::nullopt)) return std::string("DEFER");
  return std::nullopt;
}

// Whether the rule ends the evaluation of its chain for every packet it matches.
bool is_terminal(const nft::Rule& r) {
  if (r.limit || r.update || !r.vmap.empty()) return false;
  switch (r.verdict.code) {
    case VerdictCode::Accept:
    case VerdictCode::Drop:
    case VerdictCode::Goto:
    case VerdictCode::RejectTcpReset:
    case VerdictCode::RejectPortUnreach:
    case VerdictCode::RejectAdminProhibited:
      return true;
    case VerdictCode::Jump:
      // do-reject and the netdev layout's OUT verdict recorders end in a verdict for every
      // packet; any other chain may return.
      return r.verdict.chain == names::kDoReject || recorded(r.verdict).has_value();
    case VerdictCode::None:
    case VerdictCode::Return:
      return false;
  }
  return false;
}

std::string verdict_name(const nft::Verdict& v) {
  if (auto rec = recorded(v)) return *rec;
  switch (v.code) {
    case VerdictCode::Accept:
      return "ACCEPT";
    case VerdictCode::Drop:
      return "DROP";
    case VerdictCode::Goto:
      return "GOTO " + v.chain;
    case VerdictCode::Jump:
    case VerdictCode::RejectTcpReset:
    case VerdictCode::RejectPortUnreach:
    case VerdictCode::RejectAdminProhibited:
      return "REJECT";
    case VerdictCode::None:
    case VerdictCode::Return:
      break;
  }
  return "?";
}

// Whether byte-wise order of the field's values is its numeric order, so that ranges and
// containment mean what they say. Mark and ct state are host-order integers.
bool ordered(Field f) {
  return f != Field::Mark && f != Field::CtState && f != Field::FibSaddrType;
}

// Sorts and merges overlapping or adjacent intervals.
Values normalize(Values v) {
  merge_intervals(v);
  return v;
}

// The values a match compares its field with, when they are known and well-formed: one
// ordered field, every bound of the field's size, lo <= hi, at least one interval.
class ValueResolver {
 public:
  explicit ValueResolver(const nft::Table& table) : table_(table) {}

  std::optional<Values> resolve(const Match& m) {
    if (m.fields.size() != 1 || !ordered(m.fields[0])) return std::nullopt;
    switch (m.op) {
      case Match::Op::Eq:
      case Match::Op::Neq:
        if (!m.set.empty() || m.values.size() != 1) return std::nullopt;
        return checked(m.fields[0], m.values);
      case Match::Op::In:
      case Match::Op::NotIn:
        if (m.set.empty()) return checked(m.fields[0], m.values);
        return named(m.set, m.fields[0]);
      default:
        return std::nullopt;
    }
  }

 private:
  static std::optional<Values> checked(Field f, const Values& values) {
    if (values.empty()) return std::nullopt;
    size_t n = nft::field_size(f);
    for (const auto& i : values)
      if (i.lo.size() != n || i.hi.size() != n || i.hi < i.lo) return std::nullopt;
    return normalize(values);
  }

  const std::optional<Values>& named(const std::string& name, Field f) {
    auto key = std::make_pair(name, f);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    std::optional<Values> v;
    auto s = table_.sets.find(name);
    if (s != table_.sets.end() && s->second.kind == nft::Set::Kind::Set &&
        s->second.key == std::vector<Field>{f}) {
      Values all;
      bool ok = true;
      for (const auto& e : s->second.elements) {
        if (e.key.size() != 1) ok = false;
        if (!ok) break;
        all.push_back(e.key[0]);
      }
      if (ok) v = checked(f, all);
    }
    return cache_.emplace(key, std::move(v)).first->second;
  }

  const nft::Table& table_;
  std::map<std::pair<std::string, Field>, std::optional<Values>> cache_;
};

// Every interval of `inner` lies within one interval of `outer`.
bool contained(const Values& inner, const Values& outer) {
  for (const auto& i : inner) {
    auto it = std::upper_bound(outer.begin(), outer.end(), i.lo,
                               [](const Bytes& v, const Interval& o) { return v < o.lo; });
    if (it == outer.begin()) return false;
    --it;
    if (it->hi < i.hi) return false;
  }
  return true;
}

// No interval of `a` overlaps an interval of `b`.
bool disjoint(const Values& a, const Values& b) {
  for (const auto& i : a) {
    auto it = std::lower_bound(b.begin(), b.end(), i.lo,
                               [](const Interval& o, const Bytes& v) { return o.hi < v; });
    if (it != b.end() && it->lo <= i.hi) return false;
  }
  return true;
}

bool positive(Match::Op op) { return op == Match::Op::Eq || op == Match::Op::In; }
bool negative(Match::Op op) { return op == Match::Op::Neq || op == Match::Op::NotIn; }

// A match with its resolved values, computed once per rule.
struct Resolved {
  const Match* match;
  std::optional<Values> values;
};

// Whether every packet matching `r` also matches `e`.
bool implies(const Resolved& r, const Resolved& e) {
  const Match& mr = *r.match;
  const Match& me = *e.match;
  if (mr == me) return true;
  if (mr.fields != me.fields) return false;
  if (mr.op == Match::Op::BitsAny && me.op == Match::Op::BitsAny)
    return mr.mask != 0 && (mr.mask & ~me.mask) == 0;
  if (mr.op == Match::Op::BitsNone && me.op == Match::Op::BitsNone)
    return (me.mask & ~mr.mask) == 0;
  if (!r.values || !e.values) return false;
  if (positive(mr.op) && positive(me.op)) return contained(*r.values, *e.values);
  if (positive(mr.op) && negative(me.op)) return disjoint(*r.values, *e.values);
  // R excludes at least what E excludes.
  if (negative(mr.op) && negative(me.op)) return contained(*e.values, *r.values);
  return false;
}

bool shadows(const std::vector<Resolved>& e, const std::vector<Resolved>& r) {
  return std::all_of(e.begin(), e.end(), [&](const Resolved& me) {
    return std::any_of(r.begin(), r.end(), [&](const Resolved& mr) { return implies(mr, me); });
  });
}

// What is known about one user rule over all the IR rules compiled from it.
struct OriginState {
  bool all_dead = true;
  bool decides = false;  // some IR rule has a verdict (not only a log statement)
  std::string message;   // from the first dead IR rule
};

}  // namespace

std::vector<std::string> find_dead_rules(const nft::Ruleset& ruleset) {
  // Ordered by first appearance would depend on table names; a map keeps it deterministic.
  std::map<std::string, OriginState> origins;
  for (const auto& [_, table] : ruleset.tables) {
    ValueResolver resolver(table);
    for (const auto& [_, chain] : table.chains) {
      std::vector<std::vector<Resolved>> resolved;
      resolved.reserve(chain.rules.size());
      for (const auto& rule : chain.rules) {
        auto& matches = resolved.emplace_back();
        for (const auto& m : rule.matches) matches.push_back({&m, resolver.resolve(m)});
      }
      std::vector<size_t> killers;  // earlier terminal rules from user files, in order
      for (size_t i = 0; i < chain.rules.size(); ++i) {
        const nft::Rule& r = chain.rules[i];
        if (is_user_origin(r.origin)) {
          OriginState& state = origins[r.origin];
          state.decides = state.decides || r.verdict.code != VerdictCode::None || !r.vmap.empty();
          std::optional<size_t> killer;
          // A copy killed by an earlier copy of the same user rule counts as dead too: that
          // copy is itself dead or the user rule is live, and the message comes from the
          // first dead copy, whose killer is another rule.
          for (size_t k : killers) {
            if (shadows(resolved[k], resolved[i])) {
              killer = k;
              break;
            }
          }
          if (!killer) {
            state.all_dead = false;
          } else if (state.message.empty()) {
            const nft::Rule& e = chain.rules[*killer];
            state.message = e.matches.empty() ? r.origin + ": rule is unreachable after " + e.origin
                                              : r.origin + ": rule never matches: shadowed by " +
                                                    e.origin + " (" + verdict_name(e.verdict) + ")";
          }
        }
        if (is_terminal(r) && is_user_origin(r.origin)) killers.push_back(i);
      }
    }
  }
  std::set<std::string> out;
  for (const auto& [_, state] : origins)
    if (state.all_dead && state.decides) out.insert(state.message);
  return {out.begin(), out.end()};
}

}  // namespace moat::firewall
