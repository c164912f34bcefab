#include "moat/firewall/diff.h"

#include <algorithm>
#include <set>

#include "moat/firewall/nft_text.h"

namespace moat::firewall::nft {

namespace {

// What changes from the elements `a` to the elements `b`, both sorted by key, in one merge:
// those only `a` holds (or holds with another verdict or mark) go, those only `b` holds come.
struct ElementChanges {
  std::vector<SetElement> gone, added;
};
ElementChanges element_changes(const std::vector<SetElement>& a, const std::vector<SetElement>& b) {
  ElementChanges out;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    auto order = a[i].key <=> b[j].key;
    if (order < 0) {
      out.gone.push_back(a[i++]);
    } else if (order > 0) {
      out.added.push_back(b[j++]);
    } else {
      if (a[i].verdict != b[j].verdict || a[i].data != b[j].data) {
        out.gone.push_back(a[i]);
        out.added.push_back(b[j]);
      }
      ++i;
      ++j;
    }
  }
  out.gone.insert(out.gone.end(), a.begin() + static_cast<ptrdiff_t>(i), a.end());
  out.added.insert(out.added.end(), b.begin() + static_cast<ptrdiff_t>(j), b.end());
  return out;
}

bool same_definition(const Set& a, const Set& b) {
  return a.kind == b.kind && a.key == b.key && a.interval == b.interval && a.dynamic == b.dynamic &&
         a.timeout_s == b.timeout_s && a.size == b.size;
}

Op op(Op::Kind kind, const Table& t, std::string name = {}) {
  Op o;
  o.kind = kind;
  o.family = t.family;
  o.table = t.name;
  o.name = std::move(name);
  return o;
}

struct Phases {
  Plan deletes_elements, flushes, deletes, adds_tables, adds_objects, adds_elements, adds_rules;

  void add_set(const Table& t, const Set& s) {
    Op o = op(Op::Kind::AddSet, t, s.name);
    o.set = &s;
    adds_objects.push_back(std::move(o));
    add_elements(t, s, s.elements);
  }
  void add_elements(const Table& t, const Set& s, std::vector<SetElement> elements) {
    if (elements.empty()) return;
    Op o = op(Op::Kind::AddElements, t, s.name);
    o.set = &s;
    o.elements = std::move(elements);
    adds_elements.push_back(std::move(o));
  }
  void delete_elements(const Table& t, const Set& s, std::vector<SetElement> elements) {
    if (elements.empty()) return;
    Op o = op(Op::Kind::DeleteElements, t, s.name);
    o.set = &s;
    o.elements = std::move(elements);
    deletes_elements.push_back(std::move(o));
  }
  void add_chain(const Table& t, const Chain& c) {
    Op o = op(Op::Kind::AddChain, t, c.name);
    if (c.base) o.base = &*c.base;
    adds_objects.push_back(std::move(o));
    add_rules(t, c);
  }
  void add_rules(const Table& t, const Chain& c) {
    for (const auto& r : c.rules) {
      Op o = op(Op::Kind::AddRule, t, c.name);
      o.rule = &r;
      adds_rules.push_back(std::move(o));
    }
  }
  void add_table(const Table& t) {
    adds_tables.push_back(op(Op::Kind::AddTable, t));
    for (const auto& [name, h] : t.helpers) {
      Op o = op(Op::Kind::AddHelper, t, name);
      o.helper = &h;
      adds_objects.push_back(std::move(o));
    }
    for (const auto& [_, s] : t.sets) add_set(t, s);
    for (const auto& [_, c] : t.chains) add_chain(t, c);
  }

  // One set present on either side (nullptr: absent).
  void set(const Table& old_t, const Table& new_t, const Set* old_s, const Set* new_s) {
    if (!old_s && new_s) return add_set(new_t, *new_s);
    if (old_s && !new_s) return deletes.push_back(op(Op::Kind::DeleteSet, old_t, old_s->name));
    if (!old_s) return;
    auto [gone, added] = element_changes(old_s->elements, new_s->elements);
    delete_elements(new_t, *new_s, std::move(gone));
    add_elements(new_t, *new_s, std::move(added));
  }
  // One chain present on either side.
  void chain(const Table& old_t, const Table& new_t, const Chain* old_c, const Chain* new_c) {
    if (!old_c && new_c) return add_chain(new_t, *new_c);
    if (old_c && !new_c) {
      if (!old_c->rules.empty()) flushes.push_back(op(Op::Kind::FlushChain, old_t, old_c->name));
      return deletes.push_back(op(Op::Kind::DeleteChain, old_t, old_c->name));
    }
    if (old_c && old_c->rules != new_c->rules) rules(new_t, *old_c, *new_c);
  }
  // A chain in place whose rules changed. The kernel parses every expression of every added
  // rule (a list walk per expression), so the rules both sides share at the start and the end
  // stay; those between are replaced.
  void rules(const Table& t, const Chain& old_c, const Chain& new_c) {
    const auto& a = old_c.rules;
    const auto& b = new_c.rules;
    size_t head = 0;
    while (head < a.size() && head < b.size() && a[head] == b[head]) ++head;
    size_t tail = 0;
    while (tail < a.size() - head && tail < b.size() - head &&
           a[a.size() - 1 - tail] == b[b.size() - 1 - tail])
      ++tail;
    if (head + tail == 0) {
      flushes.push_back(op(Op::Kind::FlushChain, t, new_c.name));
      return add_rules(t, new_c);
    }
    for (size_t i = head; i < a.size() - tail; ++i) {
      Op o = op(Op::Kind::DeleteRule, t, new_c.name);
      o.rule = &a[i];
      o.index = static_cast<int>(i);
      flushes.push_back(std::move(o));
    }
    // Inserted in order before the first rule of the common end, or appended.
    int before = tail > 0 ? static_cast<int>(a.size() - tail) : -1;
    for (size_t i = head; i < b.size() - tail; ++i) {
      Op o = op(Op::Kind::AddRule, t, new_c.name);
      o.rule = &b[i];
      o.index = before;
      adds_rules.push_back(std::move(o));
    }
  }

  Plan join() {
    // Chains before sets: a removed chain's rules may be the last users of a removed set,
    // and chain deletions must follow the flushes of the chains that jumped to them.
    std::stable_partition(deletes.begin(), deletes.end(),
                          [](const Op& o) { return o.kind != Op::Kind::DeleteSet; });
    std::initializer_list<Plan*> phases = {&deletes_elements, &flushes,      &deletes,
                                           &adds_tables,      &adds_objects, &adds_elements,
                                           &adds_rules};
    size_t total = 0;
    for (Plan* p : phases) total += p->size();
    Plan out;
    out.reserve(total);
    for (Plan* p : phases)
      for (auto& o : *p) out.push_back(std::move(o));
    return out;
  }
};

template <class Map>
const typename Map::mapped_type* find(const Map& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

// Whether a table can be changed in place: no set changed its definition, no base chain its
// hook or priority, and the conntrack helpers are the same (else the table is replaced).
bool same_shape(const Table& a, const Table& b, const std::vector<const ObjectRef*>* only) {
  if (a.helpers != b.helpers) return false;
  auto check_set = [&](const std::string& name) {
    const Set* x = find(a.sets, name);
    const Set* y = find(b.sets, name);
    return !x || !y || same_definition(*x, *y);
  };
  auto check_chain = [&](const std::string& name) {
    const Chain* x = find(a.chains, name);
    const Chain* y = find(b.chains, name);
    return !x || !y || x->base == y->base;
  };
  if (only) {
    for (const auto* ref : *only)
      if (!(ref->is_set ? check_set(ref->name) : check_chain(ref->name))) return false;
    return true;
  }
  for (const auto& [name, _] : a.sets)
    if (!check_set(name)) return false;
  for (const auto& [name, _] : a.chains)
    if (!check_chain(name)) return false;
  return true;
}

// Diff of one table key. `only` restricts the comparison to those objects (null: all).
void diff_table(Phases& p, const Table* old_t, const Table* new_t,
                const std::vector<const ObjectRef*>* only) {
  if (!new_t) {
    if (old_t) p.deletes.push_back(op(Op::Kind::DeleteTable, *old_t));
    return;
  }
  if (!old_t || !same_shape(*old_t, *new_t, only)) {
    if (old_t) p.deletes.push_back(op(Op::Kind::DeleteTable, *old_t));
    p.add_table(*new_t);
    return;
  }
  if (only) {
    // Sets first, as below (a new chain's rules may look them up).
    for (const auto* ref : *only)
      if (ref->is_set)
        p.set(*old_t, *new_t, find(old_t->sets, ref->name), find(new_t->sets, ref->name));
    for (const auto* ref : *only)
      if (!ref->is_set)
        p.chain(*old_t, *new_t, find(old_t->chains, ref->name), find(new_t->chains, ref->name));
    return;
  }
  for (const auto& [name, s] : new_t->sets) p.set(*old_t, *new_t, find(old_t->sets, name), &s);
  for (const auto& [name, s] : old_t->sets)
    if (!new_t->sets.contains(name)) p.set(*old_t, *new_t, &s, nullptr);
  for (const auto& [name, c] : new_t->chains)
    p.chain(*old_t, *new_t, find(old_t->chains, name), &c);
  for (const auto& [name, c] : old_t->chains)
    if (!new_t->chains.contains(name)) p.chain(*old_t, *new_t, &c, nullptr);
}

}  // namespace

Plan diff(const Ruleset& applied, const Ruleset& desired) {
  Phases p;
  for (const auto& [key, old] : applied.tables)
    if (!desired.tables.contains(key)) diff_table(p, &old, nullptr, nullptr);
  for (const auto& [key, want] : desired.tables)
    diff_table(p, find(applied.tables, key), &want, nullptr);
  return p.join();
}

Plan creation(const Ruleset& desired) {
  static const Ruleset nothing;
  return diff(nothing, desired);
}

Plan diff(const Ruleset& applied, const Ruleset& desired, const std::vector<ObjectRef>& touched) {
  std::map<std::string, std::vector<const ObjectRef*>> by_table;
  for (const auto& ref : touched) by_table[ref.table].push_back(&ref);
  Phases p;
  for (const auto& [key, refs] : by_table) {
    const Table* old_t = find(applied.tables, key);
    const Table* new_t = find(desired.tables, key);
    // A table new on one side is created or deleted whole.
    diff_table(p, old_t, new_t, old_t && new_t ? &refs : nullptr);
  }
  return p.join();
}

void patch(Ruleset& applied, const Ruleset& desired, const std::vector<ObjectRef>& touched) {
  for (const auto& ref : touched) {
    auto dt = desired.tables.find(ref.table);
    if (dt == desired.tables.end()) {
      applied.tables.erase(ref.table);
      continue;
    }
    auto at_it = applied.tables.find(ref.table);
    if (at_it == applied.tables.end()) {
      applied.tables[ref.table] = dt->second;  // a new table arrives whole
      continue;
    }
    Table& at = at_it->second;
    if (ref.is_set) {
      if (auto s = dt->second.sets.find(ref.name); s != dt->second.sets.end())
        at.sets[ref.name] = s->second;
      else
        at.sets.erase(ref.name);
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
      case Op::Kind::AddTable:
        out += "add table " + where;
        break;
      case Op::Kind::AddHelper:
        out += "add ct helper " + where + " " + o.name;
        if (o.helper) out += " type " + o.helper->type;
        break;
      case Op::Kind::DeleteTable:
        out += "delete table " + where;
        break;
      case Op::Kind::AddChain:
        out += "add chain " + where + " " + o.name;
        break;
      case Op::Kind::DeleteChain:
        out += "delete chain " + where + " " + o.name;
        break;
      case Op::Kind::FlushChain:
        out += "flush chain " + where + " " + o.name;
        break;
      case Op::Kind::AddRule:
        // nft's `insert ... index N`: before the rule at position N (as applied).
        out += o.index < 0 ? "add rule " + where + " " + o.name + " "
                           : "insert rule " + where + " " + o.name + " index " +
                                 std::to_string(o.index) + " ";
        out += rule_text(*o.rule);
        break;
      case Op::Kind::DeleteRule:
        out += "delete rule " + where + " " + o.name + " index " + std::to_string(o.index) + " # " +
               rule_text(*o.rule);
        break;
      case Op::Kind::AddSet:
        out += "add set " + where + " " + o.name;
        break;
      case Op::Kind::DeleteSet:
        out += "delete set " + where + " " + o.name;
        break;
      case Op::Kind::AddElements:
      case Op::Kind::DeleteElements:
        out += std::string(o.kind == Op::Kind::AddElements ? "add" : "delete") + " element " +
               where + " " + o.name + " { " + (o.set ? elements_text(*o.set, o.elements) : "?") +
               " }";
        break;
    }
    out += '\n';
  }
  return out;
}

}  // namespace moat::firewall::nft
