#include "moat/firewall/parser.h"

#include <algorithm>
#include <charconv>
#include <functional>
#include <set>

#include "moat/base/file.h"
#include "moat/base/strings.h"
#include "moat/firewall/macros.h"
#include "moat/firewall/protocols.h"

namespace moat::firewall {

const char* to_string(Direction d) {
  switch (d) {
    case Direction::In:
      return "IN";
    case Direction::Out:
      return "OUT";
    case Direction::Forward:
      return "FORWARD";
  }
  return "?";
}

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Accept:
      return "ACCEPT";
    case Verdict::Drop:
      return "DROP";
    case Verdict::Reject:
      return "REJECT";
  }
  return "?";
}

const char* to_string(LogLevel level) {
  static const char* const kNames[] = {"emerg",  "alert", "crit",  "err",  "warning",
                                       "notice", "info",  "debug", "nolog"};
  return kNames[static_cast<int>(level)];
}

namespace {

// A line being parsed: its text and where it is, to build errors pointing at a token.
struct Line {
  std::string_view text;  // the whole raw line
  SourceLocation where;   // file and line; column filled per error

  // Column (1-based) of `token`, which must be a view into `text`.
  int column_of(std::string_view token) const {
    if (token.data() >= text.data() && token.data() <= text.data() + text.size())
      return static_cast<int>(token.data() - text.data()) + 1;
    return 1;
  }
  std::unexpected<Error> error(std::string_view token, const std::string& message) const {
    SourceLocation at = where;
    at.column = column_of(token);
    return std::unexpected(Error(ErrorCode::InvalidConfig, message).at(at));
  }
};

bool valid_name(std::string_view name, size_t max_len) {
  if (name.size() < 2 || name.size() > max_len) return false;
  if (!std::isalpha(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Splits "text # comment" at the first '#'. Returns {text, comment} both trimmed.
std::pair<std::string_view, std::string_view> split_comment(std::string_view s) {
  auto hash = s.find('#');
  if (hash == std::string_view::npos) return {trim(s), {}};
  return {trim(s.substr(0, hash)), trim(s.substr(hash + 1))};
}

std::optional<bool> parse_bool(std::string_view v) {
  std::string l = to_lower(v);
  if (l == "1" || l == "true" || l == "on" || l == "yes") return true;
  if (l == "0" || l == "false" || l == "off" || l == "no") return false;
  return std::nullopt;
}

std::optional<LogLevel> parse_log_level(std::string_view v) {
  for (int i = 0; i <= static_cast<int>(LogLevel::Nolog); ++i)
    if (iequals(v, to_string(static_cast<LogLevel>(i)))) return static_cast<LogLevel>(i);
  return std::nullopt;
}

std::optional<Verdict> parse_verdict(std::string_view v) {
  if (iequals(v, "ACCEPT")) return Verdict::Accept;
  if (iequals(v, "DROP")) return Verdict::Drop;
  if (iequals(v, "REJECT")) return Verdict::Reject;
  return std::nullopt;
}

// ---- options ----

using OptionSetter = std::function<Status(const Line&, std::string_view value)>;

struct OptionTable {
  std::map<std::string, OptionSetter> setters;
  std::set<std::string> ignored;  // accepted for compatibility, with no effect here
};

OptionSetter bool_option(bool& field) {
  return [&field](const Line& line, std::string_view v) -> Status {
    auto b = parse_bool(v);
    if (!b) return line.error(v, "expected a boolean (0 or 1), got '" + std::string(v) + "'");
    field = *b;
    return {};
  };
}

OptionSetter uint_option(uint32_t& field, uint64_t min, uint64_t max) {
  return [&field, min, max](const Line& line, std::string_view v) -> Status {
    auto n = parse_uint(v);
    if (!n || *n < min || *n > max)
      return line.error(v, "expected an integer in " + std::to_string(min) + ".." +
                               std::to_string(max) + ", got '" + std::string(v) + "'");
    field = static_cast<uint32_t>(*n);
    return {};
  };
}

OptionSetter opt_uint_option(std::optional<uint32_t>& field, uint64_t min, uint64_t max) {
  return [&field, min, max](const Line& line, std::string_view v) -> Status {
    uint32_t value = 0;
    MOAT_RETURN_IF_ERROR(uint_option(value, min, max)(line, v));
    field = value;
    return {};
  };
}

OptionSetter log_option(LogLevel& field) {
  return [&field](const Line& line, std::string_view v) -> Status {
    auto l = parse_log_level(v);
    if (!l) return line.error(v, "unknown log level '" + std::string(v) + "'");
    field = *l;
    return {};
  };
}

OptionSetter verdict_option(Verdict& field, bool allow_reject) {
  return [&field, allow_reject](const Line& line, std::string_view v) -> Status {
    auto verdict = parse_verdict(v);
    if (!verdict || (!allow_reject && *verdict == Verdict::Reject))
      return line.error(v, std::string("expected ") +
                               (allow_reject ? "ACCEPT, DROP or REJECT" : "ACCEPT or DROP") +
                               ", got '" + std::string(v) + "'");
    field = *verdict;
    return {};
  };
}

Status parse_ratelimit(const Line& line, std::string_view v, LogRateLimit& out) {
  LogRateLimit r;
  bool first = true;
  for (auto part : split(v, ',')) {
    part = trim(part);
    std::string_view key = "enable", value = part;
    if (auto eq = part.find('='); eq != std::string_view::npos) {
      key = part.substr(0, eq);
      value = part.substr(eq + 1);
    } else if (!first) {
      return line.error(part,
                        "expected key=value in log_ratelimit, got '" + std::string(part) + "'");
    }
    first = false;
    if (key == "enable") {
      auto b = parse_bool(value);
      if (!b)
        return line.error(value,
                          "log_ratelimit enable must be 0 or 1, got '" + std::string(value) + "'");
      r.enable = *b;
    } else if (key == "burst") {
      auto n = parse_uint(value);
      if (!n || *n < 1 || *n > 100)
        return line.error(value,
                          "log_ratelimit burst must be 1..100, got '" + std::string(value) + "'");
      r.burst = static_cast<uint32_t>(*n);
    } else if (key == "rate") {
      auto slash = value.find('/');
      auto n = parse_uint(value.substr(0, slash));
      std::string unit =
          slash == std::string_view::npos ? "second" : std::string(value.substr(slash + 1));
      if (!n || *n < 1 || (unit != "second" && unit != "minute" && unit != "hour" && unit != "day"))
        return line.error(
            value, "log_ratelimit rate must look like 1/second, got '" + std::string(value) + "'");
      r.rate = static_cast<uint32_t>(*n);
      r.unit = unit;
    } else {
      return line.error(key, "unknown log_ratelimit key '" + std::string(key) + "'");
    }
  }
  out = r;
  return {};
}

OptionTable cluster_options(ClusterOptions& o) {
  OptionTable t;
  t.setters["enable"] = [&o](const Line& line, std::string_view v) -> Status {
    auto n = parse_uint(v);
    if (!n) return line.error(v, "expected 0, 1 or a timestamp, got '" + std::string(v) + "'");
    o.enable = static_cast<int64_t>(*n);
    return {};
  };
  t.setters["ebtables"] = bool_option(o.ebtables);
  t.setters["policy_in"] = verdict_option(o.policy_in, true);
  t.setters["policy_out"] = verdict_option(o.policy_out, true);
  t.setters["policy_forward"] = verdict_option(o.policy_forward, false);
  t.setters["log_ratelimit"] = [&o](const Line& line, std::string_view v) {
    return parse_ratelimit(line, v, o.log_ratelimit);
  };
  return t;
}

OptionTable host_options(HostOptions& o) {
  OptionTable t;
  t.setters["enable"] = bool_option(o.enable);
  t.setters["nftables"] = bool_option(o.nftables);
  t.setters["nosmurfs"] = bool_option(o.nosmurfs);
  t.setters["tcpflags"] = bool_option(o.tcpflags);
  t.setters["ndp"] = bool_option(o.ndp);
  t.setters["nf_conntrack_allow_invalid"] = bool_option(o.nf_conntrack_allow_invalid);
  t.setters["protection_synflood"] = bool_option(o.protection_synflood);
  t.setters["protection_synflood_rate"] = uint_option(o.protection_synflood_rate, 1, 1u << 30);
  t.setters["protection_synflood_burst"] = uint_option(o.protection_synflood_burst, 1, 1u << 30);
  t.setters["log_nf_conntrack"] = bool_option(o.log_nf_conntrack);
  t.setters["log_level_in"] = log_option(o.log_level_in);
  t.setters["log_level_out"] = log_option(o.log_level_out);
  t.setters["log_level_forward"] = log_option(o.log_level_forward);
  t.setters["smurf_log_level"] = log_option(o.smurf_log_level);
  t.setters["tcp_flags_log_level"] = log_option(o.tcp_flags_log_level);
  t.setters["nf_conntrack_max"] = opt_uint_option(o.nf_conntrack_max, 32768, 1u << 31);
  t.setters["nf_conntrack_tcp_timeout_established"] =
      opt_uint_option(o.nf_conntrack_tcp_timeout_established, 7875, 1u << 31);
  t.setters["nf_conntrack_tcp_timeout_syn_recv"] =
      opt_uint_option(o.nf_conntrack_tcp_timeout_syn_recv, 30, 60);
  t.setters["nf_conntrack_helpers"] = [&o](const Line& line, std::string_view v) -> Status {
    static const std::set<std::string> kHelpers = {"amanda", "ftp", "irc",  "netbios-ns", "pptp",
                                                   "sane",   "sip", "snmp", "tftp"};
    o.nf_conntrack_helpers.clear();
    for (auto h : split(v, ',')) {
      h = trim(h);
      if (!kHelpers.contains(std::string(h)))
        return line.error(h, "unknown conntrack helper '" + std::string(h) + "'");
      o.nf_conntrack_helpers.emplace_back(h);
    }
    return {};
  };
  return t;
}

OptionTable guest_options(GuestOptions& o) {
  OptionTable t;
  t.setters["enable"] = bool_option(o.enable);
  t.setters["macfilter"] = bool_option(o.macfilter);
  t.setters["ipfilter"] = bool_option(o.ipfilter);
  t.setters["dhcp"] = bool_option(o.dhcp);
  t.setters["ndp"] = bool_option(o.ndp);
  t.setters["radv"] = bool_option(o.radv);
  t.setters["policy_in"] = verdict_option(o.policy_in, true);
  t.setters["policy_out"] = verdict_option(o.policy_out, true);
  t.setters["log_level_in"] = log_option(o.log_level_in);
  t.setters["log_level_out"] = log_option(o.log_level_out);
  // Perl-only features (Suricata IPS, ebtables layer-2 allow list): read, not enforced.
  t.ignored = {"ips", "ips_queues", "layer2_protocols"};
  return t;
}

OptionTable vnet_options(VnetOptions& o) {
  OptionTable t;
  t.setters["enable"] = bool_option(o.enable);
  t.setters["policy_forward"] = verdict_option(o.policy_forward, false);
  t.setters["log_level_forward"] = log_option(o.log_level_forward);
  return t;
}

Status parse_option_line(const Line& line, std::string_view body, const OptionTable& table,
                         std::set<std::string>& seen) {
  auto colon = body.find(':');
  if (colon == std::string_view::npos)
    return line.error(body, "expected 'key: value' in [OPTIONS], got '" + std::string(body) + "'");
  std::string_view key = trim(body.substr(0, colon));
  std::string_view value = trim(body.substr(colon + 1));
  std::string k(key);
  if (value.empty()) return line.error(key, "option '" + k + "' has no value");
  if (!seen.insert(k).second) return line.error(key, "duplicate option '" + k + "'");
  if (table.ignored.contains(k)) return {};
  auto it = table.setters.find(k);
  if (it == table.setters.end()) return line.error(key, "unknown option '" + k + "'");
  return it->second(line, value);
}

// ---- addresses, ports, rules ----

Result<AddressMatch> parse_address(const Line& line, std::string_view v) {
  AddressMatch a;
  a.text = std::string(v);
  if (v.size() > 512) return line.error(v, "address list longer than 512 characters");
  auto scoped = [&](std::string_view s) {
    for (std::string_view scope : {"dc/", "guest/", "sdn/"}) {
      if (s.starts_with(scope)) {
        a.scope = std::string(scope.substr(0, scope.size() - 1));
        return s.substr(scope.size());
      }
    }
    return s;
  };
  if (v.starts_with('+')) {
    a.kind = AddressMatch::Kind::IpSet;
    auto name = scoped(v.substr(1));
    if (!valid_name(name, 64)) return line.error(v, "invalid ipset name '" + std::string(v) + "'");
    a.name = to_lower(name);
    return a;
  }
  auto name = scoped(v);
  if (!a.scope.empty() || (valid_name(name, 64) && !parse_ip_range(v))) {
    if (a.scope == "sdn")
      return line.error(v, "sdn/ names are ipsets only; write +" + std::string(v));
    if (!valid_name(name, 64)) return line.error(v, "invalid alias name '" + std::string(v) + "'");
    a.kind = AddressMatch::Kind::Alias;
    a.name = to_lower(name);
    return a;
  }
  a.kind = AddressMatch::Kind::Literal;
  auto parts = split(v, ',');
  for (auto part : parts) {
    part = trim(part);
    if (part.empty())
      return line.error(part, "empty entry in address list '" + std::string(v) + "'");
    if (parts.size() > 1 && part.find('-') != std::string_view::npos)
      return line.error(part,
                        "address ranges are not allowed in lists: '" + std::string(part) + "'");
    auto range = parse_ip_range(part);
    if (!range) return line.error(part, range.error().message());
    if (!a.literal.empty() && a.literal.front().family() != range->family())
      return line.error(part, "address list mixes IPv4 and IPv6: '" + std::string(v) + "'");
    a.literal.push_back(*range);
  }
  return a;
}

Result<uint16_t> parse_port_number(const Line& line, std::string_view p) {
  if (auto n = parse_uint(p)) {
    if (*n > 65535) return line.error(p, "port out of range: '" + std::string(p) + "'");
    return static_cast<uint16_t>(*n);
  }
  if (auto s = service_port(p)) return *s;
  return line.error(p, "unknown port or service '" + std::string(p) + "'");
}

Result<std::vector<PortRange>> parse_ports(const Line& line, std::string_view v) {
  std::vector<PortRange> out;
  for (auto part : split(v, ',')) {
    part = trim(part);
    if (part.empty()) return line.error(v, "empty entry in port list '" + std::string(v) + "'");
    auto colon = part.find(':');
    if (colon == 0 || colon + 1 == part.size())
      return line.error(part, "incomplete port range '" + std::string(part) + "'");
    uint16_t lo = MOAT_TRY(parse_port_number(line, part.substr(0, colon)));
    uint16_t hi = lo;
    if (colon != std::string_view::npos)
      hi = MOAT_TRY(parse_port_number(line, part.substr(colon + 1)));
    if (hi < lo) return line.error(part, "backwards port range '" + std::string(part) + "'");
    out.push_back({lo, hi});
  }
  return out;
}

Result<IcmpMatch> parse_icmp(const Line& line, std::string_view v, bool v6) {
  auto t = v6 ? icmpv6_type(v) : icmp_type(v);
  if (!t)
    return line.error(
        v, std::string("unknown ") + (v6 ? "icmpv6" : "icmp") + " type '" + std::string(v) + "'");
  return IcmpMatch{v6, t->type, t->code, std::string(v)};
}

bool is_icmp(uint8_t proto) { return proto == 1 || proto == 58; }

}  // namespace

Result<Rule> parse_rule(std::string_view raw, FwFileKind kind, bool in_group,
                        const SourceLocation& where) {
  Line line{raw, where};
  Rule rule;
  rule.where = where;
  auto [body, comment] = split_comment(raw);
  rule.comment = std::string(comment);
  if (body.starts_with('|')) {
    rule.enabled = false;
    body = trim(body.substr(1));
  }
  auto tokens = split_ws(body);
  if (tokens.size() < 2) return line.error(body, "incomplete rule '" + std::string(body) + "'");
  std::string_view dir = tokens[0];
  bool group_rule = iequals(dir, "GROUP");
  if (group_rule) {
    if (in_group) return line.error(dir, "GROUP rules are not allowed inside a security group");
    if (!valid_name(tokens[1], 18))
      return line.error(tokens[1], "invalid security group name '" + std::string(tokens[1]) + "'");
    rule.kind = Rule::Kind::Group;
    rule.group = to_lower(tokens[1]);  // [group x] names are lower-cased too
  } else if (iequals(dir, "IN")) {
    rule.direction = Direction::In;
  } else if (iequals(dir, "OUT")) {
    rule.direction = Direction::Out;
  } else if (iequals(dir, "FORWARD")) {
    rule.direction = Direction::Forward;
  } else {
    return line.error(
        dir, "unknown rule direction '" + std::string(dir) + "' (IN, OUT, FORWARD or GROUP)");
  }
  if (!group_rule) {
    bool allowed = true;
    if (kind == FwFileKind::Guest && rule.direction == Direction::Forward) allowed = false;
    if (kind == FwFileKind::Vnet && rule.direction != Direction::Forward) allowed = false;
    if (!allowed)
      return line.error(
          dir, std::string(to_string(rule.direction)) + " rules are not allowed in this file");
    std::string_view action = tokens[1];
    if (auto v = parse_verdict(action)) {
      rule.kind = Rule::Kind::Action;
      rule.verdict = *v;
    } else if (auto open = action.find('(');
               open != std::string_view::npos && action.ends_with(')')) {
      auto macro = find_macro(action.substr(0, open));
      if (!macro)
        return line.error(action, "unknown macro '" + std::string(action.substr(0, open)) + "'");
      auto v2 = parse_verdict(action.substr(open + 1, action.size() - open - 2));
      if (!v2)
        return line.error(action, "macro verdict must be ACCEPT, DROP or REJECT in '" +
                                      std::string(action) + "'");
      rule.kind = Rule::Kind::Macro;
      rule.macro = std::string(macro->name);
      rule.verdict = *v2;
    } else {
      return line.error(action, "unknown action '" + std::string(action) +
                                    "' (ACCEPT, DROP, REJECT or Macro(VERDICT))");
    }
    if (rule.direction == Direction::Forward && rule.verdict == Verdict::Reject)
      return line.error(action, "REJECT is not allowed on FORWARD rules");
  }

  std::string_view dport_token, sport_token, icmp_token, proto_token, dest_token;
  std::set<std::string> seen;
  for (size_t i = 2; i < tokens.size(); i += 2) {
    std::string_view opt = tokens[i];
    std::string_view name = opt;
    if (name.starts_with("--"))
      name.remove_prefix(2);
    else if (name.starts_with('-'))
      name.remove_prefix(1);
    else
      return line.error(opt, "expected an option like -p, got '" + std::string(opt) + "'");
    std::string key(name);
    if (key == "iface") key = "i";
    if (key == "proto") key = "p";
    if (i + 1 >= tokens.size())
      return line.error(opt, "option '" + std::string(opt) + "' needs a value");
    std::string_view value = tokens[i + 1];
    if (!seen.insert(key).second)
      return line.error(opt, "option '" + std::string(opt) + "' given twice");
    if (group_rule && key != "i")
      return line.error(opt, "GROUP rules accept only -i, not '" + std::string(opt) + "'");
    if (key == "i") {
      if (kind == FwFileKind::Guest) {
        auto n = value.starts_with("net") ? parse_uint(value.substr(3)) : std::nullopt;
        if (!n || *n >= 32)
          return line.error(
              value, "guest interface must be net0..net31, got '" + std::string(value) + "'");
      } else if (value.size() > 15 || value.empty()) {
        return line.error(value, "invalid interface name '" + std::string(value) + "'");
      }
      rule.iface = std::string(value);
    } else if (key == "source" || key == "dest") {
      auto a = MOAT_TRY(parse_address(line, value));
      (key == "source" ? rule.source : rule.dest) = std::move(a);
      if (key == "dest") dest_token = value;
    } else if (key == "p") {
      auto p = protocol_number(value);
      if (!p) return line.error(value, "unknown protocol '" + std::string(value) + "'");
      rule.proto = *p;
      rule.proto_text = std::string(value);
      proto_token = value;
    } else if (key == "dport") {
      dport_token = value;
    } else if (key == "sport") {
      sport_token = value;
    } else if (key == "icmp-type") {
      icmp_token = value;
    } else if (key == "log") {
      auto l = parse_log_level(value);
      if (!l) return line.error(value, "unknown log level '" + std::string(value) + "'");
      rule.log = *l;
    } else {
      return line.error(opt, "unknown rule option '" + std::string(opt) + "'");
    }
  }
  if (tokens.size() > 2 && (tokens.size() - 2) % 2 != 0)
    return line.error(tokens.back(), "option '" + std::string(tokens.back()) + "' needs a value");

  const Macro* macro = rule.kind == Rule::Kind::Macro ? find_macro(rule.macro) : nullptr;
  bool macro_fixes_proto =
      macro && std::any_of(macro->entries.begin(), macro->entries.end(),
                           [](const MacroEntry& e) { return !e.proto.empty(); });
  if (macro && rule.proto && macro_fixes_proto)
    return line.error(proto_token, "macro " + rule.macro + " fixes the protocol; remove -p " +
                                       std::string(proto_token));
  bool ports_given = !dport_token.empty() || !sport_token.empty();
  if (ports_given && !rule.proto && !macro_fixes_proto) {
    std::string_view tok = !dport_token.empty() ? dport_token : sport_token;
    return line.error(tok,
                      "port '" + std::string(tok) + "' needs a protocol: add -p tcp or -p udp");
  }
  if (rule.proto && is_icmp(*rule.proto) && !dport_token.empty()) {
    // Legacy: an icmp type name given in -dport; with -icmp-type as well it is ambiguous.
    if (!icmp_token.empty())
      return line.error(
          icmp_token, "-icmp-type " + std::string(icmp_token) + " cannot be combined with -dport");
    icmp_token = dport_token;
    dport_token = {};
  }
  // What is left of -dport/-sport must go to a protocol with ports (an icmp -sport does not).
  std::string_view port_tok = !dport_token.empty() ? dport_token : sport_token;
  if (!port_tok.empty() && rule.proto && !protocol_has_ports(*rule.proto))
    return line.error(port_tok, "protocol '" + rule.proto_text + "' has no ports, got '" +
                                    std::string(port_tok) + "'");
  if (!port_tok.empty() && macro) {
    // The rule's ports apply to every entry of the macro: all of them must carry ports.
    for (const auto& e : macro->entries) {
      auto p = protocol_number(e.proto);
      if (p && !protocol_has_ports(*p))
        return line.error(port_tok, "macro " + rule.macro + " includes protocol " +
                                        std::string(e.proto) + ", which has no ports, got '" +
                                        std::string(port_tok) + "'");
    }
  }
  if (!dport_token.empty()) {
    if (macro && std::any_of(macro->entries.begin(), macro->entries.end(),
                             [](const MacroEntry& e) { return !e.dport.empty(); }))
      return line.error(dport_token, "macro " + rule.macro +
                                         " fixes the destination port; remove -dport " +
                                         std::string(dport_token));
    rule.dport = MOAT_TRY(parse_ports(line, dport_token));
  }
  if (!sport_token.empty()) {
    if (macro && std::any_of(macro->entries.begin(), macro->entries.end(),
                             [](const MacroEntry& e) { return !e.sport.empty(); }))
      return line.error(sport_token, "macro " + rule.macro +
                                         " fixes the source port; remove -sport " +
                                         std::string(sport_token));
    rule.sport = MOAT_TRY(parse_ports(line, sport_token));
  }
  if (!icmp_token.empty()) {
    if (!rule.proto || !is_icmp(*rule.proto))
      return line.error(icmp_token,
                        "-icmp-type " + std::string(icmp_token) + " needs -p icmp or -p icmpv6");
    rule.icmp = MOAT_TRY(parse_icmp(line, icmp_token, *rule.proto == 58));
  }
  for (const auto* addr : {&rule.source, &rule.dest}) {
    if (*addr && (*addr)->kind == AddressMatch::Kind::Literal && rule.proto &&
        is_icmp(*rule.proto)) {
      int fam = (*addr)->literal.front().family();
      if ((fam == 4) != (*rule.proto == 1))
        return line.error(proto_token,
                          "address family does not match protocol '" + rule.proto_text + "'");
    }
  }
  if (rule.source && rule.dest && rule.source->kind == AddressMatch::Kind::Literal &&
      rule.dest->kind == AddressMatch::Kind::Literal &&
      rule.source->literal.front().family() != rule.dest->literal.front().family())
    return line.error(dest_token, "source and destination are of different IP families: '" +
                                      rule.source->text + "' and '" + rule.dest->text + "'");
  return rule;
}

namespace {

// The shared section walker: calls back per section header and per content line.
enum class Section { None, Options, Aliases, Rules, IpSet, Group };

struct FileParser {
  FwFileKind kind;
  std::string file;
  std::function<Status(Section, std::string_view name, std::string_view comment, const Line&)>
      on_header;
  std::function<Status(Section, const Line&, std::string_view body)> on_line;

  Status run(std::string_view text) {
    Section current = Section::None;
    int number = 0;
    for (auto raw : split(text, '\n')) {
      ++number;
      Line line{raw, {file, number, 0}};
      auto body = trim(raw);
      if (body.empty() || body.starts_with('#')) continue;
      if (body.starts_with('[')) {
        auto close = body.find(']');
        if (close == std::string_view::npos)
          return line.error(body, "unterminated section header '" + std::string(body) + "'");
        auto inner = trim(body.substr(1, close - 1));
        auto rest = trim(body.substr(close + 1));
        std::string_view comment;
        if (!rest.empty()) {
          if (!rest.starts_with('#'))
            return line.error(rest,
                              "unexpected text after section header: '" + std::string(rest) + "'");
          comment = trim(rest.substr(1));
        }
        auto words = split_ws(inner);
        std::string_view name;
        if (words.size() == 1 && iequals(words[0], "OPTIONS"))
          current = Section::Options;
        else if (words.size() == 1 && iequals(words[0], "ALIASES"))
          current = Section::Aliases;
        else if (words.size() == 1 && iequals(words[0], "RULES"))
          current = Section::Rules;
        else if (words.size() == 2 && iequals(words[0], "IPSET"))
          current = Section::IpSet, name = words[1];
        else if (words.size() == 2 && iequals(words[0], "group"))
          current = Section::Group, name = words[1];
        else
          return line.error(inner.empty() ? body : inner,
                            "unknown section '[" + std::string(inner) + "]'");
        bool allowed = false;
        switch (kind) {
          case FwFileKind::Cluster:
            allowed = true;
            break;
          case FwFileKind::Host:
          case FwFileKind::Vnet:
            allowed = current == Section::Options || current == Section::Rules;
            break;
          case FwFileKind::Guest:
            allowed = current != Section::Group;
            break;
        }
        if (!allowed)
          return line.error(inner,
                            "section '[" + std::string(inner) + "]' is not allowed in this file");
        if (!name.empty()) {
          size_t max = current == Section::Group ? 18 : 64;
          if (!valid_name(name, max))
            return line.error(name, "invalid name '" + std::string(name) + "'");
        }
        MOAT_RETURN_IF_ERROR(on_header(current, name, comment, line));
        continue;
      }
      if (current == Section::None)
        return line.error(body, "line outside of any section: '" + std::string(body) + "'");
      MOAT_RETURN_IF_ERROR(on_line(current, line, body));
    }
    return {};
  }
};

Status parse_alias_line(const Line& line, std::string_view body,
                        std::map<std::string, Alias>& out) {
  auto [text, comment] = split_comment(body);
  auto words = split_ws(text);
  if (words.size() != 2)
    return line.error(text,
                      "expected 'name address' in [ALIASES], got '" + std::string(text) + "'");
  if (!valid_name(words[0], 64))
    return line.error(words[0], "invalid alias name '" + std::string(words[0]) + "'");
  auto range = parse_ip_range(words[1]);
  if (!range || !range->prefix_length())
    return line.error(words[1],
                      "alias needs an address or CIDR, got '" + std::string(words[1]) + "'");
  std::string name = to_lower(words[0]);
  if (out.contains(name)) return line.error(words[0], "duplicate alias '" + name + "'");
  SourceLocation at = line.where;
  at.column = line.column_of(words[0]);
  out[name] = Alias{name, *range, std::string(comment), at};
  return {};
}

Status parse_ipset_line(const Line& line, std::string_view body, IpSet& set) {
  auto [text, comment] = split_comment(body);
  IpSetEntry e;
  e.comment = std::string(comment);
  if (text.starts_with('!')) {
    e.nomatch = true;
    text = trim(text.substr(1));
  }
  if (text.empty() || split_ws(text).size() != 1)
    return line.error(
        body, "expected one address or alias per ipset line, got '" + std::string(body) + "'");
  e.where = line.where;
  e.where.column = line.column_of(text);
  if (auto range = parse_ip_range(text)) {
    // Like aliases, entries are an address or a CIDR; Proxmox has no ranges in ipsets.
    if (!range->prefix_length())
      return line.error(text, "ipset entry must be an address, a CIDR or an alias, got '" +
                                  std::string(text) + "'");
    if (range->prefix_length() == 0)
      return line.error(text, "ipset entries cannot be /0, got '" + std::string(text) + "'");
    e.cidr = *range;
  } else {
    std::string_view name = text;
    for (std::string_view scope : {"dc/", "guest/"})
      if (name.starts_with(scope)) {
        e.alias_scope = std::string(scope.substr(0, scope.size() - 1));
        name.remove_prefix(scope.size());
      }
    if (!valid_name(name, 64))
      return line.error(text, "not an address or alias: '" + std::string(text) + "'");
    e.alias = to_lower(name);
  }
  for (const auto& other : set.entries)
    if (other.cidr == e.cidr && other.alias == e.alias && other.alias_scope == e.alias_scope)
      return line.error(text, "duplicate entry '" + std::string(text) + "' in ipset " + set.name);
  set.entries.push_back(std::move(e));
  return {};
}

}  // namespace

namespace {

// One walker for the four file kinds; the sections a kind may not have were already
// refused by FileParser, so each kind's struct only needs the members it uses.
template <class Fw, class Options>
Result<Fw> parse_fw_file(std::string_view text, const std::string& file, FwFileKind kind,
                         OptionTable (*make_options)(Options&)) {
  Fw fw;
  fw.file = file;
  OptionTable options = make_options(fw.options);
  std::set<std::string> seen;
  std::string current;  // the [IPSET x] or [group x] being read
  FileParser p{kind, file, {}, {}};
  p.on_header = [&](Section s, std::string_view name, std::string_view comment,
                    const Line& line) -> Status {
    current = to_lower(name);
    if constexpr (requires { fw.ipsets; })
      if (s == Section::IpSet) {
        if (fw.ipsets.contains(current))
          return line.error(name, "duplicate ipset '" + current + "'");
        fw.ipsets[current] = IpSet{current, std::string(comment), {}, line.where};
      }
    if constexpr (requires { fw.groups; })
      if (s == Section::Group) {
        if (fw.groups.contains(current))
          return line.error(name, "duplicate security group '" + current + "'");
        fw.groups[current] = SecurityGroup{current, std::string(comment), {}, line.where};
      }
    return {};
  };
  p.on_line = [&](Section s, const Line& line, std::string_view body) -> Status {
    switch (s) {
      case Section::Options:
        return parse_option_line(line, body, options, seen);
      case Section::Aliases:
        if constexpr (requires { fw.aliases; }) return parse_alias_line(line, body, fw.aliases);
        break;
      case Section::IpSet:
        if constexpr (requires { fw.ipsets; })
          return parse_ipset_line(line, body, fw.ipsets[current]);
        break;
      case Section::Group:
        if constexpr (requires { fw.groups; }) {
          fw.groups[current].rules.push_back(
              MOAT_TRY(parse_rule(line.text, kind, true, line.where)));
          return {};
        }
        break;
      case Section::Rules:
        fw.rules.push_back(MOAT_TRY(parse_rule(line.text, kind, false, line.where)));
        return {};
      case Section::None:
        break;
    }
    return {};
  };
  MOAT_RETURN_IF_ERROR(p.run(text));
  return fw;
}

}  // namespace

Result<ClusterFw> parse_cluster_fw(std::string_view text, const std::string& file) {
  return parse_fw_file<ClusterFw>(text, file, FwFileKind::Cluster, cluster_options);
}

Result<HostFw> parse_host_fw(std::string_view text, const std::string& file) {
  return parse_fw_file<HostFw>(text, file, FwFileKind::Host, host_options);
}

Result<GuestFw> parse_guest_fw(std::string_view text, const std::string& file) {
  return parse_fw_file<GuestFw>(text, file, FwFileKind::Guest, guest_options);
}

Result<VnetFw> parse_vnet_fw(std::string_view text, const std::string& file) {
  return parse_fw_file<VnetFw>(text, file, FwFileKind::Vnet, vnet_options);
}

}  // namespace moat::firewall
