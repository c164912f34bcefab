// JSON form of the IR: `moat fw compile --format json`, and the state file that records what
// was applied (read back by `plan`/`apply` to diff against). Round-trips exactly. Pure.
#pragma once

#include <boost/json/fwd.hpp>

#include <string>
#include <string_view>

#include "moat/firewall/ir.h"

namespace moat::firewall::nft {

std::string to_json(const Ruleset& ruleset, bool pretty = false);
Result<Ruleset> ruleset_from_json(std::string_view text);
// The same from an already parsed document (a file that embeds the ruleset in its own object).
Result<Ruleset> ruleset_from_json(const boost::json::value& root);

}  // namespace moat::firewall::nft
