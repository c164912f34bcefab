#include "moat/base/ip.h"

#include <arpa/inet.h>

#include "moat/base/strings.h"

namespace moat {

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == 4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = 4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = 6;
    return a;
  }
  return std::nullopt;
}

namespace {

// Applies prefix `len`: low = address with host bits cleared, high = host bits set.
IpRange prefix_range(IpAddress a, int len) {
  IpAddress lo = a, hi = a;
  for (size_t i = 0; i < a.size(); ++i) {
    int bits = std::max(0, std::min(8, len - static_cast<int>(i) * 8));
    uint8_t mask = static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
    lo.bytes[i] &= mask;
    hi.bytes[i] |= static_cast<uint8_t>(~mask);
  }
  return {lo, hi};
}

}  // namespace

std::optional<int> IpRange::prefix_length() const {
  int bits = static_cast<int>(first.size()) * 8;
  for (int len = 0; len <= bits; ++len) {
    IpRange r = prefix_range(first, len);
    if (r.first == first && r.last == last) return len;
  }
  return std::nullopt;
}

std::string IpRange::to_string() const {
  if (first == last) return first.to_string();
  if (auto len = prefix_length()) return first.to_string() + "/" + std::to_string(*len);
  return first.to_string() + "-" + last.to_string();
}

Result<IpRange> parse_ip_range(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail(ErrorCode::InvalidConfig, "invalid address '" + std::string(text) + "': " + why);
  };
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    auto addr = parse_ip(text.substr(0, slash));
    if (!addr) return bad("not an IP address");
    auto len = parse_uint(text.substr(slash + 1));
    if (!len || *len > addr->size() * 8) return bad("bad prefix length");
    return prefix_range(*addr, static_cast<int>(*len));
  }
  if (auto dash = text.find('-'); dash != std::string_view::npos) {
    auto lo = parse_ip(text.substr(0, dash));
    auto hi = parse_ip(text.substr(dash + 1));
    if (!lo || !hi) return bad("not an IP range");
    if (lo->family != hi->family) return bad("range mixes IPv4 and IPv6");
    if (*hi < *lo) return bad("range end is below its start");
    return IpRange{*lo, *hi};
  }
  auto addr = parse_ip(text);
  if (!addr) return bad("not an IP address");
  return IpRange{*addr, *addr};
}

IpAddress next_address(const IpAddress& a, bool* overflow) {
  IpAddress n = a;
  for (int i = static_cast<int>(a.size()) - 1; i >= 0; --i) {
    if (++n.bytes[i] != 0) {
      if (overflow) *overflow = false;
      return n;
    }
  }
  if (overflow) *overflow = true;
  return n;
}

}  // namespace moat
