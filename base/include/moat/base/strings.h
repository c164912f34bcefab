// Small string helpers shared by every parser. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat {

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Three-way comparison of ASCII-lowercased strings (usable in constexpr table checks).
constexpr int compare_nocase(std::string_view a, std::string_view b) {
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) {
    const char x = ascii_lower(a[i]);
    const char y = ascii_lower(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

// Strips ASCII whitespace at both ends.
std::string_view trim(std::string_view s);
// Splits on `sep`; keeps empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);
// Splits on runs of ASCII whitespace; drops empty fields.
std::vector<std::string_view> split_ws(std::string_view s);
std::string to_lower(std::string_view s);
inline bool iequals(std::string_view a, std::string_view b) { return compare_nocase(a, b) == 0; }
// Parses a whole decimal (or 0x hex) unsigned integer; nullopt on any junk or overflow.
std::optional<uint64_t> parse_uint(std::string_view s);
// Joins with `sep`.
std::string join(const std::vector<std::string>& parts, std::string_view sep);

}  // namespace moat
