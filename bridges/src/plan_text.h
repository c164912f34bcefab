// The numbered text every reconciler plan prints as (`moat net plan`, the tests' oracle):
// "1. OP\n2. OP\n", or "(no changes)\n" for an empty plan, OP being the op's to_string().
// Header-only; pure.
#pragma once

#include <string>
#include <vector>

namespace moat::bridges {

template <class Op>
std::string numbered_plan(const std::vector<Op>& plan) {
  if (plan.empty()) return "(no changes)\n";
  std::string out;
  for (size_t i = 0; i < plan.size(); ++i) {
    out += std::to_string(i + 1) + ". " + to_string(plan[i]) + "\n";
  }
  return out;
}

}  // namespace moat::bridges
