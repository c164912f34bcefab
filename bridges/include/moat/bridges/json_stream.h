// JsonStreamSplitter: cuts a byte stream of concatenated JSON texts (OVSDB's JSON-RPC framing,
// RFC 7047 §4: objects back to back, no separators) into one string per complete text.
// It only tracks nesting and string/escape state; parsing the cut text is the caller's job.
// Value type; not thread-safe (one per connection, used by its reader).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "moat/base/result.h"

namespace moat::bridges {

class JsonStreamSplitter {
 public:
  // A text longer than this (bytes) is an error rather than unbounded buffering.
  explicit JsonStreamSplitter(std::size_t max_message = std::size_t{256} << 20)
      : max_message_(max_message) {}

  // Appends `bytes` and returns every text completed by them, in order. Whitespace between
  // texts is skipped. Fails (InvalidArgument) when a top-level byte is neither whitespace nor
  // the start of an object or array, or a text exceeds the limit; after a failure the
  // splitter must be reset() before further use (the stream has lost sync).
  Result<std::vector<std::string>> feed(std::string_view bytes);

  // Drops any partial text; use when the connection is replaced.
  void reset();

  // Bytes of an unfinished text held since the last complete one.
  std::size_t pending() const { return partial_.size(); }

 private:
  std::size_t max_message_;
  std::string partial_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
};

}  // namespace moat::bridges
