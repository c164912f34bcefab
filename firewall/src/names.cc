#include "moat/firewall/names.h"

namespace moat::firewall::names {

std::string guest_table(int shard) { return "moat-guests-" + std::to_string(shard); }

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

std::string ipset(int family, const std::string& scope, uint32_t vmid, const std::string& name) {
  std::string s = scope == "guest" ? "guest-" + std::to_string(vmid) : scope;
  return "v" + std::to_string(family) + "-" + s + "/" + name;
}

}  // namespace moat::firewall::names
