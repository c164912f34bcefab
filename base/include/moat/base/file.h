// Files: whole-file reads and atomic writes (temp file in the same directory, fsync, rename),
// so a reader never sees a half-written state or configuration file. Stateless; thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "moat/base/result.h"

namespace moat {

// Reads the whole file. NotFound when it does not exist.
Result<std::string> read_file(const std::filesystem::path& path);

// Replaces `path` with `content` atomically: the file holds either the old or the new
// content, even across a crash. Creates missing parent directories. `mode` applies to new files.
Status write_file_atomic(const std::filesystem::path& path, std::string_view content,
                         unsigned mode = 0644);

}  // namespace moat
