// compile_ovs(): the OVS stanzas of an interfaces file as OVSDB rows.
// Pure (ovs_kernel_datapath_available() is the one host probe, kept apart for the caller).
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "moat/base/strings.h"
#include "moat/bridges/ovs.h"

namespace moat::bridges {
namespace {

std::unexpected<Error> config_error(const InterfacesFile& file, Position at, std::string message) {
  return fail(Error(ErrorCode::InvalidConfig, std::move(message))
                  .at({.file = file.file(), .line = at.line, .column = at.column}));
}

bool is_ovs_port_kind(InterfaceKind kind) {
  return kind == InterfaceKind::OvsPort || kind == InterfaceKind::OvsIntPort ||
         kind == InterfaceKind::OvsBond;
}

constexpr std::string_view kVlanModes[] = {"access", "trunk", "native-tagged", "native-untagged",
                                           "dot1q-tunnel"};
constexpr std::string_view kBondModes[] = {"active-backup", "balance-slb", "balance-tcp"};
constexpr std::string_view kLacpModes[] = {"active", "passive", "off"};

template <size_t N>
bool one_of(std::string_view value, const std::string_view (&allowed)[N]) {
  return std::find(std::begin(allowed), std::end(allowed), value) != std::end(allowed);
}

template <size_t N>
std::string list(const std::string_view (&allowed)[N]) {
  std::string out;
  for (std::string_view a : allowed) out += (out.empty() ? "" : ", ") + std::string(a);
  return out;
}

// Parses the words of `ovs_options` into the Port columns of `port`. Positions of words are
// the option's value column plus the word's offset in the verbatim value.
Status parse_port_options(const InterfacesFile& file, const Interface& i, OvsPortSpec& port) {
  const std::string& text = i.ovs->options;
  const Position base = i.position_of("ovs-options");
  bool bond = i.kind == InterfaceKind::OvsBond;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = text.find_first_not_of(" \t", pos);
    if (start == std::string::npos) break;
    size_t end = text.find_first_of(" \t", start);
    if (end == std::string::npos) end = text.size();
    pos = end;
    std::string_view word(text.data() + start, end - start);
    Position at{base.line, base.column + static_cast<int>(start)};
    size_t eq = word.find('=');
    std::string_view key = word.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? "" : word.substr(eq + 1);
    auto bad = [&](std::string why) {
      return config_error(file, at,
                          "ovs_options of '" + i.name + "': '" + std::string(word) + "' " + why);
    };
    if (eq == std::string_view::npos || value.empty()) return bad("is not KEY=VALUE");
    auto vlan = [&](std::string_view v) -> std::optional<uint32_t> {
      auto n = parse_uint(v);
      if (!n || *n > 4095) return std::nullopt;
      return static_cast<uint32_t>(*n);
    };
    if (key == "tag") {
      port.tag = vlan(value);
      if (!port.tag) return bad("is not a VLAN id (0-4095)");
    } else if (key == "trunks") {
      port.trunks.clear();
      for (std::string_view v : split(value, ',')) {
        auto id = vlan(v);
        if (!id) return bad("is not a list of VLAN ids (0-4095) separated by commas");
        port.trunks.push_back(*id);
      }
      std::sort(port.trunks.begin(), port.trunks.end());
      port.trunks.erase(std::unique(port.trunks.begin(), port.trunks.end()), port.trunks.end());
    } else if (key == "vlan_mode") {
      if (!one_of(value, kVlanModes)) return bad("is not a VLAN mode (" + list(kVlanModes) + ")");
      port.vlan_mode = value;
    } else if (key == "bond_mode" || key == "lacp" || key == "bond_updelay" ||
               key == "bond_downdelay") {
      if (!bond) return bad("applies to an OVSBond only");
      if (key == "bond_mode") {
        if (!one_of(value, kBondModes))
          return bad("is not an OVS bond mode (" + list(kBondModes) + ")");
        port.bond_mode = value;
      } else if (key == "lacp") {
        if (!one_of(value, kLacpModes)) return bad("is not a LACP mode (" + list(kLacpModes) + ")");
        port.lacp = value;
      } else {
        auto ms = parse_uint(value);
        if (!ms || *ms > INT32_MAX) return bad("is not a delay in milliseconds");
        (key == "bond_updelay" ? port.bond_updelay : port.bond_downdelay) =
            static_cast<uint32_t>(*ms);
      }
    } else if (key.starts_with("other_config:") && key.size() > 13) {
      port.other_config[std::string(key.substr(13))] = value;
    } else {
      return bad(
          "is not supported (expected tag=, trunks=, vlan_mode=, bond_mode=, lacp=, "
          "bond_updelay=, bond_downdelay= or other_config:KEY=VALUE)");
    }
  }
  if (port.vlan_mode == "dot1q-tunnel" && !port.tag) {
    return config_error(file, base,
                        "ovs_options of '" + i.name + "': vlan_mode=dot1q-tunnel needs tag=");
  }
  if (port.vlan_mode == "access" && !port.trunks.empty()) {
    return config_error(file, base,
                        "ovs_options of '" + i.name + "': an access port carries no trunks=");
  }
  return {};
}

}  // namespace

const char* to_string(OvsDatapath datapath) {
  return datapath == OvsDatapath::Netdev ? "netdev" : "system";
}

bool ovs_kernel_datapath_available() {
  std::error_code ec;
  return std::filesystem::exists("/sys/module/openvswitch", ec);
}

Result<OvsDesired> compile_ovs(const CompileOvsRequest& request) {
  const InterfacesFile& file = *request.file;
  OvsDesired out;
  std::map<std::string, const Interface*, std::less<>> bridges;
  for (const Interface& i : file.interfaces()) {
    if (i.kind != InterfaceKind::OvsBridge && !is_ovs_port_kind(i.kind)) continue;
    if (auto extra = i.option_at.find("ovs-extra"); extra != i.option_at.end()) {
      return config_error(file, extra->second,
                          "ovs_extra of '" + i.name +
                              "' is not supported (its ovs-vsctl commands cannot be planned); "
                              "use ovs_options");
    }
    if (i.kind != InterfaceKind::OvsBridge) continue;
    if (i.ovs && !i.ovs->options.empty()) {
      return config_error(file, i.position_of("ovs-options"),
                          "ovs_options on OVSBridge '" + i.name + "' are not supported");
    }
    bridges.emplace(i.name, &i);
    out.bridges.push_back({.name = i.name, .datapath = request.datapath, .line = i.at.line});
    // The bridge's own internal port, as ovs-vsctl add-br creates it.
    out.ports.push_back({.name = i.name,
                         .bridge = i.name,
                         .interfaces = {{.name = i.name, .type = "internal", .mtu_request = i.mtu}},
                         .line = i.at.line});
  }

  std::map<std::string, std::string, std::less<>> member_of;  // interface -> port
  for (const Interface& i : file.interfaces()) {
    if (!is_ovs_port_kind(i.kind)) continue;
    const Word& bridge = i.ovs->bridge;
    if (bridge.text.empty()) {
      return config_error(file, i.at,
                          std::string(to_string(i.kind)) + " '" + i.name + "' needs ovs_bridge");
    }
    if (!bridges.contains(bridge.text)) {
      return config_error(
          file, bridge.at,
          "ovs_bridge '" + bridge.text + "' of '" + i.name + "' is not an OVSBridge of this file");
    }
    OvsPortSpec port{.name = i.name, .bridge = bridge.text, .line = i.at.line};
    if (i.kind == InterfaceKind::OvsBond) {
      if (i.ovs->bonds.size() < 2) {
        return config_error(file, i.position_of("ovs-bonds"),
                            "OVSBond '" + i.name + "' needs at least two ovs_bonds members");
      }
      for (const Word& w : i.ovs->bonds) {
        port.interfaces.push_back({.name = w.text, .mtu_request = i.mtu});
      }
      std::sort(port.interfaces.begin(), port.interfaces.end(),
                [](const auto& a, const auto& b) { return a.name < b.name; });
    } else {
      port.interfaces.push_back({.name = i.name,
                                 .type = i.kind == InterfaceKind::OvsIntPort ? "internal" : "",
                                 .mtu_request = i.mtu});
    }
    for (const OvsInterfaceSpec& member : port.interfaces) {
      const std::string& name = member.name;
      auto [it, inserted] = member_of.emplace(name, i.name);
      if (!inserted || bridges.contains(name)) {
        Position at = i.at;
        for (const Word& w : i.ovs->bonds) {
          if (w.text == name) at = w.at;
        }
        return config_error(file, at,
                            "OVS interface '" + name + "' is already used by '" +
                                (inserted ? name : it->second) + "'");
      }
    }
    MOAT_RETURN_IF_ERROR(parse_port_options(file, i, port));
    out.ports.push_back(std::move(port));
  }

  for (const auto& [name, bridge] : bridges) {
    if (!bridge->ovs) continue;
    for (const Word& w : bridge->ovs->ports) {
      const Interface* port = file.find(w.text);
      if (!port || !is_ovs_port_kind(port->kind)) {
        return config_error(file, w.at,
                            "'" + w.text + "' is in ovs_ports of '" + name +
                                "' but has no `ovs_type OVSPort|OVSIntPort|OVSBond` stanza");
      }
    }
  }

  std::sort(out.bridges.begin(), out.bridges.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::sort(out.ports.begin(), out.ports.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

}  // namespace moat::bridges
