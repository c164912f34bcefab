#include "harness/golden.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <vector>

#include "moat/base/file.h"

namespace moat::testing {

std::filesystem::path source_path(const std::string& relative) {
  return std::filesystem::path(MOAT_SOURCE_DIR) / relative;
}

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

void expect_golden(const std::filesystem::path& expected_file, const std::string& actual) {
  const char* update = std::getenv("MOAT_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    auto written = write_file_atomic(expected_file, actual);
    ASSERT_TRUE(written) << written.error().to_string();
    return;
  }
  auto expected = read_file(expected_file);
  ASSERT_TRUE(expected) << expected_file << " is missing; run with MOAT_UPDATE_GOLDEN=1";
  if (*expected == actual) return;
  auto want = lines_of(*expected);
  auto got = lines_of(actual);
  std::ostringstream diff;
  size_t shown = 0;
  for (size_t i = 0; i < std::max(want.size(), got.size()) && shown < 20; ++i) {
    std::string w = i < want.size() ? want[i] : "<end>";
    std::string g = i < got.size() ? got[i] : "<end>";
    if (w == g) continue;
    diff << "line " << i + 1 << ":\n  - " << w << "\n  + " << g << "\n";
    ++shown;
  }
  ADD_FAILURE() << "golden mismatch with " << expected_file
                << " (MOAT_UPDATE_GOLDEN=1 rewrites it):\n"
                << diff.str();
}

}  // namespace moat::testing
