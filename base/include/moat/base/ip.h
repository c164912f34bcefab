// IP addresses, prefixes and ranges as byte strings in network order, shared by the firewall,
// bridges and SDN. An IpRange is inclusive [first, last] of one family; a CIDR is a range
// whose bounds are prefix-aligned. Value types; thread-safe.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "moat/base/result.h"

namespace moat {

struct IpAddress {
  int family = 4;                   // 4 or 6
  std::array<uint8_t, 16> bytes{};  // first 4 used for IPv4

  size_t size() const { return family == 4 ? 4 : 16; }
  std::string to_string() const;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct IpRange {
  IpAddress first;
  IpAddress last;
  int family() const { return first.family; }
  // "a.b.c.d", "a.b.c.d/nn" when prefix-aligned, else "first-last".
  std::string to_string() const;
  // The prefix length when the range is exactly one CIDR block.
  std::optional<int> prefix_length() const;
  bool contains(const IpAddress& a) const {
    return a.family == first.family && first <= a && a <= last;
  }
  friend auto operator<=>(const IpRange&, const IpRange&) = default;
};

// Parses "1.2.3.4" or "fe80::1". nullopt when it is not an address.
std::optional<IpAddress> parse_ip(std::string_view text);
// Parses an address, "addr/len" (host bits are cleared, as Proxmox does) or "a-b" (same
// family, a <= b). Error messages name the text.
Result<IpRange> parse_ip_range(std::string_view text);
// The address one past `a` (wraps to zero at the end of the family's space; `overflow` set).
IpAddress next_address(const IpAddress& a, bool* overflow = nullptr);

}  // namespace moat
