#include "moat/firewall/names.h"

#include <cstdio>

namespace moat::firewall::names {

std::string guest_table(int shard) { return "moat-guests-" + std::to_string(shard); }

bool owned_table(const std::string& name) {
  return name == kHostTable || name.starts_with(std::string(kHostTable) + "-");
}

std::string guest_chain(uint32_t vmid, Direction dir) {
  return "guest-" + std::to_string(vmid) + (dir == Direction::In ? "-in" : "-out");
}

std::string group_chain(const std::string& group, Direction dir) {
  const char* suffix = dir == Direction::In ? "-in" : dir == Direction::Out ? "-out" : "-fwd";
  return "group-" + group + suffix;
}

std::string vnet_chain(const std::string& vnet) { return "vnet-" + vnet; }

std::string guest_device(const Guest& guest, int nic) {
  return (guest.type == Guest::Type::Vm ? "tap" : "veth") + std::to_string(guest.vmid) + "i" +
         std::to_string(nic);
}

std::string firewall_bridge(uint32_t vmid, int nic) {
  return kFirewallBridgePrefix + std::to_string(vmid) + "i" + std::to_string(nic);
}

std::string ovs_link_port(uint32_t vmid, int nic) {
  return "fwln" + std::to_string(vmid) + "o" + std::to_string(nic);
}

std::string firewall_link_port(uint32_t vmid, int nic) {
  return "fwln" + std::to_string(vmid) + "i" + std::to_string(nic);
}

std::string firewall_uplink_port(uint32_t vmid, int nic) {
  return "fwpr" + std::to_string(vmid) + "p" + std::to_string(nic);
}

std::string vlan_bridge(const std::string& bridge, uint16_t tag) {
  return bridge + "v" + std::to_string(tag);
}

std::string ipset(int family, const std::string& scope, uint32_t vmid, const std::string& name) {
  std::string s = scope == "guest" ? "guest-" + std::to_string(vmid) : scope;
  return "v" + std::to_string(family) + "-" + s + "/" + name;
}

namespace {

// "<prefix><bridge>" when that fits the kernel's 15 characters, else "<prefix>" and a hash of
// the bridge name (bridge names may be 15 characters themselves).
std::string port_name(const char* prefix, const std::string& bridge) {
  std::string name = prefix + bridge;
  if (name.size() <= 15) return name;
  uint32_t h = 2166136261u;
  for (char c : bridge) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", h);
  return prefix + std::string("#") + hex;
}

}  // namespace

std::string reject_port(const std::string& bridge) { return port_name("mrj.", bridge); }
std::string reject_peer(const std::string& bridge) { return port_name("mrp.", bridge); }

std::optional<std::string> reject_port_peer(const std::string& port) {
  if (!port.starts_with("mrj.")) return std::nullopt;
  return "mrp." + port.substr(4);
}

}  // namespace moat::firewall::names
