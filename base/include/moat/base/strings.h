// Small string helpers shared by every parser. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat {

// Strips ASCII whitespace at both ends.
std::string_view trim(std::string_view s);
// Splits on `sep`; keeps empty fields.
std::vector<std::string_view> split(std::string_view s, char sep);
// Splits on runs of ASCII whitespace; drops empty fields.
std::vector<std::string_view> split_ws(std::string_view s);
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
// Parses a whole decimal (or 0x hex) unsigned integer; nullopt on any junk or overflow.
std::optional<uint64_t> parse_uint(std::string_view s);
// Joins with `sep`.
std::string join(const std::vector<std::string>& parts, std::string_view sep);

}  // namespace moat
