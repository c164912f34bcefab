#include "moat/bridges/json_stream.h"

#include <string>

namespace moat::bridges {

Result<std::vector<std::string>> JsonStreamSplitter::feed(std::string_view bytes) {
  std::vector<std::string> out;
  for (char c : bytes) {
    if (depth_ == 0) {
      // Between texts: only whitespace, or the start of the next object/array.
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
      if (c != '{' && c != '[') {
        return fail(ErrorCode::InvalidArgument,
                    std::string("JSON stream: unexpected byte '") + c + "' between messages");
      }
      partial_.push_back(c);
      depth_ = 1;
      continue;
    }
    partial_.push_back(c);
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) {
        out.push_back(std::move(partial_));
        partial_.clear();
      }
    }
    if (partial_.size() > max_message_) {
      return fail(ErrorCode::InvalidArgument,
                  "JSON stream: message longer than " + std::to_string(max_message_) + " bytes");
    }
  }
  return out;
}

void JsonStreamSplitter::reset() {
  partial_.clear();
  depth_ = 0;
  in_string_ = false;
  escape_ = false;
}

}  // namespace moat::bridges
