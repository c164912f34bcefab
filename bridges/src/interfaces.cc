#include "moat/bridges/interfaces.h"

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "moat/base/strings.h"

namespace moat::bridges {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// 1-based column of `part`, which must point into `line`.
int column_of(std::string_view line, std::string_view part) {
  return static_cast<int>(part.data() - line.data()) + 1;
}

bool is_keyword(std::string_view word) {
  return word == "iface" || word == "auto" || word == "source" || word == "source-directory" ||
         word == "mapping" || (word.starts_with("allow-") && word.size() > 6);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A plain decimal number in [min, max] (no sign, no hex), else nullopt.
std::optional<uint64_t> parse_decimal(std::string_view s, uint64_t min, uint64_t max) {
  if (!all_digits(s) || s.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) value = value * 10 + static_cast<uint64_t>(c - '0');
  if (value < min || value > max) return std::nullopt;
  return value;
}

std::optional<bool> parse_bool(std::string_view s) {
  for (std::string_view yes : {"yes", "on", "1", "true"})
    if (iequals(s, yes)) return true;
  for (std::string_view no : {"no", "off", "0", "false"})
    if (iequals(s, no)) return false;
  return std::nullopt;
}

constexpr std::string_view kBondModeNames[] = {"balance-rr", "active-backup", "balance-xor",
                                               "broadcast",  "802.3ad",       "balance-tlb",
                                               "balance-alb"};

std::optional<BondMode> parse_bond_mode(std::string_view s) {
  for (size_t i = 0; i < std::size(kBondModeNames); ++i) {
    if (s == kBondModeNames[i] || s == std::to_string(i)) return static_cast<BondMode>(i);
  }
  return std::nullopt;
}

std::optional<Method> parse_method(std::string_view s) {
  if (s == "manual") return Method::Manual;
  if (s == "static") return Method::Static;
  if (s == "dhcp") return Method::Dhcp;
  if (s == "loopback") return Method::Loopback;
  if (s == "auto") return Method::Auto;
  return std::nullopt;
}

std::string canonical_key(std::string_view name) {
  std::string key(name);
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

// Builds the text of an iface line, keeping the trailing whitespace of `old_header`.
std::string make_header(const Stanza& s, std::string_view old_header) {
  std::string out = "iface " + s.name;
  if (s.family != Family::Unspecified) out += std::string(" ") + to_string(s.family);
  if (s.method != Method::Unspecified) out += std::string(" ") + to_string(s.method);
  size_t end = old_header.size();
  while (end > 0 && is_space(old_header[end - 1])) --end;
  out += old_header.substr(end);
  return out;
}

// Rewrites an auto/allow line from its keyword and args, keeping indentation and trailing
// whitespace.
void rewrite_keyword_line(Line& l) {
  std::string_view old = l.text;
  size_t begin = 0;
  while (begin < old.size() && is_space(old[begin])) ++begin;
  size_t end = old.size();
  while (end > begin && is_space(old[end - 1])) --end;
  std::string text(old.substr(0, begin));
  text += l.keyword;
  for (const std::string& a : l.args) text += " " + a;
  text += old.substr(end);
  l.text = std::move(text);
}

Option make_option(std::string_view line) {
  Option o;
  const size_t n = line.size();
  size_t i = 0;
  while (i < n && is_space(line[i])) ++i;
  size_t j = i;
  while (j < n && !is_space(line[j])) ++j;
  size_t end = n;
  while (end > j && is_space(line[end - 1])) --end;
  o.indent = line.substr(0, i);
  o.name = line.substr(i, j - i);
  if (end == j) {
    o.trailing = line.substr(j);
    return o;
  }
  size_t k = j;
  while (k < end && is_space(line[k])) ++k;
  o.separator = line.substr(j, k - j);
  o.value = line.substr(k, end - k);
  o.trailing = line.substr(end);
  return o;
}

std::string option_text(const Option& o) {
  return o.indent + o.name + o.separator + o.value + o.trailing;
}

// Column of the interface name on an iface line.
int name_column(const Stanza& s) {
  auto words = split_ws(s.header);
  return words.size() > 1 ? column_of(s.header, words[1]) : 1;
}

bool is_blank(const Item& item) {
  const Line* l = std::get_if<Line>(&item);
  return l && l->kind == LineKind::Blank;
}

bool is_autostart_line(const Line& l) {
  return l.kind == LineKind::Auto || l.kind == LineKind::Allow;
}

void renumber(std::vector<Item>& items) {
  int n = 1;
  for (Item& item : items) {
    if (Line* l = std::get_if<Line>(&item)) {
      l->line = n++;
      continue;
    }
    Stanza& s = std::get<Stanza>(item);
    s.line = n++;
    for (BodyLine& b : s.body) std::visit([&](auto& x) { x.line = n++; }, b);
  }
}

// ---------------------------------------------------------------------------------------------
// Line parser: text -> items
// ---------------------------------------------------------------------------------------------

class Parser {
 public:
  explicit Parser(const std::string& file) : file_(file) {}

  Result<std::vector<Item>> parse(std::string_view text) {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      ++line_no_;
      MOAT_RETURN_IF_ERROR(parse_line(text.substr(start, end - start)));
      start = end + 1;
    }
    close_stanza();
    return std::move(items_);
  }

 private:
  enum class State { Top, InStanza, InMapping };

  std::unexpected<Error> error(std::string message, int column) const {
    return fail(Error(ErrorCode::InvalidConfig, std::move(message)).at({file_, line_no_, column}));
  }

  Status parse_line(std::string_view line) {
    std::string_view content = trim(line);
    if (content.empty() || content.front() == '#') {
      Line l{.kind = content.empty() ? LineKind::Blank : LineKind::Comment,
             .text = std::string(line),
             .line = line_no_};
      if (state_ == State::InStanza) {
        pending_.push_back(std::move(l));
      } else {
        items_.push_back(std::move(l));
      }
      return {};
    }
    std::vector<std::string_view> words = split_ws(line);
    if (is_keyword(words[0])) {
      close_stanza();
      return keyword_line(line, words);
    }
    if (state_ == State::InStanza) {
      for (Line& l : pending_) stanza_.body.push_back(std::move(l));
      pending_.clear();
      Option o = make_option(line);
      o.line = line_no_;
      stanza_.body.push_back(std::move(o));
      return {};
    }
    if (state_ == State::InMapping) {
      items_.push_back(
          Line{.kind = LineKind::MappingBody, .text = std::string(line), .line = line_no_});
      return {};
    }
    return error("option '" + std::string(words[0]) + "' outside an iface stanza",
                 column_of(line, words[0]));
  }

  Status keyword_line(std::string_view line, const std::vector<std::string_view>& words) {
    std::string_view keyword = words[0];
    if (keyword == "iface") return iface_line(line, words);
    Line l{.text = std::string(line), .line = line_no_, .keyword = std::string(keyword)};
    for (size_t i = 1; i < words.size(); ++i) l.args.emplace_back(words[i]);
    const char* wants = "an interface name";
    if (keyword == "auto") {
      l.kind = LineKind::Auto;
    } else if (keyword == "source") {
      l.kind = LineKind::Source;
      wants = "a path";
    } else if (keyword == "source-directory") {
      l.kind = LineKind::SourceDirectory;
      wants = "a path";
    } else if (keyword == "mapping") {
      l.kind = LineKind::Mapping;
      wants = "an interface pattern";
      state_ = State::InMapping;
    } else {
      l.kind = LineKind::Allow;
    }
    if (l.args.empty()) {
      return error("'" + l.keyword + "' needs " + wants, column_of(line, keyword));
    }
    items_.push_back(std::move(l));
    return {};
  }

  Status iface_line(std::string_view line, const std::vector<std::string_view>& words) {
    if (words.size() < 2) return error("iface needs an interface name", column_of(line, words[0]));
    Stanza s{.name = std::string(words[1]), .header = std::string(line), .line = line_no_};
    if (words.size() > 2) {
      if (words[2] == "inet") {
        s.family = Family::Inet;
      } else if (words[2] == "inet6") {
        s.family = Family::Inet6;
      } else {
        return error(
            "unknown address family '" + std::string(words[2]) + "' (expected inet or inet6)",
            column_of(line, words[2]));
      }
    }
    if (words.size() > 3) {
      std::optional<Method> m = parse_method(words[3]);
      if (!m || (*m == Method::Auto && s.family != Family::Inet6)) {
        return error("unknown method '" + std::string(words[3]) + "' for " + to_string(s.family) +
                         " (expected manual, static, dhcp or loopback" +
                         (s.family == Family::Inet6 ? ", or auto)" : ")"),
                     column_of(line, words[3]));
      }
      s.method = *m;
    }
    if (words.size() > 4) {
      return error("unexpected '" + std::string(words[4]) + "' after the method of iface " + s.name,
                   column_of(line, words[4]));
    }
    auto [it, inserted] = seen_.emplace(std::make_pair(s.name, s.family), line_no_);
    if (!inserted) {
      std::string what = "iface " + s.name;
      if (s.family != Family::Unspecified) what += std::string(" ") + to_string(s.family);
      return error(
          "duplicate stanza '" + what + "' (first at line " + std::to_string(it->second) + ")",
          column_of(line, words[1]));
    }
    stanza_ = std::move(s);
    state_ = State::InStanza;
    return {};
  }

  // Ends the open stanza: comments directly under its options stay in it; from the first
  // blank line on, the lines go to the top level.
  void close_stanza() {
    if (state_ == State::InStanza) {
      size_t keep = 0;
      while (keep < pending_.size() && pending_[keep].kind == LineKind::Comment) ++keep;
      for (size_t i = 0; i < keep; ++i) stanza_.body.push_back(std::move(pending_[i]));
      items_.push_back(std::move(stanza_));
      for (size_t i = keep; i < pending_.size(); ++i) items_.push_back(std::move(pending_[i]));
      pending_.clear();
    }
    state_ = State::Top;
  }

  const std::string& file_;
  int line_no_ = 0;
  State state_ = State::Top;
  std::vector<Item> items_;
  Stanza stanza_;
  std::vector<Line> pending_;
  std::map<std::pair<std::string, Family>, int> seen_;
};

// ---------------------------------------------------------------------------------------------
// Typed views: items -> one Interface per name
// ---------------------------------------------------------------------------------------------

// Keys that may appear on several lines of one interface. Other typed keys may appear once per
// interface (across its stanzas); netmask and gateway are checked per stanza and IP family.
bool is_repeatable(std::string_view key) { return key == "address" || key == "vxlan-remoteip"; }

// Options the typed view reads; any other option is kept but not interpreted. (Formatting off:
// clang-format would put each string on its own line.)
// clang-format off
constexpr std::string_view kTypedKeys[] = {
    "address", "netmask", "gateway", "mtu", "ovs-mtu", "link-type",
    "bridge-ports", "bridge-stp", "bridge-fd", "bridge-vlan-aware", "bridge-vids",
    "bond-slaves", "bond-mode", "bond-miimon", "bond-xmit-hash-policy", "bond-primary",
    "vlan-raw-device", "vlan-id", "vlan-protocol",
    "vxlan-id", "vxlan-remoteip", "vxlan-local-tunnelip",
    "ovs-type", "ovs-ports", "ovs-bonds", "ovs-bridge", "ovs-options"};
// clang-format on

bool is_typed(std::string_view key) {
  return std::find(std::begin(kTypedKeys), std::end(kTypedKeys), key) != std::end(kTypedKeys);
}

class ViewBuilder {
 public:
  explicit ViewBuilder(const std::string& file) : file_(file) {}

  Result<std::vector<Interface>> build(const std::vector<Item>& items) {
    std::set<std::string, std::less<>> autostart;
    for (const Item& item : items) {
      if (const Line* l = std::get_if<Line>(&item)) {
        if (is_autostart_line(*l)) autostart.insert(l->args.begin(), l->args.end());
        continue;
      }
      MOAT_RETURN_IF_ERROR(add_stanza(std::get<Stanza>(item)));
    }
    for (size_t i = 0; i < views_.size(); ++i) {
      finish(views_[i], hints_[i]);
      views_[i].autostart = autostart.contains(views_[i].name);
    }
    return std::move(views_);
  }

 private:
  struct Hints {
    std::optional<InterfaceKind> link_type;
    bool loopback = false;
    std::optional<Position> gateway_at[2];  // IPv4, IPv6
  };
  // What one stanza's netmask applies to.
  struct StanzaState {
    size_t first_address = 0;
    std::optional<int> netmask;
    Position netmask_at;
  };

  std::unexpected<Error> error(Position at, std::string message) const {
    return fail(
        Error(ErrorCode::InvalidConfig, std::move(message)).at({file_, at.line, at.column}));
  }

  Status add_stanza(const Stanza& s) {
    auto [it, inserted] = index_.emplace(s.name, views_.size());
    if (inserted) {
      views_.push_back(Interface{.name = s.name, .at = {s.line, name_column(s)}});
      hints_.emplace_back();
    }
    Interface& i = views_[it->second];
    Hints& h = hints_[it->second];
    if (s.family == Family::Inet) i.inet_method = s.method;
    if (s.family == Family::Inet6) i.inet6_method = s.method;
    if (s.method == Method::Loopback) h.loopback = true;
    StanzaState st{.first_address = i.addresses.size()};
    for (const BodyLine& b : s.body) {
      if (const Option* o = std::get_if<Option>(&b)) MOAT_RETURN_IF_ERROR(apply(i, h, st, *o));
    }
    if (st.netmask) {
      for (size_t a = st.first_address; a < i.addresses.size(); ++a) {
        Address& addr = i.addresses[a];
        if (addr.prefix) continue;
        if (*st.netmask > static_cast<int>(addr.ip.size() * 8)) {
          return error(st.netmask_at, "netmask /" + std::to_string(*st.netmask) +
                                          " does not fit address " + addr.ip.to_string());
        }
        addr.prefix = st.netmask;
      }
    }
    return {};
  }

  // The words of a value with their positions (separators: whitespace, and ',' when asked).
  static std::vector<Word> words_of(const Option& o, bool comma_separates = false) {
    std::vector<Word> out;
    const std::string& v = o.value;
    size_t i = 0;
    auto sep = [&](char c) { return is_space(c) || (comma_separates && c == ','); };
    while (i < v.size()) {
      while (i < v.size() && sep(v[i])) ++i;
      size_t start = i;
      while (i < v.size() && !sep(v[i])) ++i;
      if (i > start) {
        out.push_back(
            Word{v.substr(start, i - start), {o.line, o.value_column() + static_cast<int>(start)}});
      }
    }
    return out;
  }

  // A list of interface names; a lone `none` is the empty list.
  static std::vector<Word> name_list(const Option& o) {
    std::vector<Word> words = words_of(o);
    if (words.size() == 1 && words[0].text == "none") words.clear();
    return words;
  }

  Result<Word> single_word(const Option& o) const {
    std::vector<Word> words = words_of(o);
    if (words.size() != 1) {
      return error(words[1].at, "option '" + o.name + "' takes one value, not '" + o.value + "'");
    }
    return words[0];
  }

  Result<IpAddress> ip_word(const Option& o) const {
    Word w = MOAT_TRY(single_word(o));
    std::optional<IpAddress> ip = parse_ip(w.text);
    if (!ip) return error(w.at, "malformed " + o.name + " '" + w.text + "': not an IP address");
    return *ip;
  }

  Result<uint64_t> number(const Option& o, uint64_t min, uint64_t max) const {
    std::optional<uint64_t> n = parse_decimal(o.value, min, max);
    if (n) return *n;
    const Position at{o.line, o.value_column()};
    if (!all_digits(o.value)) return error(at, o.name + " must be a number, not '" + o.value + "'");
    return error(at, o.name + " " + o.value + " is out of range (" + std::to_string(min) + "-" +
                         std::to_string(max) + ")");
  }

  Result<bool> boolean(const Option& o) const {
    std::optional<bool> b = parse_bool(o.value);
    if (!b) {
      return error({o.line, o.value_column()},
                   o.name + " must be yes/no (or on/off, 1/0), not '" + o.value + "'");
    }
    return *b;
  }

  Result<Address> address(const Word& w) const {
    std::string_view text = w.text;
    std::optional<int> prefix;
    size_t slash = text.find('/');
    std::optional<IpAddress> ip = parse_ip(text.substr(0, slash));
    if (!ip) return error(w.at, "malformed address '" + w.text + "': not an IP address");
    if (slash != std::string_view::npos) {
      std::optional<uint64_t> len = parse_decimal(text.substr(slash + 1), 0, ip->size() * 8);
      if (!len) {
        return error(w.at, "malformed address '" + w.text + "': prefix length must be 0-" +
                               std::to_string(ip->size() * 8));
      }
      prefix = static_cast<int>(*len);
    }
    return Address{.ip = *ip, .prefix = prefix, .at = w.at};
  }

  Result<int> netmask(const Option& o) const {
    Word w = MOAT_TRY(single_word(o));
    if (std::optional<uint64_t> len = parse_decimal(w.text, 0, 128)) return static_cast<int>(*len);
    std::optional<IpAddress> mask = parse_ip(w.text);
    if (mask && mask->family == 4) {
      uint32_t bits = (uint32_t{mask->bytes[0]} << 24) | (uint32_t{mask->bytes[1]} << 16) |
                      (uint32_t{mask->bytes[2]} << 8) | uint32_t{mask->bytes[3]};
      int len = 0;
      while (len < 32 && (bits & (0x80000000u >> len))) ++len;
      if (len == 32 || (bits << len) == 0) return len;
    }
    return error(w.at, "malformed netmask '" + w.text +
                           "' (expected a contiguous dotted mask or a prefix length)");
  }

  Status apply(Interface& i, Hints& h, StanzaState& st, const Option& o) {
    const std::string key = o.key();
    const Position name_at{o.line, static_cast<int>(o.indent.size()) + 1};
    const Position value_at{o.line, o.value_column()};
    if (!is_typed(key)) {
      i.option_at.emplace(key, value_at);
      return {};
    }
    if (o.value.empty()) return error(name_at, "option '" + o.name + "' needs a value");
    if (!is_repeatable(key) && key != "netmask" && key != "gateway") {
      // ovs_mtu is Proxmox's spelling of mtu on OVS interfaces: the two are one option.
      auto first = i.option_at.find(key);
      if (first == i.option_at.end() && (key == "mtu" || key == "ovs-mtu")) {
        first = i.option_at.find(key == "mtu" ? "ovs-mtu" : "mtu");
      }
      if (first != i.option_at.end()) {
        return error(name_at, "duplicate option '" + o.name + "' for " + i.name +
                                  " (first at line " + std::to_string(first->second.line) + ")");
      }
    }
    i.option_at.emplace(key, value_at);

    if (key == "address") {
      for (const Word& w : words_of(o)) i.addresses.push_back(MOAT_TRY(address(w)));
    } else if (key == "netmask") {
      if (st.netmask) {
        return error(name_at, "duplicate option '" + o.name + "' in a stanza of " + i.name +
                                  " (first at line " + std::to_string(st.netmask_at.line) + ")");
      }
      st.netmask = MOAT_TRY(netmask(o));
      st.netmask_at = value_at;
    } else if (key == "gateway") {
      IpAddress gw = MOAT_TRY(ip_word(o));
      std::optional<Position>& seen = h.gateway_at[gw.family == 4 ? 0 : 1];
      if (seen) {
        return error(name_at, std::string("duplicate IPv") + (gw.family == 4 ? "4" : "6") +
                                  " gateway for " + i.name + " (first at line " +
                                  std::to_string(seen->line) + ")");
      }
      seen = value_at;
      (gw.family == 4 ? i.gateway4 : i.gateway6) = gw;
    } else if (key == "mtu" || key == "ovs-mtu") {
      i.mtu = static_cast<uint32_t>(MOAT_TRY(number(o, 68, 65535)));
    } else if (key.starts_with("bridge-")) {
      BridgeOptions& b = i.bridge ? *i.bridge : i.bridge.emplace();
      if (key == "bridge-ports") {
        b.ports = name_list(o);
      } else if (key == "bridge-stp") {
        b.stp = MOAT_TRY(boolean(o));
      } else if (key == "bridge-fd") {
        b.forward_delay = static_cast<uint32_t>(MOAT_TRY(number(o, 0, 255)));
      } else if (key == "bridge-vlan-aware") {
        b.vlan_aware = MOAT_TRY(boolean(o));
      } else {  // bridge-vids
        for (const Word& w : words_of(o, /*comma_separates=*/true)) {
          b.vids.push_back(MOAT_TRY(vlan_range(w)));
        }
      }
    } else if (key.starts_with("bond-")) {
      BondOptions& b = i.bond ? *i.bond : i.bond.emplace();
      if (key == "bond-slaves") {
        b.slaves = name_list(o);
      } else if (key == "bond-mode") {
        std::optional<BondMode> mode = parse_bond_mode(o.value);
        if (!mode) {
          return error(value_at, "unknown bond-mode '" + o.value +
                                     "' (expected balance-rr, active-backup, balance-xor, "
                                     "broadcast, 802.3ad, balance-tlb, balance-alb or 0-6)");
        }
        b.mode = mode;
      } else if (key == "bond-miimon") {
        b.miimon = static_cast<uint32_t>(MOAT_TRY(number(o, 0, 1u << 31)));
      } else if (key == "bond-xmit-hash-policy") {
        b.xmit_hash_policy = MOAT_TRY(single_word(o)).text;
      } else {  // bond-primary
        b.primary = MOAT_TRY(single_word(o)).text;
      }
    } else if (key.starts_with("vlan-")) {
      VlanOptions& v = i.vlan ? *i.vlan : i.vlan.emplace();
      if (key == "vlan-raw-device") {
        v.raw_device = MOAT_TRY(single_word(o));
      } else if (key == "vlan-id") {
        v.id = static_cast<uint32_t>(MOAT_TRY(number(o, 0, std::numeric_limits<uint32_t>::max())));
      } else {  // vlan-protocol
        if (iequals(o.value, "802.1q")) {
          v.protocol = VlanProtocol::Dot1Q;
        } else if (iequals(o.value, "802.1ad")) {
          v.protocol = VlanProtocol::Dot1AD;
        } else {
          return error(value_at,
                       "unknown vlan-protocol '" + o.value + "' (expected 802.1q or 802.1ad)");
        }
      }
    } else if (key.starts_with("vxlan-")) {
      VxlanOptions& x = i.vxlan ? *i.vxlan : i.vxlan.emplace();
      if (key == "vxlan-id") {
        x.id = static_cast<uint32_t>(MOAT_TRY(number(o, 0, 16777215)));
      } else if (key == "vxlan-remoteip") {
        for (const Word& w : words_of(o)) {
          std::optional<IpAddress> ip = parse_ip(w.text);
          if (!ip)
            return error(w.at, "malformed " + o.name + " '" + w.text + "': not an IP address");
          x.remote_ips.push_back(*ip);
        }
      } else {  // vxlan-local-tunnelip
        x.local_tunnel_ip = MOAT_TRY(ip_word(o));
      }
    } else if (key == "link-type") {
      if (o.value == "veth") {
        h.link_type = InterfaceKind::Veth;
      } else if (o.value == "dummy") {
        h.link_type = InterfaceKind::Dummy;
      } else {
        return error(value_at, "unknown link-type '" + o.value + "' (expected veth or dummy)");
      }
    } else {  // ovs-*
      OvsOptions& v = i.ovs ? *i.ovs : i.ovs.emplace();
      if (key == "ovs-type") {
        if (o.value == "OVSBridge") {
          v.type = OvsType::Bridge;
        } else if (o.value == "OVSBond") {
          v.type = OvsType::Bond;
        } else if (o.value == "OVSIntPort") {
          v.type = OvsType::IntPort;
        } else if (o.value == "OVSPort") {
          v.type = OvsType::Port;
        } else {
          return error(value_at, "unknown ovs_type '" + o.value +
                                     "' (expected OVSBridge, OVSBond, OVSIntPort or OVSPort)");
        }
      } else if (key == "ovs-ports") {
        v.ports = name_list(o);
      } else if (key == "ovs-bonds") {
        v.bonds = name_list(o);
      } else if (key == "ovs-bridge") {
        v.bridge = MOAT_TRY(single_word(o));
      } else {  // ovs-options
        v.options = o.value;
        for (const Word& w : words_of(o)) {
          std::string_view word = w.text;
          if (word.starts_with("tag=")) {
            std::optional<uint64_t> tag = parse_decimal(word.substr(4), 0, 65535);
            if (!tag) return error(w.at, "ovs_options tag must be a number, not '" + w.text + "'");
            v.tag = static_cast<uint32_t>(*tag);
          } else if (word.starts_with("bond_mode=")) {
            v.bond_mode = word.substr(10);
          }
        }
      }
    }
    return {};
  }

  Result<VlanRange> vlan_range(const Word& w) const {
    std::string_view text = w.text;
    size_t dash = text.find('-');
    std::optional<uint64_t> first = parse_decimal(text.substr(0, dash), 0, 65535);
    std::optional<uint64_t> last =
        dash == std::string_view::npos ? first : parse_decimal(text.substr(dash + 1), 0, 65535);
    if (!first || !last || *last < *first) {
      return error(w.at, "malformed bridge-vids entry '" + w.text +
                             "' (expected a VLAN id or a range like 2-4094)");
    }
    return VlanRange{static_cast<uint32_t>(*first), static_cast<uint32_t>(*last), w.at};
  }

  static void finish(Interface& i, const Hints& h) {
    auto has = [&](std::string_view key) { return i.option_at.contains(key); };
    const std::string& n = i.name;
    const size_t dot = n.rfind('.');
    const bool dotted_vlan = dot != std::string::npos && dot > 0 && all_digits(n.substr(dot + 1));
    if (i.ovs && i.ovs->type) {
      constexpr InterfaceKind kOvs[] = {InterfaceKind::OvsBridge, InterfaceKind::OvsBond,
                                        InterfaceKind::OvsIntPort, InterfaceKind::OvsPort};
      i.kind = kOvs[static_cast<int>(*i.ovs->type)];
    } else if (h.loopback || n == "lo") {
      i.kind = InterfaceKind::Loopback;
    } else if (h.link_type) {
      i.kind = *h.link_type;
    } else if (has("bridge-ports")) {
      i.kind = InterfaceKind::Bridge;
    } else if (has("vxlan-id")) {
      i.kind = InterfaceKind::Vxlan;
    } else if (has("bond-slaves") || is_bond_name(n)) {
      i.kind = InterfaceKind::Bond;
    } else if (has("vlan-raw-device") || has("vlan-id") || dotted_vlan) {
      i.kind = InterfaceKind::Vlan;
    } else if (n.find(':') != std::string::npos) {
      i.kind = InterfaceKind::Alias;
    } else if (is_physical_nic_name(n)) {
      i.kind = InterfaceKind::Physical;
    } else {
      i.kind = InterfaceKind::Other;
    }
    if (i.kind != InterfaceKind::Vlan) return;
    VlanOptions& v = i.vlan ? *i.vlan : i.vlan.emplace();
    if (v.raw_device.text.empty() && dotted_vlan) v.raw_device = Word{n.substr(0, dot), i.at};
    if (!v.id) {
      std::string_view digits;
      if (dotted_vlan) {
        digits = std::string_view(n).substr(dot + 1);
      } else if (n.starts_with("vlan") && all_digits(std::string_view(n).substr(4))) {
        digits = std::string_view(n).substr(4);
      }
      if (!digits.empty()) {
        // An id too large for 32 bits still has to be reported as out of range.
        v.id = static_cast<uint32_t>(parse_decimal(digits, 0, std::numeric_limits<uint32_t>::max())
                                         .value_or(std::numeric_limits<uint32_t>::max()));
      }
    }
  }

  const std::string& file_;
  std::vector<Interface> views_;
  std::vector<Hints> hints_;
  std::map<std::string, size_t, std::less<>> index_;
};

// ---------------------------------------------------------------------------------------------
// Editing helpers on an item list
// ---------------------------------------------------------------------------------------------

std::optional<size_t> stanza_index(const std::vector<Item>& items, StanzaId id) {
  for (size_t i = 0; i < items.size(); ++i) {
    const Stanza* s = std::get_if<Stanza>(&items[i]);
    if (s && s->name == id.name && s->family == id.family) return i;
  }
  return std::nullopt;
}

bool has_stanza(const std::vector<Item>& items, std::string_view name) {
  return std::any_of(items.begin(), items.end(), [&](const Item& item) {
    const Stanza* s = std::get_if<Stanza>(&item);
    return s && s->name == name;
  });
}

bool is_autostarted(const std::vector<Item>& items, std::string_view name) {
  for (const Item& item : items) {
    const Line* l = std::get_if<Line>(&item);
    if (l && is_autostart_line(*l) &&
        std::find(l->args.begin(), l->args.end(), name) != l->args.end()) {
      return true;
    }
  }
  return false;
}

// The indentation the file uses for options (its first option's), else a tab.
std::string file_indent(const std::vector<Item>& items, const Stanza* prefer) {
  auto first_indent = [](const Stanza& s) -> std::optional<std::string> {
    for (const BodyLine& b : s.body) {
      if (const Option* o = std::get_if<Option>(&b)) return o->indent;
    }
    return std::nullopt;
  };
  if (prefer) {
    if (auto indent = first_indent(*prefer)) return *indent;
  }
  for (const Item& item : items) {
    if (const Stanza* s = std::get_if<Stanza>(&item)) {
      if (auto indent = first_indent(*s)) return *indent;
    }
  }
  return "\t";
}

// Where a new option goes: after the stanza's last option (before the comments under it).
size_t option_insert_index(const Stanza& s) {
  size_t at = 0;
  for (size_t i = 0; i < s.body.size(); ++i) {
    if (std::holds_alternative<Option>(s.body[i])) at = i + 1;
  }
  return at;
}

// Removes the items marked in `remove`; where a removal leaves two blank lines next to each
// other (or a blank line at either end of the file), one of them goes too.
std::vector<Item> remove_items(std::vector<Item> items, const std::vector<bool>& remove) {
  std::vector<Item> out;
  bool after_removal = false;
  for (size_t i = 0; i < items.size(); ++i) {
    if (remove[i]) {
      after_removal = true;
      continue;
    }
    if (after_removal) {
      after_removal = false;
      if (is_blank(items[i]) && (out.empty() || is_blank(out.back()))) continue;
    }
    out.push_back(std::move(items[i]));
  }
  if (after_removal && !out.empty() && is_blank(out.back())) out.pop_back();
  return out;
}

// Takes `name` off every auto/allow line; marks lines left without names in `remove`.
void drop_autostart(std::vector<Item>& items, std::string_view name, std::vector<bool>& remove) {
  for (size_t i = 0; i < items.size(); ++i) {
    Line* l = std::get_if<Line>(&items[i]);
    if (!l || !is_autostart_line(*l)) continue;
    auto it = std::remove(l->args.begin(), l->args.end(), name);
    if (it == l->args.end()) continue;
    l->args.erase(it, l->args.end());
    if (l->args.empty()) {
      remove[i] = true;
    } else {
      rewrite_keyword_line(*l);
    }
  }
}

Status check_name(std::string_view what, std::string_view name) {
  if (name.empty() || name.front() == '#' ||
      std::any_of(name.begin(), name.end(), [](char c) { return is_space(c) || c == '\n'; })) {
    return fail(ErrorCode::InvalidArgument,
                std::string(what) + " '" + std::string(name) + "' must be one word");
  }
  return {};
}

Status check_option(std::string_view key, std::string_view value) {
  MOAT_RETURN_IF_ERROR(check_name("option name", key));
  if (is_keyword(key)) {
    return fail(ErrorCode::InvalidArgument,
                "'" + std::string(key) + "' is a keyword, not an option name");
  }
  if (value.find_first_of("\r\n") != std::string_view::npos) {
    return fail(ErrorCode::InvalidArgument,
                "the value of option '" + std::string(key) + "' must be a single line");
  }
  return {};
}

Option new_option(std::string indent, std::string_view key, std::string_view value) {
  value = trim(value);
  return Option{.indent = std::move(indent),
                .name = std::string(key),
                .separator = value.empty() ? "" : " ",
                .value = std::string(value)};
}

std::unexpected<Error> no_stanza(StanzaId id) {
  std::string what = "iface " + std::string(id.name);
  if (id.family != Family::Unspecified) what += std::string(" ") + to_string(id.family);
  return fail(ErrorCode::NotFound, "no stanza '" + what + "'");
}

Status check_method(Family family, Method method) {
  if (method != Method::Unspecified && family == Family::Unspecified) {
    return fail(ErrorCode::InvalidArgument, "a method needs a family on the iface line");
  }
  if (method == Method::Auto && family != Family::Inet6) {
    return fail(ErrorCode::InvalidArgument, "method auto is only valid for inet6");
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public functions
// ---------------------------------------------------------------------------------------------

const char* to_string(Family family) {
  switch (family) {
    case Family::Unspecified:
      return "";
    case Family::Inet:
      return "inet";
    case Family::Inet6:
      return "inet6";
  }
  return "";
}

const char* to_string(Method method) {
  switch (method) {
    case Method::Unspecified:
      return "";
    case Method::Manual:
      return "manual";
    case Method::Static:
      return "static";
    case Method::Dhcp:
      return "dhcp";
    case Method::Loopback:
      return "loopback";
    case Method::Auto:
      return "auto";
  }
  return "";
}

const char* to_string(InterfaceKind kind) {
  switch (kind) {
    case InterfaceKind::Physical:
      return "NIC";
    case InterfaceKind::Other:
      return "interface";
    case InterfaceKind::Loopback:
      return "loopback";
    case InterfaceKind::Alias:
      return "alias";
    case InterfaceKind::Bridge:
      return "bridge";
    case InterfaceKind::Bond:
      return "bond";
    case InterfaceKind::Vlan:
      return "VLAN";
    case InterfaceKind::Vxlan:
      return "VXLAN";
    case InterfaceKind::Veth:
      return "veth";
    case InterfaceKind::Dummy:
      return "dummy";
    case InterfaceKind::OvsBridge:
      return "OVSBridge";
    case InterfaceKind::OvsBond:
      return "OVSBond";
    case InterfaceKind::OvsIntPort:
      return "OVSIntPort";
    case InterfaceKind::OvsPort:
      return "OVSPort";
  }
  return "interface";
}

const char* to_string(BondMode mode) { return kBondModeNames[static_cast<int>(mode)].data(); }

bool is_physical_nic_name(std::string_view name) {
  auto rest_ok = [&](size_t prefix) {
    std::string_view rest = name.substr(prefix);
    return !rest.empty() && rest.find_first_of(".:") == std::string_view::npos;
  };
  if (name.starts_with("eth")) return all_digits(name.substr(3));
  if (name.starts_with("nic")) return all_digits(name.substr(3));
  if (name.starts_with("if")) return all_digits(name.substr(2));
  if (name.starts_with("en") || name.starts_with("ib")) return rest_ok(2);
  return false;
}

bool is_bond_name(std::string_view name) {
  return name.starts_with("bond") && all_digits(name.substr(4));
}

std::string Option::key() const { return canonical_key(name); }

int Option::value_column() const {
  return static_cast<int>(indent.size() + name.size() + separator.size()) + 1;
}

const Option* Stanza::find(std::string_view key) const {
  const std::string wanted = canonical_key(key);
  for (const BodyLine& b : body) {
    const Option* o = std::get_if<Option>(&b);
    if (o && o->key() == wanted) return o;
  }
  return nullptr;
}

Position Interface::position_of(std::string_view key) const {
  auto it = option_at.find(key);
  return it == option_at.end() ? at : it->second;
}

Result<InterfacesFile> parse_interfaces(std::string_view text, const std::string& file) {
  InterfacesFile doc(file);
  doc.items_ = MOAT_TRY(Parser(file).parse(text));
  doc.ends_with_newline_ = text.empty() || text.back() == '\n';
  renumber(doc.items_);
  doc.views_ = MOAT_TRY(ViewBuilder(file).build(doc.items_));
  return doc;
}

std::string write_interfaces(const InterfacesFile& file) {
  std::string out;
  bool first = true;
  auto emit = [&](std::string_view line) {
    if (!first) out += '\n';
    out += line;
    first = false;
  };
  for (const Item& item : file.items()) {
    if (const Line* l = std::get_if<Line>(&item)) {
      emit(l->text);
      continue;
    }
    const Stanza& s = std::get<Stanza>(item);
    emit(s.header);
    for (const BodyLine& b : s.body) {
      if (const Option* o = std::get_if<Option>(&b)) {
        emit(option_text(*o));
      } else {
        emit(std::get<Line>(b).text);
      }
    }
  }
  if (!first && file.ends_with_newline()) out += '\n';
  return out;
}

const Interface* InterfacesFile::find(std::string_view name) const {
  for (const Interface& i : views_) {
    if (i.name == name) return &i;
  }
  return nullptr;
}

const Stanza* InterfacesFile::find_stanza(StanzaId id) const {
  std::optional<size_t> i = stanza_index(items_, id);
  return i ? &std::get<Stanza>(items_[*i]) : nullptr;
}

Status InterfacesFile::commit(std::vector<Item> items) {
  renumber(items);
  Result<std::vector<Interface>> views = ViewBuilder(file_).build(items);
  if (!views) return fail(ErrorCode::InvalidArgument, views.error().message());
  items_ = std::move(items);
  views_ = std::move(*views);
  return {};
}

Status InterfacesFile::set_option(StanzaId id, std::string_view key, std::string_view value) {
  MOAT_RETURN_IF_ERROR(check_option(key, value));
  std::vector<Item> items = items_;
  std::optional<size_t> index = stanza_index(items, id);
  if (!index) return no_stanza(id);
  Stanza& s = std::get<Stanza>(items[*index]);
  const std::string wanted = canonical_key(key);
  bool done = false;
  std::vector<BodyLine> body;
  for (BodyLine& b : s.body) {
    Option* o = std::get_if<Option>(&b);
    if (o && o->key() == wanted) {
      if (done) continue;  // a later line with the same key goes
      Option updated = new_option(o->indent, o->name, value);
      updated.trailing = o->trailing;
      if (!updated.value.empty() && !o->separator.empty()) updated.separator = o->separator;
      *o = std::move(updated);
      done = true;
    }
    body.push_back(std::move(b));
  }
  s.body = std::move(body);
  if (!done) {
    s.body.insert(s.body.begin() + static_cast<std::ptrdiff_t>(option_insert_index(s)),
                  new_option(file_indent(items, &s), key, value));
  }
  return commit(std::move(items));
}

Status InterfacesFile::add_option(StanzaId id, std::string_view key, std::string_view value) {
  MOAT_RETURN_IF_ERROR(check_option(key, value));
  std::vector<Item> items = items_;
  std::optional<size_t> index = stanza_index(items, id);
  if (!index) return no_stanza(id);
  Stanza& s = std::get<Stanza>(items[*index]);
  s.body.insert(s.body.begin() + static_cast<std::ptrdiff_t>(option_insert_index(s)),
                new_option(file_indent(items, &s), key, value));
  return commit(std::move(items));
}

Status InterfacesFile::remove_option(StanzaId id, std::string_view key) {
  std::vector<Item> items = items_;
  std::optional<size_t> index = stanza_index(items, id);
  if (!index) return no_stanza(id);
  Stanza& s = std::get<Stanza>(items[*index]);
  const std::string wanted = canonical_key(key);
  std::erase_if(s.body, [&](const BodyLine& b) {
    const Option* o = std::get_if<Option>(&b);
    return o && o->key() == wanted;
  });
  return commit(std::move(items));
}

Status InterfacesFile::set_method(StanzaId id, Method method) {
  MOAT_RETURN_IF_ERROR(check_method(id.family, method));
  std::vector<Item> items = items_;
  std::optional<size_t> index = stanza_index(items, id);
  if (!index) return no_stanza(id);
  Stanza& s = std::get<Stanza>(items[*index]);
  if (s.method == method) return {};
  s.method = method;
  s.header = make_header(s, s.header);
  return commit(std::move(items));
}

Status InterfacesFile::add_stanza(const NewStanza& request) {
  MOAT_RETURN_IF_ERROR(check_name("interface name", request.name));
  MOAT_RETURN_IF_ERROR(check_method(request.family, request.method));
  for (const auto& [key, value] : request.options) MOAT_RETURN_IF_ERROR(check_option(key, value));
  std::vector<Item> items = items_;
  if (stanza_index(items, {request.name, request.family})) {
    std::string what = "iface " + request.name;
    if (request.family != Family::Unspecified) what += std::string(" ") + to_string(request.family);
    return fail(ErrorCode::AlreadyExists, "stanza '" + what + "' already exists");
  }
  Stanza s{.name = request.name, .family = request.family, .method = request.method};
  s.header = make_header(s, "");
  const std::string indent = file_indent(items, nullptr);
  for (const auto& [key, value] : request.options) s.body.push_back(new_option(indent, key, value));

  std::vector<Item> insert;
  size_t at = items.size();
  bool same_name = false;
  for (size_t i = 0; i < items.size(); ++i) {
    const Stanza* other = std::get_if<Stanza>(&items[i]);
    if (!other) continue;
    if (other->name == request.name) {
      at = i + 1;
      same_name = true;
    } else if (!same_name) {
      at = i + 1;
    }
  }
  const bool appended = at == items.size();
  const bool autostart = request.autostart && !is_autostarted(items, request.name);
  if (same_name) {
    insert.push_back(std::move(s));
  } else {
    if (at > 0 && !is_blank(items[at - 1])) insert.push_back(Line{.kind = LineKind::Blank});
    if (autostart) {
      insert.push_back(Line{.kind = LineKind::Auto,
                            .text = "auto " + request.name,
                            .keyword = "auto",
                            .args = {request.name}});
    }
    insert.push_back(std::move(s));
    if (at < items.size() && !is_blank(items[at])) insert.push_back(Line{.kind = LineKind::Blank});
  }
  items.insert(items.begin() + static_cast<std::ptrdiff_t>(at),
               std::make_move_iterator(insert.begin()), std::make_move_iterator(insert.end()));
  if (same_name && autostart) {
    // `auto NAME` goes before the name's first stanza.
    for (size_t i = 0; i < items.size(); ++i) {
      const Stanza* other = std::get_if<Stanza>(&items[i]);
      if (other && other->name == request.name) {
        items.insert(items.begin() + static_cast<std::ptrdiff_t>(i),
                     Line{.kind = LineKind::Auto,
                          .text = "auto " + request.name,
                          .keyword = "auto",
                          .args = {request.name}});
        break;
      }
    }
  }
  MOAT_RETURN_IF_ERROR(commit(std::move(items)));
  if (appended) ends_with_newline_ = true;
  return {};
}

Status InterfacesFile::remove_stanza(StanzaId id) {
  std::vector<Item> items = items_;
  std::optional<size_t> index = stanza_index(items, id);
  if (!index) return no_stanza(id);
  std::vector<bool> remove(items.size(), false);
  remove[*index] = true;
  bool last_of_name = true;
  for (size_t i = 0; i < items.size(); ++i) {
    const Stanza* s = std::get_if<Stanza>(&items[i]);
    if (i != *index && s && s->name == id.name) last_of_name = false;
  }
  if (last_of_name) drop_autostart(items, id.name, remove);
  return commit(remove_items(std::move(items), remove));
}

Status InterfacesFile::set_autostart(std::string_view name, bool autostart) {
  if (!has_stanza(items_, name)) {
    return fail(ErrorCode::NotFound, "no stanza for interface '" + std::string(name) + "'");
  }
  if (autostart == is_autostarted(items_, name)) return {};
  std::vector<Item> items = items_;
  if (!autostart) {
    std::vector<bool> remove(items.size(), false);
    drop_autostart(items, name, remove);
    return commit(remove_items(std::move(items), remove));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const Stanza* s = std::get_if<Stanza>(&items[i]);
    if (s && s->name == name) {
      items.insert(items.begin() + static_cast<std::ptrdiff_t>(i),
                   Line{.kind = LineKind::Auto,
                        .text = "auto " + std::string(name),
                        .keyword = "auto",
                        .args = {std::string(name)}});
      break;
    }
  }
  return commit(std::move(items));
}

}  // namespace moat::bridges
