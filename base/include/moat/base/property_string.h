// Property strings: the comma-separated `key=value` lists Proxmox stores inside one config
// value (`net0: virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0,firewall=1,tag=10`, `scsi0:
// local:vm-100-disk-0,size=8G`, subnet `dhcp-range start-address=...,end-address=...`).
// Purely syntactic: no schema, keys are case-sensitive and kept in order; callers check which
// keys are allowed and what the values mean. Pure functions on value types; thread-safe.
//
// Syntax: items separated by ','. An item is `key=value`, or (first item only) a bare value
// that belongs to the caller's default key. A value is either raw text up to the next ',' or
// a double-quoted string in which `\"` and `\\` are the only escapes. Empty items are skipped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moat/base/result.h"

namespace moat {

struct PropertyItem {
  std::string key;
  std::string value;  // unquoted and unescaped
  int column = 0;     // 1-based column of the key (of the value for a bare item) in the string

  friend bool operator==(const PropertyItem&, const PropertyItem&) = default;
};

struct PropertyString {
  std::vector<PropertyItem> items;  // in string order

  // The item named `key`, or nullptr.
  const PropertyItem* find(std::string_view key) const;

  // Compares columns too.
  friend bool operator==(const PropertyString&, const PropertyString&) = default;
};

struct PropertyStringOptions {
  // Key given to a bare leading value (`volume` for `local:vm-100-disk-0,size=8G`). Empty: a
  // bare value is an error.
  std::string default_key;
};

// Parses `text`. `where` gives the file and line, and the column at which `text` starts in
// that line (0 is taken as 1). Errors are InvalidConfig located at that line and the exact
// column of the bad token: empty key, key with whitespace or quotes, duplicate key, bare value
// with no default key or not in first place, unterminated quote, unknown escape, text after a
// closing quote, and a '"' inside an unquoted value.
Result<PropertyString> parse_property_string(std::string_view text, const SourceLocation& where,
                                             const PropertyStringOptions& options = {});

// Writes `ps` as `key=value` items joined by ','. A first item named `options.default_key` is
// written bare when its value is non-empty and holds no '='. A value is double-quoted (with
// '"' and '\' escaped) only when it contains a ',', a '"' or whitespace, so canonical strings
// round-trip byte for byte. Precondition: keys are non-empty and free of '=', ',', '"' and
// whitespace (parse() guarantees this).
std::string write_property_string(const PropertyString& ps,
                                  const PropertyStringOptions& options = {});

}  // namespace moat
