#include "moat/firewall/nft_text.h"

#include <cstring>

#include <fmt/format.h>

#include "moat/base/ip.h"
#include "moat/firewall/protocols.h"

namespace moat::firewall::nft {

namespace {

uint32_t read_host32(const Bytes& b) {
  uint32_t v = 0;
  std::memcpy(&v, b.data(), std::min<size_t>(4, b.size()));
  return v;
}

uint64_t read_be(const Bytes& b) {
  uint64_t v = 0;
  for (uint8_t byte : b) v = (v << 8) | byte;
  return v;
}

std::string hex_bytes(const Bytes& b, char sep) {
  std::string out;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i) out += sep;
    out += fmt::format("{:02x}", b[i]);
  }
  return out;
}

IpAddress to_ip(const Bytes& b) {
  IpAddress a;
  a.family = b.size() == 4 ? 4 : 6;
  std::memcpy(a.bytes.data(), b.data(), b.size());
  return a;
}

std::string ct_state_text(uint32_t bits) {
  static const std::pair<uint32_t, const char*> kNames[] = {{kCtInvalid, "invalid"},
                                                            {kCtEstablished, "established"},
                                                            {kCtRelated, "related"},
                                                            {kCtNew, "new"},
                                                            {kCtUntracked, "untracked"}};
  std::string out;
  for (auto [bit, name] : kNames)
    if (bits & bit) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

std::string one_value(Field field, const Bytes& v) {
  switch (field) {
    case Field::Iifname:
    case Field::Oifname:
      return "\"" +
             std::string(reinterpret_cast<const char*>(v.data()),
                         strnlen(reinterpret_cast<const char*>(v.data()), v.size())) +
             "\"";
    case Field::L4proto: {
      auto name = protocol_name(v[0]);
      return name.empty() ? std::to_string(v[0]) : std::string(name);
    }
    case Field::Nfproto:
      return v[0] == 2 ? "ipv4" : v[0] == 10 ? "ipv6" : std::to_string(v[0]);
    case Field::Protocol:
    case Field::EtherType: {
      uint64_t p = read_be(v);
      if (p == 0x0800) return "ip";
      if (p == 0x86dd) return "ip6";
      if (p == 0x0806) return "arp";
      return fmt::format("0x{:04x}", p);
    }
    case Field::Mark:
      return fmt::format("0x{:08x}", read_host32(v));
    case Field::CtState:
      return ct_state_text(read_host32(v));
    case Field::Ip4Saddr:
    case Field::Ip4Daddr:
    case Field::Ip6Saddr:
    case Field::Ip6Daddr:
    case Field::ArpSip:
    case Field::ArpTip:
      return to_ip(v).to_string();
    case Field::EtherSaddr:
    case Field::EtherDaddr:
    case Field::ArpSha:
      return hex_bytes(v, ':');
    case Field::TcpFlags:
      return fmt::format("0x{:02x}", v[0]);
    case Field::FibSaddrType: {
      static constexpr const char* kTypes[] = {"unspec",   "unicast",   "local",     "broadcast",
                                               "anycast",  "multicast", "blackhole", "unreachable",
                                               "prohibit", "throw",     "nat",       "xresolve"};
      uint32_t type = read_host32(v);
      return type < std::size(kTypes) ? kTypes[type] : std::to_string(type);
    }
    default:
      return std::to_string(read_be(v));
  }
}

bool is_ip(Field f) {
  return f == Field::Ip4Saddr || f == Field::Ip4Daddr || f == Field::Ip6Saddr ||
         f == Field::Ip6Daddr || f == Field::ArpSip || f == Field::ArpTip;
}

std::string fields_text(const std::vector<Field>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i)
    out += (i ? " . " : "") + std::string(field_expr(fields[i]));
  return out;
}

std::string type_name(Field f) {
  switch (f) {
    case Field::Iifname:
    case Field::Oifname:
      return "ifname";
    case Field::Ip4Saddr:
    case Field::Ip4Daddr:
    case Field::ArpSip:
    case Field::ArpTip:
      return "ipv4_addr";
    case Field::Ip6Saddr:
    case Field::Ip6Daddr:
      return "ipv6_addr";
    case Field::EtherSaddr:
    case Field::EtherDaddr:
    case Field::ArpSha:
      return "ether_addr";
    case Field::Sport:
    case Field::Dport:
      return "inet_service";
    case Field::L4proto:
      return "inet_proto";
    case Field::Mark:
      return "mark";
    default:
      return "";  // no named type: the set is declared with `typeof`
  }
}

std::string verdict_text(const Verdict& v) {
  switch (v.code) {
    case VerdictCode::None:
      return "";
    case VerdictCode::Accept:
      return "accept";
    case VerdictCode::Drop:
      return "drop";
    case VerdictCode::Return:
      return "return";
    case VerdictCode::Jump:
      return "jump " + v.chain;
    case VerdictCode::Goto:
      return "goto " + v.chain;
    case VerdictCode::RejectTcpReset:
      return "reject with tcp reset";
    case VerdictCode::RejectPortUnreach:
      return "reject with icmpx port-unreachable";
    case VerdictCode::RejectAdminProhibited:
      return "reject with icmpx admin-prohibited";
  }
  return "";
}

std::string match_text(const Match& m) {
  std::string lhs = fields_text(m.fields);
  switch (m.op) {
    case Match::Op::Eq:
      return lhs + " " + value_text(m.fields[0], m.values.at(0));
    case Match::Op::Neq:
      return lhs + " != " + value_text(m.fields[0], m.values.at(0));
    case Match::Op::In:
    case Match::Op::NotIn: {
      std::string neg = m.op == Match::Op::NotIn ? "!= " : "";
      if (!m.set.empty()) return lhs + " " + neg + "@" + m.set;
      std::string items;
      for (size_t i = 0; i < m.values.size(); ++i)
        items += (i ? ", " : "") + value_text(m.fields[0], m.values[i]);
      return lhs + " " + neg + "{ " + items + " }";
    }
    case Match::Op::BitsAny:
      if (m.fields[0] == Field::CtState) return lhs + " " + ct_state_text(m.mask);
      return fmt::format("{} & 0x{:08x} != 0", lhs, m.mask);
    case Match::Op::MaskEq:
      return fmt::format("{} & 0x{:02x} == 0x{:02x}", lhs, m.mask, m.value);
    case Match::Op::BitsNone:
      if (m.fields[0] == Field::CtState)
        return fmt::format("{} & ({}) == 0", lhs, ct_state_text(m.mask));
      return fmt::format("{} & 0x{:08x} == 0", lhs, m.mask);
  }
  return "";
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '"' ? '\'' : c);
  return out;
}

}  // namespace

std::string value_text(Field field, const Interval& value) {
  if (value.lo == value.hi) return one_value(field, value.lo);
  if (auto prefix = ifname_prefix(value);
      prefix && (field == Field::Iifname || field == Field::Oifname))
    return "\"" + escape(*prefix) + "*\"";
  if (is_ip(field)) return IpRange{to_ip(value.lo), to_ip(value.hi)}.to_string();
  return one_value(field, value.lo) + "-" + one_value(field, value.hi);
}

namespace {

// Seconds as nft lists them: "1m", "1h30m", "45s".
std::string duration_text(uint32_t seconds) {
  std::string out;
  for (auto [unit, size] : {std::pair{"d", 86400u}, {"h", 3600u}, {"m", 60u}, {"s", 1u}}) {
    if (seconds >= size) out += std::to_string(seconds / size) + unit;
    seconds %= size;
  }
  return out.empty() ? "0s" : out;
}

}  // namespace

std::string rule_text(const Rule& rule) {
  std::vector<std::string> parts;
  for (const auto& m : rule.matches) parts.push_back(match_text(m));
  if (rule.counter) parts.push_back("counter");
  auto limit_text = [](const Limit& l) {
    return fmt::format("limit rate {}{}/{} burst {} packets", l.over ? "over " : "", l.rate, l.unit,
                       l.burst);
  };
  if (rule.limit) parts.push_back(limit_text(*rule.limit));
  if (rule.update)
    parts.push_back(fmt::format("update @{} {{ {} {} }}", rule.update->set,
                                fields_text(rule.update->key), limit_text(rule.update->limit)));
  if (rule.log)
    parts.push_back(
        fmt::format("log prefix \"{}\" group {}", escape(rule.log->prefix), rule.log->group));
  if (rule.mark)
    parts.push_back(fmt::format("meta mark set meta mark & 0x{:08x} ^ 0x{:08x}",
                                rule.mark->and_mask, rule.mark->xor_value));
  if (rule.ether_daddr)
    parts.push_back("ether daddr set " + one_value(Field::EtherDaddr, *rule.ether_daddr));
  if (rule.notrack) parts.push_back("notrack");
  if (!rule.ct_helper.empty()) parts.push_back("ct helper set \"" + rule.ct_helper + "\"");
  if (!rule.vmap.empty()) parts.push_back(fields_text(rule.vmap_fields) + " vmap @" + rule.vmap);
  if (!rule.fwd.empty()) parts.push_back("fwd to \"" + rule.fwd + "\"");
  if (auto v = verdict_text(rule.verdict); !v.empty()) parts.push_back(v);
  if (!rule.origin.empty()) parts.push_back("comment \"" + escape(rule.origin) + "\"");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? " " : "") + parts[i];
  return out;
}

std::string elements_text(const Set& set, const std::vector<SetElement>& elements) {
  std::string out;
  for (size_t i = 0; i < elements.size(); ++i) {
    const auto& e = elements[i];
    if (i) out += ", ";
    for (size_t k = 0; k < e.key.size(); ++k)
      out += (k ? " . " : "") + value_text(set.key.at(k), e.key[k]);
    if (set.kind == Set::Kind::Vmap) out += " : " + verdict_text(e.verdict);
    if (set.kind == Set::Kind::MarkMap) out += fmt::format(" : 0x{:08x}", e.data);
  }
  return out;
}

std::string to_nft_text(const Ruleset& ruleset) {
  std::string out;
  for (const auto& [_, table] : ruleset.tables) {
    out += fmt::format("table {} {} {{\n", to_string(table.family), table.name);
    for (const auto& [name, h] : table.helpers)
      out +=
          fmt::format("\tct helper {} {{\n\t\ttype \"{}\" protocol {}\n\t\tl3proto {}\n\t}}\n",
                      name, h.type, h.protocol == 17 ? "udp" : "tcp", h.family == 6 ? "ip6" : "ip");
    for (const auto& [name, set] : table.sets) {
      std::string types;
      bool named = true;
      for (size_t i = 0; i < set.key.size(); ++i) {
        named = named && !type_name(set.key[i]).empty();
        types += (i ? " . " : "") + type_name(set.key[i]);
      }
      std::string decl = named ? "type " + types : "typeof " + fields_text(set.key);
      if (set.kind == Set::Kind::Vmap) decl += " : verdict";
      if (set.kind == Set::Kind::MarkMap) decl += named ? " : mark" : " : meta mark";
      out += fmt::format("\t{} {} {{\n\t\t{}\n", set.kind == Set::Kind::Set ? "set" : "map", name,
                         decl);
      if (set.size) out += fmt::format("\t\tsize {}\n", set.size);
      if (set.interval) out += "\t\tflags interval\n";
      if (set.dynamic) out += "\t\tflags dynamic,timeout\n";
      if (set.timeout_s) out += "\t\ttimeout " + duration_text(set.timeout_s) + "\n";
      if (!set.comment.empty()) out += "\t\tcomment \"" + escape(set.comment) + "\"\n";
      if (!set.elements.empty())
        out += "\t\telements = { " + elements_text(set, set.elements) + " }\n";
      out += "\t}\n";
    }
    for (const auto& [name, chain] : table.chains) {
      out += fmt::format("\tchain {} {{\n", name);
      if (chain.base) {
        std::string devices;
        for (const auto& d : chain.base->devices)
          devices += (devices.empty() ? "\"" : ", \"") + d + "\"";
        if (!devices.empty()) devices = " devices = { " + devices + " }";
        out += fmt::format("\t\ttype filter hook {}{} priority {}; policy {};\n",
                           to_string(chain.base->hook), devices, chain.base->priority,
                           chain.base->policy_drop ? "drop" : "accept");
      }
      for (const auto& rule : chain.rules) out += "\t\t" + rule_text(rule) + "\n";
      out += "\t}\n";
    }
    out += "}\n";
  }
  return out;
}

}  // namespace moat::firewall::nft
