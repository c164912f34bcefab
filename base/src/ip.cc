#include "moat/base/ip.h"

#include <arpa/inet.h>

#include <bit>

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
  // The bits both ends share are the prefix; after them `first` must be all zeros and `last`
  // all ones. (Trying every length was 129 masked copies per call, and the ipset compile
  // sorts by it: a third of a 12,000-entry compile.)
  size_t n = first.size();
  if (last.size() != n) return std::nullopt;
  size_t i = 0;
  while (i < n && first.bytes[i] == last.bytes[i]) ++i;
  if (i == n) return static_cast<int>(n) * 8;
  int shared = std::countl_zero(static_cast<uint8_t>(first.bytes[i] ^ last.bytes[i]));
  auto host = static_cast<uint8_t>(0xff >> shared);
  if ((first.bytes[i] & host) != 0 || (last.bytes[i] & host) != host) return std::nullopt;
  for (size_t j = i + 1; j < n; ++j)
    if (first.bytes[j] != 0 || last.bytes[j] != 0xff) return std::nullopt;
  return static_cast<int>(i) * 8 + shared;
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
