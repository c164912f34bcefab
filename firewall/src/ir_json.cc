#include "moat/firewall/ir_json.h"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <map>
#include <string_view>

namespace moat::firewall::nft {

namespace json = boost::json;

namespace {

constexpr Field kFields[] = {
    Field::Iifname,   Field::Oifname,   Field::L4proto,    Field::Nfproto,      Field::Protocol,
    Field::Mark,      Field::CtState,   Field::Ip4Saddr,   Field::Ip4Daddr,     Field::Ip6Saddr,
    Field::Ip6Daddr,  Field::Sport,     Field::Dport,      Field::IcmpType,     Field::IcmpCode,
    Field::Icmp6Type, Field::Icmp6Code, Field::EtherSaddr, Field::ArpOp,        Field::ArpSha,
    Field::ArpSip,    Field::ArpTip,    Field::TcpFlags,   Field::FibSaddrType, Field::EtherDaddr,
    Field::EtherType};

const char* kOps[] = {"eq", "neq", "in", "not-in", "bits-any", "bits-none", "mask-eq"};
const char* kVerdicts[] = {"",
                           "accept",
                           "drop",
                           "return",
                           "jump",
                           "goto",
                           "reject-tcp-reset",
                           "reject-port-unreachable",
                           "reject-admin-prohibited"};
const char* kHooks[] = {"prerouting",  "input",   "forward", "output",
                        "postrouting", "ingress", "egress"};
const char* kKinds[] = {"set", "vmap", "markmap"};

std::string hex(const Bytes& b) {
  std::string s;
  for (auto c : b) s += fmt::format("{:02x}", c);
  return s;
}

json::array fields_json(const std::vector<Field>& fields) {
  json::array a;
  for (auto f : fields) a.emplace_back(field_expr(f));
  return a;
}

json::array intervals_json(const std::vector<Interval>& values) {
  json::array a;
  for (const auto& v : values) {
    if (v.lo == v.hi)
      a.emplace_back(hex(v.lo));
    else
      a.emplace_back(json::array{json::value(hex(v.lo)), json::value(hex(v.hi))});
  }
  return a;
}

json::object verdict_json(const Verdict& v) {
  json::object o{{"code", kVerdicts[static_cast<int>(v.code)]}};
  if (!v.chain.empty()) o["chain"] = v.chain;
  return o;
}

json::object limit_json(const Limit& l) {
  json::object o{{"rate", l.rate}, {"unit", l.unit}, {"burst", l.burst}};
  if (l.over) o["over"] = true;
  return o;
}

json::object rule_json(const Rule& r) {
  json::object o;
  json::array matches;
  for (const auto& m : r.matches) {
    json::object mo{{"fields", fields_json(m.fields)}, {"op", kOps[static_cast<int>(m.op)]}};
    if (!m.values.empty()) mo["values"] = intervals_json(m.values);
    if (!m.set.empty()) mo["set"] = m.set;
    if (m.mask) mo["mask"] = m.mask;
    if (m.value) mo["value"] = m.value;
    matches.emplace_back(std::move(mo));
  }
  if (!matches.empty()) o["matches"] = std::move(matches);
  if (r.counter) o["counter"] = true;
  if (r.limit) o["limit"] = limit_json(*r.limit);
  if (r.update)
    o["update"] = {{"set", r.update->set},
                   {"key", fields_json(r.update->key)},
                   {"limit", limit_json(r.update->limit)}};
  if (r.log) o["log"] = {{"prefix", r.log->prefix}, {"group", r.log->group}};
  if (r.mark) o["mark"] = {{"and", r.mark->and_mask}, {"xor", r.mark->xor_value}};
  if (!r.vmap.empty()) o["vmap"] = {{"fields", fields_json(r.vmap_fields)}, {"map", r.vmap}};
  if (r.verdict.code != VerdictCode::None) o["verdict"] = verdict_json(r.verdict);
  if (!r.ct_helper.empty()) o["ct_helper"] = r.ct_helper;
  if (!r.fwd.empty()) o["fwd"] = r.fwd;
  if (r.ether_daddr) o["ether_daddr"] = hex(*r.ether_daddr);
  if (r.notrack) o["notrack"] = true;
  if (!r.origin.empty()) o["origin"] = r.origin;
  return o;
}

// ---- reading ----

struct Reader {
  std::string error;

  template <class T>
  bool fail(const std::string& what) {
    if (error.empty()) error = what;
    return false;
  }

  Bytes unhex(std::string_view s) {
    Bytes b;
    if (s.size() % 2) {
      fail<bool>("odd hex string");
      return b;
    }
    auto nibble = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return fail<bool>("not a hex digit in '" + std::string(s) + "'"), 0;
    };
    for (size_t i = 0; i < s.size(); i += 2)
      b.push_back(static_cast<uint8_t>(nibble(s[i]) << 4 | nibble(s[i + 1])));
    return b;
  }
  template <size_t N>
  int index_of(const char* const (&names)[N], std::string_view s) {
    for (size_t i = 0; i < N; ++i)
      if (s == names[i]) return static_cast<int>(i);
    fail<bool>("unknown name '" + std::string(s) + "'");
    return 0;
  }
  std::vector<Field> fields(const json::value& v) {
    static const std::map<std::string_view, Field> by_name = [] {
      std::map<std::string_view, Field> m;
      for (auto k : kFields) m.emplace(field_expr(k), k);
      return m;
    }();
    std::vector<Field> out;
    for (const auto& f : v.as_array()) {
      auto it = by_name.find(std::string_view(f.as_string()));
      if (it == by_name.end())
        fail<bool>("unknown field '" + std::string(f.as_string()) + "'");
      else
        out.push_back(it->second);
    }
    return out;
  }
  std::vector<Interval> intervals(const json::value& v) {
    std::vector<Interval> out;
    for (const auto& x : v.as_array()) {
      if (x.is_string())
        out.push_back(single(unhex(x.as_string())));
      else
        out.push_back(
            {unhex(x.as_array().at(0).as_string()), unhex(x.as_array().at(1).as_string())});
    }
    return out;
  }
  Verdict verdict(const json::object& o) {
    Verdict v;
    v.code = static_cast<VerdictCode>(index_of(kVerdicts, o.at("code").as_string()));
    if (auto* c = o.if_contains("chain")) v.chain = std::string(c->as_string());
    return v;
  }
  Limit limit(const json::object& x) {
    Limit l{x.at("rate").to_number<uint64_t>(), std::string(x.at("unit").as_string()),
            static_cast<uint32_t>(x.at("burst").to_number<uint64_t>())};
    if (auto* o = x.if_contains("over")) l.over = o->as_bool();
    return l;
  }
  Rule rule(const json::object& o) {
    Rule r;
    if (auto* ms = o.if_contains("matches"))
      for (const auto& mv : ms->as_array()) {
        const auto& mo = mv.as_object();
        Match m;
        m.fields = fields(mo.at("fields"));
        m.op = static_cast<Match::Op>(index_of(kOps, mo.at("op").as_string()));
        if (auto* x = mo.if_contains("values")) m.values = intervals(*x);
        if (auto* x = mo.if_contains("set")) m.set = std::string(x->as_string());
        if (auto* x = mo.if_contains("mask"))
          m.mask = static_cast<uint32_t>(x->to_number<uint64_t>());
        if (auto* x = mo.if_contains("value"))
          m.value = static_cast<uint32_t>(x->to_number<uint64_t>());
        r.matches.push_back(std::move(m));
      }
    if (auto* x = o.if_contains("counter")) r.counter = x->as_bool();
    if (auto* x = o.if_contains("limit")) r.limit = limit(x->as_object());
    if (auto* x = o.if_contains("update"))
      r.update = SetUpdate{std::string(x->at("set").as_string()), fields(x->at("key")),
                           limit(x->at("limit").as_object())};
    if (auto* x = o.if_contains("log"))
      r.log = Log{std::string(x->at("prefix").as_string()),
                  static_cast<uint16_t>(x->at("group").to_number<uint64_t>())};
    if (auto* x = o.if_contains("mark"))
      r.mark = MarkSet{static_cast<uint32_t>(x->at("and").to_number<uint64_t>()),
                       static_cast<uint32_t>(x->at("xor").to_number<uint64_t>())};
    if (auto* x = o.if_contains("vmap")) {
      r.vmap_fields = fields(x->at("fields"));
      r.vmap = std::string(x->at("map").as_string());
    }
    if (auto* x = o.if_contains("verdict")) r.verdict = verdict(x->as_object());
    if (auto* x = o.if_contains("ct_helper")) r.ct_helper = std::string(x->as_string());
    if (auto* x = o.if_contains("fwd")) r.fwd = std::string(x->as_string());
    if (auto* x = o.if_contains("ether_daddr")) r.ether_daddr = unhex(x->as_string());
    if (auto* x = o.if_contains("notrack")) r.notrack = x->as_bool();
    if (auto* x = o.if_contains("origin")) r.origin = std::string(x->as_string());
    return r;
  }
};

}  // namespace

std::string to_json(const Ruleset& ruleset, bool pretty) {
  json::array tables;
  for (const auto& [_, t] : ruleset.tables) {
    json::object sets, chains;
    for (const auto& [name, s] : t.sets) {
      json::array elements;
      for (const auto& e : s.elements) {
        json::object eo{{"key", intervals_json(e.key)}};
        if (s.kind == Set::Kind::Vmap) eo["verdict"] = verdict_json(e.verdict);
        if (s.kind == Set::Kind::MarkMap) eo["data"] = e.data;
        elements.emplace_back(std::move(eo));
      }
      json::object so{{"kind", kKinds[static_cast<int>(s.kind)]},
                      {"key", fields_json(s.key)},
                      {"interval", s.interval},
                      {"elements", std::move(elements)}};
      if (!s.comment.empty()) so["comment"] = s.comment;
      if (s.dynamic) so["dynamic"] = true;
      if (s.timeout_s) so["timeout"] = s.timeout_s;
      if (s.size) so["size"] = s.size;
      sets[name] = std::move(so);
    }
    for (const auto& [name, c] : t.chains) {
      json::array rules;
      for (const auto& r : c.rules) rules.emplace_back(rule_json(r));
      json::object co{{"rules", std::move(rules)}};
      if (c.base) {
        json::object base{{"hook", kHooks[static_cast<int>(c.base->hook)]},
                          {"priority", c.base->priority},
                          {"policy", c.base->policy_drop ? "drop" : "accept"}};
        if (!c.base->devices.empty())
          base["devices"] = json::array(c.base->devices.begin(), c.base->devices.end());
        co["base"] = std::move(base);
      }
      chains[name] = std::move(co);
    }
    json::object table{{"family", to_string(t.family)},
                       {"name", t.name},
                       {"sets", std::move(sets)},
                       {"chains", std::move(chains)}};
    if (!t.helpers.empty()) {
      json::object helpers;
      for (const auto& [name, h] : t.helpers)
        helpers[name] = {{"type", h.type}, {"protocol", h.protocol}, {"family", h.family}};
      table["helpers"] = std::move(helpers);
    }
    tables.emplace_back(std::move(table));
  }
  json::object root{{"tables", std::move(tables)}};
  if (!pretty) return json::serialize(root);
  // Minimal pretty printer: one table/set/chain/rule per line is enough for people and diffs.
  std::string out = "{\"tables\": [\n";
  const auto& arr = root["tables"].as_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& t = arr[i].as_object();
    out += "  {\"family\": " + json::serialize(t.at("family")) +
           ", \"name\": " + json::serialize(t.at("name")) + ",\n";
    if (auto* h = t.if_contains("helpers")) out += "   \"helpers\": " + json::serialize(*h) + ",\n";
    out += "   \"sets\": {";
    bool first = true;
    for (const auto& [k, v] : t.at("sets").as_object()) {
      out += std::string(first ? "\n" : ",\n") + "    " + json::serialize(json::value(k)) + ": " +
             json::serialize(v);
      first = false;
    }
    out += "},\n   \"chains\": {";
    first = true;
    for (const auto& [k, v] : t.at("chains").as_object()) {
      out += std::string(first ? "\n" : ",\n") + "    " + json::serialize(json::value(k)) + ": {";
      const auto& co = v.as_object();
      if (auto* b = co.if_contains("base")) out += "\"base\": " + json::serialize(*b) + ", ";
      out += "\"rules\": [";
      const auto& rules = co.at("rules").as_array();
      for (size_t r = 0; r < rules.size(); ++r)
        out += std::string(r ? ",\n      " : "\n      ") + json::serialize(rules[r]);
      out += "]}";
      first = false;
    }
    out += "}}" + std::string(i + 1 < arr.size() ? ",\n" : "\n");
  }
  return out + "]}\n";
}

Result<Ruleset> ruleset_from_json(std::string_view text) {
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return fail(ErrorCode::InvalidConfig, "invalid JSON: " + ec.message());
  return ruleset_from_json(root);
}

Result<Ruleset> ruleset_from_json(const json::value& root) {
  Reader rd;
  Ruleset rs;
  try {
    for (const auto& tv : root.at("tables").as_array()) {
      const auto& to = tv.as_object();
      std::string fam(to.at("family").as_string());
      Family family = fam == "inet"     ? Family::Inet
                      : fam == "bridge" ? Family::Bridge
                      : fam == "ip"     ? Family::Ip
                      : fam == "ip6"    ? Family::Ip6
                                        : Family::Netdev;
      Table& t = rs.table(family, std::string(to.at("name").as_string()));
      if (auto* hs = to.if_contains("helpers"))
        for (const auto& [name, hv] : hs->as_object())
          t.helpers[std::string(name)] =
              CtHelper{std::string(name), std::string(hv.at("type").as_string()),
                       static_cast<uint8_t>(hv.at("protocol").to_number<uint64_t>()),
                       static_cast<int>(hv.at("family").to_number<int64_t>())};
      for (const auto& [name, sv] : to.at("sets").as_object()) {
        const auto& so = sv.as_object();
        Set s;
        s.name = std::string(name);
        s.kind = static_cast<Set::Kind>(rd.index_of(kKinds, so.at("kind").as_string()));
        s.key = rd.fields(so.at("key"));
        s.interval = so.at("interval").as_bool();
        if (auto* c = so.if_contains("comment")) s.comment = std::string(c->as_string());
        if (auto* d = so.if_contains("dynamic")) s.dynamic = d->as_bool();
        if (auto* d = so.if_contains("timeout"))
          s.timeout_s = static_cast<uint32_t>(d->to_number<uint64_t>());
        if (auto* d = so.if_contains("size"))
          s.size = static_cast<uint32_t>(d->to_number<uint64_t>());
        for (const auto& ev : so.at("elements").as_array()) {
          const auto& eo = ev.as_object();
          SetElement e;
          e.key = rd.intervals(eo.at("key"));
          if (auto* v = eo.if_contains("verdict")) e.verdict = rd.verdict(v->as_object());
          if (auto* d = eo.if_contains("data"))
            e.data = static_cast<uint32_t>(d->to_number<uint64_t>());
          s.elements.push_back(std::move(e));
        }
        t.sets[s.name] = std::move(s);
      }
      for (const auto& [name, cv] : to.at("chains").as_object()) {
        const auto& co = cv.as_object();
        Chain c;
        c.name = std::string(name);
        if (auto* b = co.if_contains("base")) {
          c.base = BaseChain{static_cast<Hook>(rd.index_of(kHooks, b->at("hook").as_string())),
                             static_cast<int>(b->at("priority").to_number<int64_t>()),
                             b->at("policy").as_string() == "drop"};
          if (auto* d = b->as_object().if_contains("devices"))
            for (const auto& dev : d->as_array()) c.base->devices.emplace_back(dev.as_string());
        }
        for (const auto& rv : co.at("rules").as_array()) c.rules.push_back(rd.rule(rv.as_object()));
        t.chains[c.name] = std::move(c);
      }
    }
  } catch (const std::exception& e) {  // Boost.JSON accessors throw on a wrong shape
    return fail(ErrorCode::InvalidConfig, std::string("malformed ruleset JSON: ") + e.what());
  }
  if (!rd.error.empty())
    return fail(ErrorCode::InvalidConfig, "malformed ruleset JSON: " + rd.error);
  return rs;
}

}  // namespace moat::firewall::nft
