// Golden-file comparison: expect_golden(path, actual) compares with the file's content, or,
// with MOAT_UPDATE_GOLDEN=1 in the environment, rewrites the file. Test-only; not thread-safe.
#pragma once

#include <filesystem>
#include <string>

namespace moat::testing {

// Absolute path of a file in the source tree (relative to the repository root).
std::filesystem::path source_path(const std::string& relative);

// GoogleTest assertion helper: fails with a unified-diff-like message on mismatch.
void expect_golden(const std::filesystem::path& expected_file, const std::string& actual);

}  // namespace moat::testing
