#include "moat/base/property_string.h"

#include <utility>

#include "moat/base/strings.h"

namespace moat {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

bool needs_quotes(std::string_view value) {
  for (char c : value) {
    if (c == ',' || c == '"' || is_space(c)) return true;
  }
  return false;
}

class Parser {
 public:
  Parser(std::string_view text, const SourceLocation& where, const PropertyStringOptions& options)
      : text_(text), where_(where), options_(options) {}

  Result<PropertyString> parse() {
    while (pos_ < text_.size()) {
      size_t item_end = text_.find(',', pos_);
      if (item_end == std::string_view::npos) item_end = text_.size();
      if (text_[pos_] != '"' && trim(text_.substr(pos_, item_end - pos_)).empty()) {
        pos_ = item_end + 1;  // an empty item, as in `a=1,,b=2` or a trailing ','
        continue;
      }
      MOAT_RETURN_IF_ERROR(parse_item());
    }
    return std::move(result_);
  }

 private:
  // Column in the user's line of byte `offset` of the property string.
  int line_column(size_t offset) const {
    return (where_.column > 0 ? where_.column : 1) + static_cast<int>(offset);
  }

  std::unexpected<Error> error(std::string message, size_t offset) const {
    return fail(Error(ErrorCode::InvalidConfig, std::move(message))
                    .at({where_.file, where_.line, line_column(offset)}));
  }

  // Parses one item starting at pos_ and leaves pos_ after its ',' (or at the end).
  Status parse_item() {
    size_t start = pos_;
    if (text_[pos_] == '"') {
      std::string value = MOAT_TRY(parse_value());
      return add_bare(std::move(value), start);
    }
    size_t key_end = text_.find_first_of("=,", pos_);
    if (key_end == std::string_view::npos || text_[key_end] == ',') {
      std::string value = MOAT_TRY(parse_value());
      return add_bare(std::move(value), start);
    }
    std::string_view key = text_.substr(start, key_end - start);
    if (key.empty()) return error("empty key before '='", start);
    for (size_t i = 0; i < key.size(); ++i) {
      if (is_space(key[i]) || key[i] == '"') {
        return error("invalid key '" + std::string(key) + "' (keys cannot contain " +
                         (key[i] == '"' ? "quotes" : "whitespace") + ")",
                     start + i);
      }
    }
    pos_ = key_end + 1;
    std::string value = MOAT_TRY(parse_value());
    return add(std::string(key), std::move(value), start);
  }

  // Parses a raw or quoted value at pos_, then consumes the ',' that ends the item.
  Result<std::string> parse_value() {
    std::string value;
    if (pos_ < text_.size() && text_[pos_] == '"') {
      size_t open = pos_++;
      for (;;) {
        if (pos_ >= text_.size()) return error("unterminated quote", open);
        char c = text_[pos_];
        if (c == '"') break;
        if (c == '\\') {
          if (pos_ + 1 >= text_.size()) return error("unterminated quote", open);
          char next = text_[pos_ + 1];
          if (next != '"' && next != '\\') {
            return error("unknown escape '\\" + std::string(1, next) +
                             "' in quoted value (only \\\" and \\\\ are allowed)",
                         pos_);
          }
          value += next;
          pos_ += 2;
          continue;
        }
        value += c;
        ++pos_;
      }
      ++pos_;  // the closing quote
      if (pos_ < text_.size() && text_[pos_] != ',') {
        size_t end = text_.find(',', pos_);
        return error("unexpected '" + std::string(text_.substr(pos_, end - pos_)) +
                         "' after closing quote (quote the whole value)",
                     pos_);
      }
    } else {
      size_t end = text_.find(',', pos_);
      if (end == std::string_view::npos) end = text_.size();
      std::string_view raw = text_.substr(pos_, end - pos_);
      if (size_t quote = raw.find('"'); quote != std::string_view::npos) {
        return error(
            "stray '\"' in unquoted value '" + std::string(raw) + "' (quote the whole value)",
            pos_ + quote);
      }
      value = raw;
      pos_ = end;
    }
    if (pos_ < text_.size()) ++pos_;  // the ','
    return value;
  }

  Status add_bare(std::string value, size_t start) {
    std::string shown = std::string(text_.substr(start, pos_ - start));
    if (!shown.empty() && shown.back() == ',') shown.pop_back();  // the separator
    if (options_.default_key.empty()) {
      return error("value '" + shown + "' has no key (expected 'key=value')", start);
    }
    if (!result_.items.empty()) {
      return error("value '" + shown + "' has no key (only the first item may omit its key '" +
                       options_.default_key + "')",
                   start);
    }
    return add(options_.default_key, std::move(value), start);
  }

  Status add(std::string key, std::string value, size_t start) {
    if (const PropertyItem* first = result_.find(key)) {
      return error("duplicate key '" + key + "' (first set at column " +
                       std::to_string(line_column(static_cast<size_t>(first->column - 1))) + ")",
                   start);
    }
    result_.items.push_back(PropertyItem{
        .key = std::move(key),
        .value = std::move(value),
        .column = static_cast<int>(start) + 1,
    });
    return {};
  }

  std::string_view text_;
  const SourceLocation& where_;
  const PropertyStringOptions& options_;
  PropertyString result_;
  size_t pos_ = 0;
};

}  // namespace

const PropertyItem* PropertyString::find(std::string_view key) const {
  for (const PropertyItem& item : items) {
    if (item.key == key) return &item;
  }
  return nullptr;
}

Result<PropertyString> parse_property_string(std::string_view text, const SourceLocation& where,
                                             const PropertyStringOptions& options) {
  return Parser(text, where, options).parse();
}

std::string write_property_string(const PropertyString& ps, const PropertyStringOptions& options) {
  std::string out;
  for (size_t i = 0; i < ps.items.size(); ++i) {
    const PropertyItem& item = ps.items[i];
    if (i > 0) out += ',';
    bool bare = i == 0 && !options.default_key.empty() && item.key == options.default_key &&
                !item.value.empty() && item.value.find('=') == std::string::npos;
    if (!bare) {
      out += item.key;
      out += '=';
    }
    if (!needs_quotes(item.value)) {
      out += item.value;
      continue;
    }
    out += '"';
    for (char c : item.value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out;
}

}  // namespace moat
