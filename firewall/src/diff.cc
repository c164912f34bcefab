#include "moat/firewall/diff.h"

#include <algorithm>
#include <set>

#include "moat/firewall/nft_text.h"

namespace moat::firewall::nft {

namespace {

// Elements of `a` whose key is not in `b` with equal content.
std::vector<SetElement> minus(const std::vector<SetElement>& a, const std::vector<SetElement>& b) {
  std::vector<SetElement> out;
  for (const auto& e : a)
    if (!std::binary_search(b.begin(), b.end(), e) ||
        *std::lower_bound(b.begin(), b.end(), e) != e)
      out.push_back(e);
  return out;
}

bool same_definition(const Set& a, const Set& b) {
  return a.kind == b.kind && a.key == b.key && a.interval == b.interval;
}

bool same_shape(const Table& a, const Table& b) {
  for (const auto& [name, set] : a.sets)
    if (auto it = b.sets.find(name); it != b.sets.end() && !same_definition(set, it->second))
      return false;
  for (const auto& [name, chain] : a.chains)
    if (auto it = b.chains.find(name); it != b.chains.end() && chain.base != it->second.base)
      return false;
  return true;
}

Op op(Op::Kind kind, const Table& t, std::string name = {}) {
  Op o;
  o.kind = kind;
  o.family = t.family;
  o.table = t.name;
  o.name = std::move(name);
  return o;
}

Set definition_of(const Set& s) {
  Set d = s;
  d.elements.clear();
  return d;
}

struct Phases {
  Plan deletes_elements, flushes, deletes, adds_tables, adds_objects, adds_elements, adds_rules;

  void add_set(const Table& t, const Set& s) {
    Op o = op(Op::Kind::AddSet, t, s.name);
    o.set = definition_of(s);
    adds_objects.push_back(std::move(o));
    add_elements(t, s, s.elements);
  }
  void add_elements(const Table& t, const Set& s, std::vector<SetElement> elements) {
    if (elements.empty()) return;
    Op o = op(Op::Kind::AddElements, t, s.name);
    o.set = definition_of(s);
    o.elements = std::move(elements);
    adds_elements.push_back(std::move(o));
  }
  void delete_elements(const Table& t, const Set& s, std::vector<SetElement> elements) {
    if (elements.empty()) return;
    Op o = op(Op::Kind::DeleteElements, t, s.name);
    o.set = definition_of(s);
    o.elements = std::move(elements);
    deletes_elements.push_back(std::move(o));
  }
  void add_chain(const Table& t, const Chain& c) {
    Op o = op(Op::Kind::AddChain, t, c.name);
    o.base = c.base;
    adds_objects.push_back(std::move(o));
    add_rules(t, c);
  }
  void add_rules(const Table& t, const Chain& c) {
    for (const auto& r : c.rules) {
      Op o = op(Op::Kind::AddRule, t, c.name);
      o.rule = r;
      adds_rules.push_back(std::move(o));
    }
  }
  void add_table(const Table& t) {
    adds_tables.push_back(op(Op::Kind::AddTable, t));
    for (const auto& [_, s] : t.sets) add_set(t, s);
    for (const auto& [_, c] : t.chains) add_chain(t, c);
  }

  Plan join() {
    Plan out;
    for (Plan* p : {&deletes_elements, &flushes, &deletes, &adds_tables, &adds_objects,
                    &adds_elements, &adds_rules})
      for (auto& o : *p) out.push_back(std::move(o));
    return out;
  }
};

}  // namespace

Plan diff(const Ruleset& applied, const Ruleset& desired) {
  Phases p;
  for (const auto& [key, old] : applied.tables) {
    auto it = desired.tables.find(key);
    if (it == desired.tables.end() || !same_shape(old, it->second))
      p.deletes.push_back(op(Op::Kind::DeleteTable, old));
  }
  for (const auto& [key, want] : desired.tables) {
    auto it = applied.tables.find(key);
    if (it == applied.tables.end() || !same_shape(it->second, want)) {
      p.add_table(want);
      continue;
    }
    const Table& old = it->second;
    for (const auto& [name, set] : want.sets) {
      auto o = old.sets.find(name);
      if (o == old.sets.end()) {
        p.add_set(want, set);
        continue;
      }
      p.delete_elements(want, set, minus(o->second.elements, set.elements));
      p.add_elements(want, set, minus(set.elements, o->second.elements));
    }
    for (const auto& [name, chain] : want.chains) {
      auto o = old.chains.find(name);
      if (o == old.chains.end()) {
        p.add_chain(want, chain);
      } else if (o->second.rules != chain.rules) {
        p.flushes.push_back(op(Op::Kind::FlushChain, want, name));
        p.add_rules(want, chain);
      }
    }
    for (const auto& [name, chain] : old.chains) {
      if (want.chains.contains(name)) continue;
      if (!chain.rules.empty()) p.flushes.push_back(op(Op::Kind::FlushChain, old, name));
      p.deletes.push_back(op(Op::Kind::DeleteChain, old, name));
    }
    for (const auto& [name, set] : old.sets)
      if (!want.sets.contains(name)) p.deletes.push_back(op(Op::Kind::DeleteSet, old, name));
  }
  // Chains before sets: a removed chain's rules may be the last users of a removed set, and
  // chain deletions must follow the flushes of the chains that jumped to them.
  std::stable_partition(p.deletes.begin(), p.deletes.end(),
                        [](const Op& o) { return o.kind != Op::Kind::DeleteSet; });
  return p.join();
}

namespace {

// A copy of `rs` holding only the touched objects (and the tables they live in).
Ruleset restrict(const Ruleset& rs, const std::vector<ObjectRef>& touched) {
  Ruleset out;
  for (const auto& ref : touched) {
    auto t = rs.tables.find(ref.table);
    if (t == rs.tables.end()) continue;
    Table& mini = out.table(t->second.family, t->second.name);
    if (ref.is_set) {
      if (auto s = t->second.sets.find(ref.name); s != t->second.sets.end()) mini.sets[ref.name] = s->second;
    } else if (auto c = t->second.chains.find(ref.name); c != t->second.chains.end()) {
      mini.chains[ref.name] = c->second;
    }
  }
  return out;
}

}  // namespace

Plan diff(const Ruleset& applied, const Ruleset& desired, const std::vector<ObjectRef>& touched) {
  Ruleset a = restrict(applied, touched);
  Ruleset d = restrict(desired, touched);
  // A table that exists on both sides must not be deleted because the restriction emptied it.
  for (const auto& [key, table] : d.tables)
    if (applied.tables.contains(key)) a.table(table.family, table.name);
  for (const auto& [key, table] : a.tables)
    if (desired.tables.contains(key)) d.table(table.family, table.name);
  return diff(a, d);
}

void patch(Ruleset& applied, const Ruleset& desired, const std::vector<ObjectRef>& touched) {
  for (const auto& ref : touched) {
    auto dt = desired.tables.find(ref.table);
    if (dt == desired.tables.end()) {
      applied.tables.erase(ref.table);
      continue;
    }
    Table& at = applied.table(dt->second.family, dt->second.name);
    if (ref.is_set) {
      if (auto s = dt->second.sets.find(ref.name); s != dt->second.sets.end()) at.sets[ref.name] = s->second;
      else at.sets.erase(ref.name);
    } else if (auto c = dt->second.chains.find(ref.name); c != dt->second.chains.end()) {
      at.chains[ref.name] = c->second;
    } else {
      at.chains.erase(ref.name);
    }
  }
}

std::string to_string(const Plan& plan) {
  std::string out;
  for (const auto& o : plan) {
    std::string where = std::string(to_string(o.family)) + " " + o.table;
    switch (o.kind) {
      case Op::Kind::AddTable: out += "add table " + where; break;
      case Op::Kind::DeleteTable: out += "delete table " + where; break;
      case Op::Kind::AddChain: out += "add chain " + where + " " + o.name; break;
      case Op::Kind::DeleteChain: out += "delete chain " + where + " " + o.name; break;
      case Op::Kind::FlushChain: out += "flush chain " + where + " " + o.name; break;
      case Op::Kind::AddRule: out += "add rule " + where + " " + o.name + " " + rule_text(o.rule); break;
      case Op::Kind::AddSet: out += "add set " + where + " " + o.name; break;
      case Op::Kind::DeleteSet: out += "delete set " + where + " " + o.name; break;
      case Op::Kind::AddElements:
      case Op::Kind::DeleteElements:
        out += std::string(o.kind == Op::Kind::AddElements ? "add" : "delete") + " element " + where +
               " " + o.name + " { " + elements_text(o.set, o.elements) + " }";
        break;
    }
    out += '\n';
  }
  return out;
}

}  // namespace moat::firewall::nft
