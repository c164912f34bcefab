#include "moat/base/section_config.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "moat/base/strings.h"

namespace moat {

namespace {

bool is_blank_char(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// 1-based column of `part`, which must point into `line`.
int column_of(std::string_view line, std::string_view part) {
  return static_cast<int>(part.data() - line.data()) + 1;
}

struct Header {
  std::string type;
  std::string_view id;
};

class Parser {
 public:
  Parser(const std::string& file_name, const SectionConfigOptions& options)
      : file_name_(file_name), options_(options) {}

  Result<SectionConfigFile> parse(std::string_view text) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(start, end - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ++line_no_;
      MOAT_RETURN_IF_ERROR(parse_line(line));
      start = end + 1;
    }
    file_.trailing_comments = std::move(pending_comments_);
    return std::move(file_);
  }

 private:
  std::unexpected<Error> error(std::string message, int column) const {
    return fail(
        Error(ErrorCode::InvalidConfig, std::move(message)).at({file_name_, line_no_, column}));
  }

  static std::string describe(const Section& s) { return s.type + ": " + s.id; }

  Status parse_line(std::string_view line) {
    std::string_view content = trim(line);
    if (content.empty()) {
      // Remembered so that an orphaned property can say which blank line closed its section.
      if (in_section_) last_blank_line_ = line_no_;
      in_section_ = false;
      return {};
    }
    if (content.front() == '#') {
      pending_comments_.emplace_back(line);
      return {};
    }
    if (is_blank_char(line.front())) return parse_property(line, content);
    return parse_header_line(line);
  }

  Status parse_property(std::string_view line, std::string_view content) {
    size_t key_len = 0;
    while (key_len < content.size() && !is_blank_char(content[key_len])) ++key_len;
    std::string_view key = content.substr(0, key_len);
    std::string_view value = trim(content.substr(key_len));
    int key_column = column_of(line, key);

    if (!in_section_) {
      std::string message = "property '" + std::string(key) + "' is outside any section";
      if (file_.sections.empty()) {
        message += " (expected a '<type>: <id>' header first)";
      } else if (last_blank_line_ > 0) {
        message += " (the blank line " + std::to_string(last_blank_line_) + " ended section " +
                   describe(file_.sections.back()) + ")";
      }
      return error(std::move(message), key_column);
    }

    Section& section = file_.sections.back();
    if (const SectionProperty* first = section.find(key)) {
      bool repeatable = std::ranges::find(options_.array_keys, key) != options_.array_keys.end();
      if (!repeatable) {
        return error("duplicate property '" + std::string(key) + "' in section " +
                         describe(section) + " (first set on line " +
                         std::to_string(first->where.line) + ")",
                     key_column);
      }
    }
    section.properties.push_back(SectionProperty{
        .key = std::string(key),
        .value = std::string(value),
        .where = {file_name_, line_no_, key_column},
        .leading_comments = std::exchange(pending_comments_, {}),
    });
    return {};
  }

  Status parse_header_line(std::string_view line) {
    if (in_section_) {
      // Proxmox would silently drop such a line (and a header here would merge two sections),
      // so refuse it rather than read the file differently from the cluster.
      Section& open = file_.sections.back();
      if (parse_header(line).has_value()) {
        return error("section header '" + std::string(trim(line)) +
                         "' must follow a blank line (section " + describe(open) +
                         " is still open)",
                     1);
      }
      return error("line '" + std::string(trim(line)) + "' in section " + describe(open) +
                       " is not indented (properties start with a tab or spaces)",
                   1);
    }
    Header header = MOAT_TRY(parse_header(line));
    for (const Section& other : file_.sections) {
      if (other.id != header.id) continue;
      std::string self = header.type + ": " + std::string(header.id);
      std::string first_line = std::to_string(other.where.line);
      if (other.type == header.type) {
        return error("duplicate section " + self + " (first defined on line " + first_line + ")",
                     column_of(line, header.id));
      }
      return error("section id '" + std::string(header.id) + "' of " + self +
                       " is already used by " + describe(other) + " on line " + first_line +
                       " (ids are unique across types)",
                   column_of(line, header.id));
    }
    file_.sections.push_back(Section{
        .type = std::move(header.type),
        .id = std::string(header.id),
        .where = {file_name_, line_no_, 1},
        .properties = {},
        .leading_comments = std::exchange(pending_comments_, {}),
    });
    in_section_ = true;
    return {};
  }

  // Follows Proxmox's `^(\S+):\s*(\S+)\s*$`: the type ends at the last ':' of the first word
  // that still leaves an id, so both `vnet: a` and `vnet:a` are headers.
  Result<Header> parse_header(std::string_view line) const {
    std::vector<std::string_view> words = split_ws(line);
    std::string_view first = words.front();
    std::string shown(trim(line));
    std::string_view type;
    std::string_view id;
    size_t next_word = 1;
    if (first.size() > 1 && first.back() == ':') {
      type = first.substr(0, first.size() - 1);
      if (words.size() < 2) {
        return error(
            "section header '" + shown + "' has no id (expected '" + std::string(type) + ": <id>')",
            column_of(line, first) + static_cast<int>(first.size()));
      }
      id = words[1];
      next_word = 2;
    } else {
      size_t colon = first.size() < 2 ? std::string_view::npos : first.rfind(':', first.size() - 2);
      if (first.front() == ':' && (colon == std::string_view::npos || colon == 0)) {
        return error("section header '" + shown + "' has no type before ':'", 1);
      }
      if (colon == std::string_view::npos) {
        return error("malformed section header '" + shown + "' (expected '<type>: <id>')", 1);
      }
      type = first.substr(0, colon);
      id = first.substr(colon + 1);
    }
    if (words.size() > next_word) {
      return error("unexpected '" + std::string(words[next_word]) + "' after section header '" +
                       std::string(type) + ": " + std::string(id) + "'",
                   column_of(line, words[next_word]));
    }
    return Header{.type = to_lower(type), .id = id};
  }

  const std::string& file_name_;
  const SectionConfigOptions& options_;
  SectionConfigFile file_;
  std::vector<std::string> pending_comments_;
  int line_no_ = 0;
  int last_blank_line_ = 0;
  bool in_section_ = false;
};

}  // namespace

const SectionProperty* Section::find(std::string_view key) const {
  for (const SectionProperty& p : properties) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

std::vector<const SectionProperty*> Section::find_all(std::string_view key) const {
  std::vector<const SectionProperty*> out;
  for (const SectionProperty& p : properties) {
    if (p.key == key) out.push_back(&p);
  }
  return out;
}

Result<SectionConfigFile> parse_section_config(std::string_view text, const std::string& file_name,
                                               const SectionConfigOptions& options) {
  return Parser(file_name, options).parse(text);
}

std::string write_section_config(const SectionConfigFile& file) {
  std::string out;
  auto write_comments = [&out](const std::vector<std::string>& comments) {
    for (const std::string& c : comments) {
      out += c;
      out += '\n';
    }
  };
  for (const Section& section : file.sections) {
    write_comments(section.leading_comments);
    out += section.type;
    out += ": ";
    out += section.id;
    out += '\n';
    for (const SectionProperty& p : section.properties) {
      write_comments(p.leading_comments);
      out += '\t';
      out += p.key;
      if (!p.value.empty()) {
        out += ' ';
        out += p.value;
      }
      out += '\n';
    }
    out += '\n';
  }
  write_comments(file.trailing_comments);
  return out;
}

}  // namespace moat
