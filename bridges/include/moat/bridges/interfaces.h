// The `/etc/network/interfaces` file (ifupdown2 plus Proxmox's OVS keywords) as a lossless
// document and a typed, per-interface view of it. The document keeps every line: comments,
// blank lines, `auto`/`allow-*`, `source`/`source-directory`, `mapping` blocks and `iface`
// stanzas whose option lines keep their spelling, indentation and value, so that
// write_interfaces(parse_interfaces(text)) == text byte for byte, and an edit through the
// mutators below changes only the lines it is about. Parsing is pure and strict (every error is
// InvalidConfig at file:line:column); semantic checks across interfaces live in validate.h.
// Value types; not synchronized.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "moat/base/ip.h"
#include "moat/base/result.h"

namespace moat::bridges {

// A 1-based position in the file as write_interfaces() prints it now (the document renumbers
// after every edit, so positions never go stale).
struct Position {
  int line = 0;
  int column = 0;
  friend bool operator==(const Position&, const Position&) = default;
};

// ---------------------------------------------------------------------------------------------
// Document model
// ---------------------------------------------------------------------------------------------

enum class Family { Unspecified, Inet, Inet6 };
enum class Method { Unspecified, Manual, Static, Dhcp, Loopback, Auto };  // Auto: inet6 only

const char* to_string(Family family);  // "", "inet", "inet6"
const char* to_string(Method method);  // "", "manual", "static", "dhcp", "loopback", "auto"

enum class LineKind {
  Blank,
  Comment,          // first non-blank character is '#'
  Auto,             // auto NAME...
  Allow,            // allow-CLASS NAME... (allow-hotplug, allow-ovs, allow-vmbr0, ...)
  Source,           // source PATH
  SourceDirectory,  // source-directory PATH
  Mapping,          // mapping PATTERN...
  MappingBody,      // a line of a mapping block (`script ...`, `map ...`), kept as it is
};

// A line kept verbatim: everything outside an iface stanza, and comment or blank lines inside.
struct Line {
  LineKind kind = LineKind::Blank;
  std::string text;               // the whole line without its '\n' (a '\r' stays here)
  int line = 0;                   // 1-based
  std::string keyword;            // first word of a keyword line ("auto", "allow-hotplug", ...)
  std::vector<std::string> args;  // words after the keyword (interface names, the path, ...)
};

// One option line of a stanza. indent + name + separator + value + trailing is the line.
struct Option {
  std::string indent;
  std::string name;       // as spelled: "bridge_ports", "bridge-ports", "ovs-type", ...
  std::string separator;  // whitespace between name and value; empty when there is no value
  std::string value;      // verbatim, inner spacing kept, trailing whitespace excluded
  std::string trailing;   // whitespace after the value (or after the name)
  int line = 0;

  // The spelling-independent key: the name with '_' turned into '-' ("ovs_type" -> "ovs-type").
  std::string key() const;
  // Column of the first character of the value.
  int value_column() const;
};

using BodyLine = std::variant<Option, Line>;  // Line: Comment or Blank only

// `iface NAME [FAMILY [METHOD]]` and the lines that follow it up to the next keyword line.
// Blank lines after the last option (and everything after them) belong to the top level;
// comments directly under the options stay in the stanza, as Proxmox writes its comments there.
struct Stanza {
  std::string name;
  Family family = Family::Unspecified;
  Method method = Method::Unspecified;
  std::string header;  // the iface line verbatim
  int line = 0;
  std::vector<BodyLine> body;

  // The first option with key `key` in any spelling ("ovs_type" finds "ovs-type"), or nullptr.
  const Option* find(std::string_view key) const;
};

using Item = std::variant<Line, Stanza>;

// ---------------------------------------------------------------------------------------------
// Typed view: one Interface per name, merged from all of its stanzas in file order (as
// ifupdown2 merges an `inet` and an `inet6` stanza of the same link).
// ---------------------------------------------------------------------------------------------

enum class InterfaceKind {
  Physical,   // a NIC name: eth<N>, en*, ib*, nic<N>, if<N>
  Other,      // nothing in the name or options tells
  Loopback,   // `lo` or method loopback
  Alias,      // name:N
  Bridge,     // bridge-ports is present (possibly `none`)
  Bond,       // bond-slaves is present, or the name is bond<N>
  Vlan,       // vlan-raw-device or vlan-id is present, or the name is <dev>.<id>
  Vxlan,      // vxlan-id is present
  Veth,       // link-type veth
  Dummy,      // link-type dummy
  OvsBridge,  // ovs_type OVSBridge (ovs_type decides over every other hint)
  OvsBond,
  OvsIntPort,
  OvsPort,
};
const char* to_string(InterfaceKind kind);  // "bridge", "OVSBond", ...

// A word of an option value (an interface name) and where it is written.
struct Word {
  std::string text;
  Position at;
  friend bool operator==(const Word&, const Word&) = default;
};

struct Address {
  IpAddress ip;
  std::optional<int> prefix;  // from "/len", else from the stanza's netmask, else none
  Position at;
};

struct VlanRange {
  uint32_t first = 0;
  uint32_t last = 0;
  Position at;
};

struct BridgeOptions {
  std::vector<Word> ports;  // empty for `none`
  std::optional<bool> stp;
  std::optional<uint32_t> forward_delay;  // bridge-fd
  bool vlan_aware = false;
  std::vector<VlanRange> vids;  // bridge-vids, "2-4094" or "10 20 30-40"
};

// bond-mode by name or by number 0-6, in kernel numbering.
enum class BondMode {
  BalanceRr,
  ActiveBackup,
  BalanceXor,
  Broadcast,
  Ieee8023ad,
  BalanceTlb,
  BalanceAlb
};
const char* to_string(BondMode mode);  // the kernel's name: "balance-rr", ..., "802.3ad", ...

struct BondOptions {
  std::vector<Word> slaves;  // empty for `none`
  std::optional<BondMode> mode;
  std::optional<uint32_t> miimon;
  std::string xmit_hash_policy;  // as written ("layer2+3"); empty when absent
  std::string primary;
};

enum class VlanProtocol { Dot1Q, Dot1AD };

struct VlanOptions {
  Word raw_device;             // vlan-raw-device, else the part of the name before the last '.'
  std::optional<uint32_t> id;  // vlan-id, else from the name (`eth0.10`, `vlan10`); range is
                               // checked by validate(), not by the parser
  VlanProtocol protocol = VlanProtocol::Dot1Q;
};

struct VxlanOptions {
  std::optional<uint32_t> id;  // 0-16777215
  std::vector<IpAddress> remote_ips;
  std::optional<IpAddress> local_tunnel_ip;
};

enum class OvsType { Bridge, Bond, IntPort, Port };

struct OvsOptions {
  std::optional<OvsType> type;
  std::vector<Word> ports;      // ovs_ports (OVSBridge)
  std::vector<Word> bonds;      // ovs_bonds (OVSBond members)
  Word bridge;                  // ovs_bridge; empty text when absent
  std::string options;          // ovs_options verbatim
  std::optional<uint32_t> tag;  // tag= in ovs_options
  std::string bond_mode;        // bond_mode= in ovs_options
};

struct Interface {
  std::string name;
  InterfaceKind kind = InterfaceKind::Other;
  Position at;                                // the name on the first iface line
  bool autostart = false;                     // named on an `auto` or `allow-*` line
  Method inet_method = Method::Unspecified;   // of the `inet` stanza
  Method inet6_method = Method::Unspecified;  // of the `inet6` stanza
  std::vector<Address> addresses;             // every family, file order
  std::optional<IpAddress> gateway4;
  std::optional<IpAddress> gateway6;
  std::optional<uint32_t> mtu;  // mtu or ovs_mtu
  // Set when any option of the group appears; `kind` says what the interface is.
  std::optional<BridgeOptions> bridge;
  std::optional<BondOptions> bond;
  std::optional<VlanOptions> vlan;  // always set for kind Vlan
  std::optional<VxlanOptions> vxlan;
  std::optional<OvsOptions> ovs;
  // Where the value of the first line of each option key is (keys with dashes).
  std::map<std::string, Position, std::less<>> option_at;

  // The value position of option `key`, or `at` when the option is absent.
  Position position_of(std::string_view key) const;
};

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

// Identifies one stanza: an interface name and the family on its iface line.
struct StanzaId {
  std::string_view name;
  Family family = Family::Inet;
};

// A stanza to add. Options are (name, value) pairs written in order, one per line, indented
// like the file's other stanzas.
struct NewStanza {
  std::string name;
  Family family = Family::Inet;
  Method method = Method::Manual;
  bool autostart = true;
  std::vector<std::pair<std::string, std::string>> options;
};

class InterfacesFile {
 public:
  // An empty document; `file` labels error locations.
  explicit InterfacesFile(std::string file = {}) : file_(std::move(file)) {}

  const std::string& file() const { return file_; }
  const std::vector<Item>& items() const { return items_; }
  bool ends_with_newline() const { return ends_with_newline_; }

  // Typed views in order of each name's first stanza. Invalidated by any mutator.
  const std::vector<Interface>& interfaces() const { return views_; }
  const Interface* find(std::string_view name) const;
  const Stanza* find_stanza(StanzaId id) const;

  // Mutators. Each one edits only the lines it is about and re-checks the whole document the
  // way parse_interfaces() does; on any error the document is left unchanged. A stanza that
  // does not exist is NotFound; a bad name, key or value is InvalidArgument.

  // Sets option `key` (any spelling) of a stanza: the first line with that key keeps its
  // spelling and layout and gets the new value, later lines with the key are removed; when
  // there is none, a line `key value` is added after the stanza's last option.
  Status set_option(StanzaId id, std::string_view key, std::string_view value);
  // Adds one more `key value` line after the stanza's last option (address, vxlan-remoteip,
  // post-up, ...).
  Status add_option(StanzaId id, std::string_view key, std::string_view value);
  // Removes every line with option `key` (any spelling); none is fine.
  Status remove_option(StanzaId id, std::string_view key);
  // Changes the method on the iface line (which is rewritten as `iface NAME FAMILY METHOD`).
  Status set_method(StanzaId id, Method method);
  // Adds a stanza: after the last stanza of the same name, or else after the file's last
  // stanza behind a blank line, preceded by `auto NAME` when `autostart` is asked and the name
  // is not autostarted yet. An existing (name, family) is AlreadyExists.
  Status add_stanza(const NewStanza& stanza);
  // Removes a stanza with its option and comment lines. When it was the name's last stanza,
  // the name also leaves every `auto`/`allow-*` line (a line left empty goes), and a blank line
  // left doubled by the removal is dropped.
  Status remove_stanza(StanzaId id);
  // Adds `auto NAME` before the name's first stanza, or removes the name from every
  // `auto`/`allow-*` line. The name needs a stanza.
  Status set_autostart(std::string_view name, bool autostart);

 private:
  friend Result<InterfacesFile> parse_interfaces(std::string_view text, const std::string& file);
  Status commit(std::vector<Item> items);

  std::string file_;
  std::vector<Item> items_;
  bool ends_with_newline_ = true;
  std::vector<Interface> views_;
};

// Parses `text`; `file` labels error locations. InvalidConfig errors, at the offending token:
// an option line outside an iface stanza, an iface line without a name, an unknown family or
// method, extra words on an iface line, a keyword without its argument, a duplicate stanza for
// the same name and family, a malformed address, prefix, netmask or gateway, a non-numeric or
// out-of-range mtu, vlan-id, vxlan-id, bridge-fd, bridge-vids, bond-miimon or ovs_options tag,
// an unknown bond-mode, bridge-stp/bridge-vlan-aware boolean, vlan-protocol, link-type or
// ovs_type, a typed option without a value, and a single-valued typed option given twice for
// one interface. Unknown options are accepted and kept.
Result<InterfacesFile> parse_interfaces(std::string_view text, const std::string& file);

// The document as text. Byte-identical to the parsed text when nothing was changed.
std::string write_interfaces(const InterfacesFile& file);

// True for names ifupdown2 and Proxmox take for physical NICs: eth<N>, en*, ib* (no '.' or
// ':'), nic<N>, if<N>.
bool is_physical_nic_name(std::string_view name);
// True for bond<N>.
bool is_bond_name(std::string_view name);

}  // namespace moat::bridges
