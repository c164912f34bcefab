#include "moat/firewall/ir.h"

#include <algorithm>
#include <cstring>

namespace moat::firewall::nft {

const char* to_string(Family f) {
  switch (f) {
    case Family::Inet:
      return "inet";
    case Family::Ip:
      return "ip";
    case Family::Netdev:
      return "netdev";
    case Family::Bridge:
      return "bridge";
    case Family::Ip6:
      return "ip6";
  }
  return "?";
}

const char* to_string(Hook h) {
  switch (h) {
    case Hook::Prerouting:
      return "prerouting";
    case Hook::Input:
      return "input";
    case Hook::Forward:
      return "forward";
    case Hook::Output:
      return "output";
    case Hook::Postrouting:
      return "postrouting";
    case Hook::Ingress:
      return "ingress";
    case Hook::Egress:
      return "egress";
  }
  return "?";
}

size_t field_size(Field f) {
  switch (f) {
    case Field::Iifname:
    case Field::Oifname:
      return 16;
    case Field::L4proto:
    case Field::Nfproto:
    case Field::IcmpType:
    case Field::IcmpCode:
    case Field::Icmp6Type:
    case Field::Icmp6Code:
    case Field::TcpFlags:
      return 1;
    case Field::Protocol:
    case Field::EtherType:
    case Field::Sport:
    case Field::Dport:
    case Field::ArpOp:
      return 2;
    case Field::Mark:
    case Field::CtState:
    case Field::FibSaddrType:
    case Field::Ip4Saddr:
    case Field::Ip4Daddr:
    case Field::ArpSip:
    case Field::ArpTip:
      return 4;
    case Field::Ip6Saddr:
    case Field::Ip6Daddr:
      return 16;
    case Field::EtherSaddr:
    case Field::EtherDaddr:
    case Field::ArpSha:
      return 6;
  }
  return 0;
}

const char* field_expr(Field f) {
  switch (f) {
    case Field::Iifname:
      return "iifname";
    case Field::Oifname:
      return "oifname";
    case Field::L4proto:
      return "meta l4proto";
    case Field::Nfproto:
      return "meta nfproto";
    case Field::Protocol:
      return "meta protocol";
    case Field::Mark:
      return "meta mark";
    case Field::CtState:
      return "ct state";
    case Field::Ip4Saddr:
      return "ip saddr";
    case Field::Ip4Daddr:
      return "ip daddr";
    case Field::Ip6Saddr:
      return "ip6 saddr";
    case Field::Ip6Daddr:
      return "ip6 daddr";
    case Field::Sport:
      return "th sport";
    case Field::Dport:
      return "th dport";
    case Field::IcmpType:
      return "icmp type";
    case Field::IcmpCode:
      return "icmp code";
    case Field::Icmp6Type:
      return "icmpv6 type";
    case Field::Icmp6Code:
      return "icmpv6 code";
    case Field::EtherSaddr:
      return "ether saddr";
    case Field::EtherDaddr:
      return "ether daddr";
    case Field::EtherType:
      return "ether type";
    case Field::ArpOp:
      return "arp operation";
    case Field::ArpSha:
      return "arp saddr ether";
    case Field::ArpSip:
      return "arp saddr ip";
    case Field::ArpTip:
      return "arp daddr ip";
    case Field::TcpFlags:
      return "tcp flags";
    case Field::FibSaddrType:
      return "fib saddr type";
  }
  return "?";
}

std::string table_key(Family family, const std::string& name) {
  return std::string(to_string(family)) + " " + name;
}

Table& Ruleset::table(Family family, const std::string& name) {
  Table& t = tables[table_key(family, name)];
  t.family = family;
  t.name = name;
  return t;
}

Bytes ifname_bytes(const std::string& name) {
  Bytes b(16, 0);
  std::memcpy(b.data(), name.data(), std::min<size_t>(name.size(), 15));
  return b;
}

Bytes be16(uint16_t v) { return {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }
Bytes u8(uint8_t v) { return {v}; }
Bytes host32(uint32_t v) {
  Bytes b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}
Interval single(Bytes v) { return {v, v}; }

Interval ifname_wildcard(const std::string& prefix) {
  Interval names{ifname_bytes(prefix), ifname_bytes(prefix)};
  std::fill(names.hi.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(prefix.size(), 15)),
            names.hi.end(), uint8_t{0xff});
  return names;
}

std::optional<std::string> ifname_prefix(const Interval& names) {
  const Bytes &lo = names.lo, &hi = names.hi;
  if (lo.size() != 16 || hi.size() != 16 || lo == hi) return std::nullopt;
  size_t n = 0;
  while (n < 16 && lo[n] != 0 && lo[n] == hi[n]) ++n;
  if (n == 0 ||
      !std::all_of(lo.begin() + static_cast<std::ptrdiff_t>(n), lo.end(),
                   [](uint8_t b) { return b == 0; }) ||
      !std::all_of(hi.begin() + static_cast<std::ptrdiff_t>(n), hi.end(),
                   [](uint8_t b) { return b == 0xff; }))
    return std::nullopt;
  return std::string(lo.begin(), lo.begin() + static_cast<std::ptrdiff_t>(n));
}

bool is_max(const Bytes& v) {
  return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0xff; });
}

Bytes successor(Bytes v) {
  for (size_t i = v.size(); i-- > 0;)
    if (++v[i] != 0) break;
  return v;
}

Bytes predecessor(Bytes v) {
  for (size_t i = v.size(); i-- > 0;)
    if (v[i]-- != 0) break;
  return v;
}

void merge_intervals(std::vector<Interval>& intervals) {
  std::sort(intervals.begin(), intervals.end());
  std::vector<Interval> out;
  for (auto& iv : intervals) {
    if (!out.empty() &&
        (iv.lo <= out.back().hi || is_max(out.back().hi) || successor(out.back().hi) == iv.lo)) {
      if (iv.hi > out.back().hi) out.back().hi = iv.hi;
      continue;
    }
    out.push_back(std::move(iv));
  }
  intervals = std::move(out);
}

}  // namespace moat::firewall::nft
