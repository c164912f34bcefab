// nft syntax for the IR: what `moat fw compile` prints, what `plan` shows, and the input of
// the `nft -f` peer in benchmarks. The output is valid `nft -f` input. Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "moat/firewall/ir.h"

namespace moat::firewall::nft {

// The whole ruleset as an nft script of `table { ... }` blocks, in key order.
std::string to_nft_text(const Ruleset& ruleset);
// One rule, without the chain ("ip saddr @x tcp dport 22 accept comment \"...\"").
std::string rule_text(const Rule& rule);
// Comma-separated elements of `set` in nft syntax.
std::string elements_text(const Set& set, const std::vector<SetElement>& elements);
// One value of `field` in nft syntax; ranges as lo-hi (CIDR when prefix-aligned).
std::string value_text(Field field, const Interval& value);

}  // namespace moat::firewall::nft
