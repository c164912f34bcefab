// Model rules to nft rules: macro expansion, IP-family splitting, alias/ipset resolution and
// security-group chains, shared by the host and guest tables.
#include <algorithm>

#include "compile_internal.h"
#include "moat/base/strings.h"
#include "moat/firewall/macros.h"
#include "moat/firewall/names.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/protocols.h"

namespace moat::firewall::detail {

using nft::Field;
using nft::Interval;
using nft::Match;

nft::Interval to_interval(const IpRange& r) {
  return {nft::Bytes(r.first.bytes.begin(), r.first.bytes.begin() + r.first.size()),
          nft::Bytes(r.last.bytes.begin(), r.last.bytes.begin() + r.last.size())};
}

namespace {

void subtract(std::vector<Interval>& set, const Interval& cut) {
  std::vector<Interval> out;
  for (auto& iv : set) {
    if (iv.hi < cut.lo || iv.lo > cut.hi) {
      out.push_back(iv);
      continue;
    }
    if (iv.lo < cut.lo) out.push_back({iv.lo, nft::predecessor(cut.lo)});
    if (iv.hi > cut.hi) out.push_back({nft::successor(cut.hi), iv.hi});
  }
  set = std::move(out);
}

}  // namespace

std::vector<Interval> effective_ranges(std::vector<std::pair<IpRange, bool>> entries, int family) {
  std::erase_if(entries, [&](const auto& e) { return e.first.family() != family; });
  // Wider blocks first, so a more specific entry (match or nomatch) overrides them.
  std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first.prefix_length().value_or(128) < b.first.prefix_length().value_or(128);
  });
  // Matches are merged in one go before each nomatch and at the end (merging after every
  // entry made a 12,000-entry ipset quadratic: seconds of compile).
  std::vector<Interval> out;
  bool merged = true;
  for (const auto& [range, nomatch] : entries) {
    Interval iv = to_interval(range);
    if (!nomatch) {
      out.push_back(iv);
      merged = false;
      continue;
    }
    if (!merged) nft::merge_intervals(out);
    merged = true;
    subtract(out, iv);
  }
  if (!merged) nft::merge_intervals(out);
  return out;
}

namespace {

constexpr uint64_t kFnvBasis = 1469598103934665603ull;

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// The name of an interned object: a prefix and the hash of its content.
std::string hashed_name(const char* prefix, uint64_t h) {
  char name[32];
  std::snprintf(name, sizeof(name), "%s%016llx", prefix, static_cast<unsigned long long>(h));
  return name;
}

void intern_rule(nft::Table& table, nft::Rule& rule, std::vector<nft::ObjectRef>* created) {
  for (auto& m : rule.matches) {
    if ((m.op != Match::Op::In && m.op != Match::Op::NotIn) || m.values.empty() || !m.set.empty())
      continue;
    uint64_t h = kFnvBasis;
    for (auto f : m.fields) h = fnv1a(h, &f, sizeof(f));
    bool interval = false;
    for (const auto& v : m.values) {
      h = fnv1a(h, v.lo.data(), v.lo.size());
      h = fnv1a(h, v.hi.data(), v.hi.size());
      interval = interval || v.lo != v.hi;
    }
    std::string name = hashed_name("c-", h);
    if (!table.sets.contains(name)) {
      nft::Set s;
      s.name = name;
      s.key = m.fields;
      s.interval = interval;
      for (auto& v : m.values) s.elements.push_back({{v}, {}, 0});
      std::sort(s.elements.begin(), s.elements.end());
      table.sets[name] = std::move(s);
      if (created) created->push_back({nft::table_key(table.family, table.name), true, name});
    }
    m.set = name;
    m.values.clear();
  }
}

}  // namespace

void intern_value_sets(nft::Table& table, const std::vector<std::string>& chains,
                       std::vector<nft::ObjectRef>* created) {
  if (chains.empty()) {
    for (auto& [_, c] : table.chains)
      for (auto& r : c.rules) intern_rule(table, r, created);
    return;
  }
  for (const auto& name : chains)
    if (auto c = table.chains.find(name); c != table.chains.end())
      for (auto& r : c->second.rules) intern_rule(table, r, created);
}

bool cluster_enabled(const FirewallConfig& config, int64_t now) {
  if (!config.cluster) return false;
  int64_t e = config.cluster->options.enable;
  if (e <= 1) return e == 1;
  return now - e <= 60;  // the API's anti-lockout enable: valid for 60 seconds
}

void TableBuilder::warn(const Rule& rule, const std::string& message) {
  warnings_.push_back(rule.where.to_string() + ": skipped rule: " + message);
}

std::string record_chain(std::optional<Verdict> v) {
  if (!v) return "rec-defer";
  return *v == Verdict::Accept ? "rec-accept" : *v == Verdict::Drop ? "rec-drop" : "rec-reject";
}

nft::Verdict TableBuilder::verdict(Verdict v, Direction dir) const {
  if (netdev() && dir == Direction::Out) return {nft::VerdictCode::Jump, record_chain(v)};
  switch (v) {
    case Verdict::Accept:
      return {nft::VerdictCode::Accept, {}};
    case Verdict::Drop:
      return {nft::VerdictCode::Drop, {}};
    case Verdict::Reject:
      // The kernel's bridge reject works only at prerouting and input; guest IN chains run
      // at forward and output, where a native REJECT becomes DROP (as in proxmox-firewall).
      if (bridge() && dir == Direction::In && options_.strategy == GuestStrategy::BridgeConntrack)
        return {nft::VerdictCode::Drop, {}};
      return {nft::VerdictCode::Jump, names::kDoReject};
  }
  return {};
}

nft::Rule TableBuilder::log_rule(uint32_t vmid, LogLevel level, const std::string& chain,
                                 const std::string& what, Direction dir) const {
  nft::Rule r;
  if (netdev() && dir == Direction::Out) {
    r.verdict = {nft::VerdictCode::Jump, record_chain(std::nullopt)};
    return r;
  }
  const auto& rl = config_.cluster ? config_.cluster->options.log_ratelimit : LogRateLimit{};
  if (rl.enable) r.limit = nft::Limit{rl.rate, rl.unit, rl.burst};
  r.log = nft::Log{":" + std::to_string(vmid) + ":" + std::to_string(static_cast<int>(level)) +
                       ":" + chain + ": " + what + ": ",
                   0};
  return r;
}

Match TableBuilder::iface_match(const std::string& device, bool to_device) const {
  return Match{{to_device ? Field::Oifname : Field::Iifname},
               Match::Op::Eq,
               {nft::single(nft::ifname_bytes(device))},
               {},
               0};
}

Match TableBuilder::family_match(int family) const {
  if (table_.family != nft::Family::Inet)  // bridge and netdev: the ethertype
    return Match{{Field::Protocol},
                 Match::Op::Eq,
                 {nft::single(nft::be16(family == 4 ? 0x0800 : 0x86dd))},
                 {},
                 0};
  return Match{
      {Field::Nfproto}, Match::Op::Eq, {nft::single(nft::u8(family == 4 ? 2 : 10))}, {}, 0};
}

std::map<int, std::string> TableBuilder::materialize_ipset(const IpSet& set,
                                                           const std::string& scope,
                                                           const Scope& owner,
                                                           std::vector<IpRange> extra,
                                                           bool all_families) {
  std::vector<std::pair<IpRange, bool>> entries;
  for (const auto& e : set.entries) {
    if (e.cidr) {
      entries.emplace_back(*e.cidr, e.nomatch);
      continue;
    }
    const Alias* alias = find_alias(e.alias_scope, e.alias, owner);
    if (!alias) {
      warnings_.push_back(e.where.to_string() + ": skipped ipset entry: alias '" + e.alias +
                          "' does not exist");
      continue;
    }
    entries.emplace_back(alias->cidr, e.nomatch);
  }
  for (const auto& r : extra) entries.emplace_back(r, false);
  std::map<int, std::string> names;
  uint32_t vmid = owner.guest ? owner.guest->vmid : 0;
  for (int family : {4, 6}) {
    auto ranges = effective_ranges(entries, family);
    if (ranges.empty() && !all_families) continue;
    std::string name = names::ipset(family, scope, vmid, set.name);
    names[family] = name;
    if (table_.sets.contains(name)) continue;
    if (created_) created_->push_back({nft::table_key(table_.family, table_.name), true, name});
    nft::Set s;
    s.name = name;
    s.key = {family == 4 ? Field::Ip4Saddr : Field::Ip6Saddr};
    // A set of host addresses only (a typical blocklist) is a hash set: adding one entry then
    // costs the kernel O(1), where an interval set's commit walks all of it (2-3 ms at 12k).
    bool hosts_only = std::all_of(entries.begin(), entries.end(), [&](const auto& e) {
      return e.first.family() != family || (!e.second && e.first.first == e.first.last);
    });
    s.interval = !hosts_only;
    if (hosts_only) {
      for (const auto& [r, _] : entries)
        if (r.family() == family) s.elements.push_back({{to_interval(r)}, {}, 0});
      std::sort(s.elements.begin(), s.elements.end());
      s.elements.erase(std::unique(s.elements.begin(), s.elements.end()), s.elements.end());
    } else {
      for (auto& r : ranges) s.elements.push_back({{r}, {}, 0});
    }
    table_.sets[name] = std::move(s);
  }
  return names;
}

const Alias* TableBuilder::find_alias(const std::string& scope, const std::string& name,
                                      const Scope& owner) const {
  if (owner.guest && owner.guest->fw && scope != "dc")
    if (auto it = owner.guest->fw->aliases.find(name); it != owner.guest->fw->aliases.end())
      return &it->second;
  if (config_.cluster && scope != "guest")
    if (auto it = config_.cluster->aliases.find(name); it != config_.cluster->aliases.end())
      return &it->second;
  return nullptr;
}

bool TableBuilder::resolve(const AddressMatch& addr, const Scope& scope, const Rule& rule,
                           ResolvedAddress& out) {
  const GuestFw* gfw = scope.guest && scope.guest->fw ? &*scope.guest->fw : nullptr;
  const ClusterFw* cfw = config_.cluster ? &*config_.cluster : nullptr;
  switch (addr.kind) {
    case AddressMatch::Kind::Literal:
      for (const auto& r : addr.literal) out.families[r.family()].values.push_back(to_interval(r));
      return true;
    case AddressMatch::Kind::Alias: {
      const Alias* alias = find_alias(addr.scope, addr.name, scope);
      if (!alias) {
        warn(rule, "alias '" + addr.text + "' does not exist");
        return false;
      }
      out.families[alias->cidr.family()].values.push_back(to_interval(alias->cidr));
      return true;
    }
    case AddressMatch::Kind::IpSet: {
      std::map<int, std::string> sets;
      // Per-guest sets: small sets keep one guest's commit small (the kernel's cost of a
      // changed set follows its size; a shared device-keyed pipapo set cost ~15 ms here).
      if (gfw && (addr.scope.empty() || addr.scope == "guest"))
        if (auto it = gfw->ipsets.find(addr.name); it != gfw->ipsets.end()) {
          sets = materialize_ipset(it->second, "guest", scope);
          if (sets.empty()) return true;  // the guest's ipset is empty: the rule matches nothing
        }
      if (sets.empty() && cfw && (addr.scope.empty() || addr.scope == "dc"))
        if (auto it = cfw->ipsets.find(addr.name); it != cfw->ipsets.end()) {
          sets = materialize_ipset(it->second, "dc", Scope{});
          if (sets.empty()) return true;  // the cluster's ipset is empty: matches nothing
        }
      if (sets.empty()) {
        warn(rule,
             "ipset '" + addr.text + "' does not exist" +
                 (addr.scope == "sdn" ? " (SDN ipsets come from the SDN configuration)" : ""));
        return false;
      }
      for (const auto& [family, name] : sets) out.families[family].set = name;
      return true;
    }
  }
  return false;
}

std::string TableBuilder::shared_chain(const char* prefix, std::vector<nft::Rule> rules) {
  uint64_t h = kFnvBasis;
  for (const auto& r : rules) {
    std::string text = nft::rule_text(r) + "\n";
    h = fnv1a(h, text.data(), text.size());
  }
  std::string name = hashed_name(prefix, h);
  if (table_.chains.contains(name)) return name;
  if (created_) created_->push_back({nft::table_key(table_.family, table_.name), false, name});
  build::chain(table_, name).rules = std::move(rules);
  return name;
}

std::string TableBuilder::ensure_group(const std::string& name, Direction dir) {
  std::string chain_name = names::group_chain(name, dir);
  if (table_.chains.contains(chain_name)) return chain_name;
  if (created_)
    created_->push_back({nft::table_key(table_.family, table_.name), false, chain_name});
  nft::Chain& chain = table_.chains[chain_name];
  chain.name = chain_name;
  const auto& group = config_.cluster->groups.at(name);
  add_rules(chain, group.rules, dir, Scope{});
  return chain_name;
}

void TableBuilder::add_rules(nft::Chain& chain, const std::vector<Rule>& rules, Direction dir,
                             const Scope& scope) {
  for (const auto& rule : rules) {
    if (!rule.enabled) continue;
    if (rule.kind == Rule::Kind::Group) {
      if (!config_.cluster || !config_.cluster->groups.contains(rule.group)) {
        warn(rule, "security group '" + rule.group + "' does not exist");
        continue;
      }
      if (dir == Direction::Forward && !rule.iface.empty()) continue;  // as proxmox-firewall
      nft::Rule jump;
      jump.origin = rule.where.to_string();
      if (!rule.iface.empty()) {
        bool guest = scope.guest != nullptr;
        std::string device =
            guest ? names::guest_device(*scope.guest, std::stoi(rule.iface.substr(3))) : rule.iface;
        jump.matches.push_back(
            iface_match(device, guest ? dir == Direction::In : dir == Direction::Out));
      }
      // The group chain is built only after the jump target exists in the table.
      jump.verdict = {nft::VerdictCode::Jump, ensure_group(rule.group, dir)};
      chain.rules.push_back(std::move(jump));
      continue;
    }
    if (rule.direction != dir) continue;
    add_rule(chain, rule, dir, scope);
  }
}

namespace {

std::vector<nft::Interval> port_values(const std::vector<PortRange>& ports) {
  std::vector<nft::Interval> out;
  for (const auto& p : ports) out.push_back({nft::be16(p.first), nft::be16(p.last)});
  return out;
}

Match values_match(Field field, std::vector<nft::Interval> values) {
  if (values.size() == 1) return Match{{field}, Match::Op::Eq, std::move(values), {}, 0};
  nft::merge_intervals(values);
  if (values.size() == 1) return Match{{field}, Match::Op::Eq, std::move(values), {}, 0};
  return Match{{field}, Match::Op::In, std::move(values), {}, 0};
}

std::vector<PortRange> macro_ports(std::string_view text) {
  std::vector<PortRange> out;
  if (text.empty()) return out;
  for (auto part : split(text, ',')) {
    auto colon = part.find(':');
    auto lo = static_cast<uint16_t>(*parse_uint(part.substr(0, colon)));
    auto hi = colon == std::string_view::npos
                  ? lo
                  : static_cast<uint16_t>(*parse_uint(part.substr(colon + 1)));
    out.push_back({lo, hi});
  }
  return out;
}

// One expansion of a rule: a macro entry merged with the rule's own options.
struct Expansion {
  std::optional<uint8_t> proto;
  std::vector<PortRange> dport, sport;
  std::optional<IcmpMatch> icmp;
  int family = 0;
};

std::vector<Expansion> expand(const Rule& rule) {
  if (rule.kind != Rule::Kind::Macro) return {{rule.proto, rule.dport, rule.sport, rule.icmp, 0}};
  std::vector<Expansion> out;
  for (const auto& e : find_macro(rule.macro)->entries) {
    Expansion x{rule.proto, rule.dport, rule.sport, rule.icmp, e.family};
    if (!e.proto.empty()) x.proto = protocol_number(e.proto);
    if (!e.dport.empty()) x.dport = macro_ports(e.dport);
    if (!e.sport.empty()) x.sport = macro_ports(e.sport);
    if (!e.icmp_type.empty()) {
      bool v6 = x.proto == 58;
      auto t = v6 ? icmpv6_type(e.icmp_type) : icmp_type(e.icmp_type);
      x.icmp = IcmpMatch{v6, t->type, t->code, std::string(e.icmp_type)};
    }
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace

void TableBuilder::add_rule(nft::Chain& chain, const Rule& rule, Direction dir,
                            const Scope& scope) {
  ResolvedAddress src, dst;
  if (rule.source && !resolve(*rule.source, scope, rule, src)) return;
  if (rule.dest && !resolve(*rule.dest, scope, rule, dst)) return;
  std::optional<Match> iface;
  if (!rule.iface.empty()) {
    if (scope.guest) {
      int nic = std::stoi(rule.iface.substr(3));
      if (!scope.guest->nics.contains(nic)) {
        warn(rule, "guest has no interface " + rule.iface);
        return;
      }
      iface = iface_match(names::guest_device(*scope.guest, nic), dir == Direction::In);
    } else {
      iface = iface_match(rule.iface, dir == Direction::Out);
    }
  }
  uint32_t vmid = scope.guest ? scope.guest->vmid : 0;
  for (const auto& x : expand(rule)) {
    std::set<int> families = {4, 6};
    bool pinned = false;
    auto pin = [&](int f) {
      pinned = true;
      std::erase_if(families, [f](int g) { return g != f; });
    };
    if (x.family) pin(x.family);
    if (x.proto == 1) pin(4);
    if (x.proto == 58) pin(6);
    for (const auto* r : {&src, &dst}) {
      bool given = (r == &src && rule.source) || (r == &dst && rule.dest);
      if (given && r->families.empty()) return;  // an empty ipset matches nothing
      if (!r->families.empty()) {
        pinned = true;
        std::erase_if(families, [&](int f) { return !r->families.contains(f); });
      }
    }
    if (families.empty()) continue;  // e.g. an IPv6 macro entry with an IPv4 source
    std::vector<int> variants(families.begin(), families.end());
    if (!pinned) variants = {0};  // one family-agnostic rule
    for (int family : variants) {
      nft::Rule r;
      r.origin = rule.where.to_string();
      if (iface) r.matches.push_back(*iface);
      if (family) r.matches.push_back(family_match(family));
      for (auto [res, is_src] : {std::pair{&src, true}, {&dst, false}}) {
        if (!family || !res->families.contains(family)) continue;
        const auto& pf = res->families.at(family);
        Field f = family == 4 ? (is_src ? Field::Ip4Saddr : Field::Ip4Daddr)
                              : (is_src ? Field::Ip6Saddr : Field::Ip6Daddr);
        if (!pf.set.empty())
          r.matches.push_back(Match{{f}, Match::Op::In, {}, pf.set, 0});
        else
          r.matches.push_back(values_match(f, pf.values));
      }
      if (x.proto)
        r.matches.push_back(
            Match{{Field::L4proto}, Match::Op::Eq, {nft::single(nft::u8(*x.proto))}, {}, 0});
      if (!x.sport.empty()) r.matches.push_back(values_match(Field::Sport, port_values(x.sport)));
      if (!x.dport.empty()) r.matches.push_back(values_match(Field::Dport, port_values(x.dport)));
      if (x.icmp) {
        Field type = x.icmp->v6 ? Field::Icmp6Type : Field::IcmpType;
        r.matches.push_back(
            Match{{type}, Match::Op::Eq, {nft::single(nft::u8(x.icmp->type))}, {}, 0});
        if (x.icmp->code)
          r.matches.push_back(Match{{x.icmp->v6 ? Field::Icmp6Code : Field::IcmpCode},
                                    Match::Op::Eq,
                                    {nft::single(nft::u8(*x.icmp->code))},
                                    {},
                                    0});
      }
      if (rule.log != LogLevel::Nolog) {
        nft::Rule log = log_rule(vmid, rule.log, chain.name, to_string(rule.verdict), dir);
        log.matches = r.matches;
        log.origin = r.origin;
        chain.rules.push_back(std::move(log));
      }
      r.verdict = verdict(rule.verdict, dir);
      chain.rules.push_back(std::move(r));
    }
  }
}

}  // namespace moat::firewall::detail
