// Section-config files: the Proxmox `PVE::SectionConfig` text format used by `sdn/*.cfg`,
// `storage.cfg` and similar files. This layer is purely syntactic: it knows headers, indented
// `key value` lines, comments and blank lines, but no schema; callers validate types, ids and
// values. Parsing and writing are pure functions on value types; thread-safe.
//
//   vnet: myvnet          <- header `<type>: <id>` at column 0 (type is lower-cased)
//   	zone myzone        <- property: indented key, optional value (may contain spaces)
//   	vlanaware          <- key alone: empty value
//                         <- a blank line ends the section
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moat/base/result.h"

namespace moat {

struct SectionProperty {
  std::string key;
  std::string value;     // trimmed; empty when the line holds only the key
  SourceLocation where;  // line and column of the key
  // Comment lines directly above this property inside its section, verbatim (with the '#'
  // and any indentation), so a rewrite keeps them next to the property they annotate.
  std::vector<std::string> leading_comments;

  // Compares locations too; clear `where` to compare content only.
  friend bool operator==(const SectionProperty&, const SectionProperty&) = default;
};

struct Section {
  std::string type;
  std::string id;
  SourceLocation where;                     // line of the header, column 1
  std::vector<SectionProperty> properties;  // in file order
  // Comment lines between the previous section (or the start of the file) and this header,
  // verbatim. Also holds comments that trailed the previous section's last property.
  std::vector<std::string> leading_comments;

  // The first property named `key`, or nullptr.
  const SectionProperty* find(std::string_view key) const;
  // Every property named `key`, in file order (array keys such as `dhcp-range`).
  std::vector<const SectionProperty*> find_all(std::string_view key) const;

  friend bool operator==(const Section&, const Section&) = default;
};

struct SectionConfigFile {
  std::vector<Section> sections;               // in file order
  std::vector<std::string> trailing_comments;  // comment lines after the last section, verbatim

  friend bool operator==(const SectionConfigFile&, const SectionConfigFile&) = default;
};

struct SectionConfigOptions {
  // Keys that may appear more than once in one section (array-typed properties such as
  // `dhcp-range`). Any other repeated key is an error.
  std::vector<std::string> array_keys;
};

// Parses `text`. `file_name` only labels error locations. Every syntax error is InvalidConfig
// located at the offending token (1-based line and byte column; a tab counts as one column):
// a property outside a section, a malformed header, a header not preceded by a blank line, an
// unindented line inside a section, a repeated key not in `array_keys`, and a repeated section
// id (ids are unique per file whatever the type, as Proxmox keys sections by id).
// Accepts CRLF line endings. Lines whose first non-blank character is '#' are comments.
// A whitespace-only line is blank, so it ends the current section.
Result<SectionConfigFile> parse_section_config(std::string_view text, const std::string& file_name,
                                               const SectionConfigOptions& options = {});

// Writes `file` in Proxmox's canonical layout: each section as its leading comments, the
// header `type: id`, one `\t<key> <value>` line per property (`\t<key>` when the value is
// empty) preceded by its comments, then one blank line; trailing comments last. Properties
// keep their order. Canonical input round-trips byte for byte. Precondition: types, ids and
// keys are non-empty without whitespace, and no string holds a newline (parse() guarantees
// this); otherwise the output does not parse back to `file`.
std::string write_section_config(const SectionConfigFile& file);

}  // namespace moat
