// Static analysis of a compiled ruleset: rules that can never decide a packet because an
// earlier rule of the same chain already decides every packet they match. It works on the nft
// IR (what is applied), so macros, address families and security groups are already expanded.
// Pure and deterministic; conservative by design (a rule it cannot prove dead is not reported).
// Thread-safe: reads its argument only.
#pragma once

#include <string>
#include <vector>

#include "moat/firewall/ir.h"

namespace moat::firewall {

// Warnings, one per dead user rule (a rule whose `origin` is a "<file>.fw:<line>" location),
// sorted and unique:
//   "<origin>: rule never matches: shadowed by <earlier origin> (<VERDICT>)"
//   "<origin>: rule is unreachable after <earlier origin>"   (the earlier rule matches all)
// A rule is dead when every IR rule compiled from it follows, in its chain, a terminal rule
// (accept, drop, reject, goto, jump to do-reject; no limit, no verdict map) from a user file
// whose every match is implied by one of the rule's matches. Log-only rules never shadow
// anything and are not reported on their own.
std::vector<std::string> find_dead_rules(const nft::Ruleset& ruleset);

}  // namespace moat::firewall
