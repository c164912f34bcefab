// Reading a configuration root: guest configs (netN lines) and every firewall file of a node.
#include <algorithm>

#include "moat/base/file.h"
#include "moat/base/property_string.h"
#include "moat/base/strings.h"
#include "moat/firewall/parser.h"

namespace moat::firewall {

namespace {

std::optional<std::string> normalize_mac(std::string_view v) {
  auto parts = split(v, ':');
  if (parts.size() != 6) return std::nullopt;
  for (auto p : parts)
    if (p.size() != 2 || !std::isxdigit(static_cast<unsigned char>(p[0])) ||
        !std::isxdigit(static_cast<unsigned char>(p[1])))
      return std::nullopt;
  return to_lower(v);
}

Status parse_nic(Guest& guest, int index, std::string_view value, const SourceLocation& where) {
  static const std::vector<std::string> kVmModels = {"virtio",   "e1000",    "e1000e",  "rtl8139",
                                                     "vmxnet3",  "i82551",   "i82557b", "i82559er",
                                                     "ne2k_isa", "ne2k_pci", "pcnet"};
  auto ps = MOAT_TRY(parse_property_string(
      value, where, {.default_key = guest.type == Guest::Type::Vm ? "model" : ""}));
  GuestNic nic;
  nic.index = index;
  nic.where = where;
  // Errors point at the item's value (the column of a key=value item is its key's).
  auto bad = [&](const PropertyItem& item, const std::string& why) {
    SourceLocation at = where;
    at.column = where.column + item.column - 1 + static_cast<int>(item.key.size()) + 1;
    return fail(Error(ErrorCode::InvalidConfig, why).at(at));
  };
  for (const auto& item : ps.items) {
    bool vm_model = guest.type == Guest::Type::Vm &&
                    std::find(kVmModels.begin(), kVmModels.end(), item.key) != kVmModels.end();
    if (vm_model || item.key == "hwaddr" || item.key == "macaddr") {
      if (item.value.empty() && vm_model) continue;
      auto mac = normalize_mac(item.value);
      if (!mac)
        return bad(item, "invalid MAC address '" + item.value + "' in net" + std::to_string(index));
      nic.mac = *mac;
    } else if (item.key == "bridge") {
      nic.bridge = item.value;
    } else if (item.key == "tag") {
      auto tag = parse_uint(item.value);
      if (!tag || *tag < 1 || *tag > 4094)
        return bad(item, "invalid VLAN tag '" + item.value + "'");
      nic.tag = static_cast<uint16_t>(*tag);
    } else if (item.key == "firewall") {
      // A Proxmox boolean: 1/on/yes/true or 0/off/no/false.
      std::string v = to_lower(item.value);
      if (v == "1" || v == "on" || v == "yes" || v == "true") {
        nic.firewall = true;
      } else if (v == "0" || v == "off" || v == "no" || v == "false") {
        nic.firewall = false;
      } else {
        return bad(item,
                   "invalid firewall flag '" + item.value + "' in net" + std::to_string(index));
      }
    } else if (item.key == "ip" || item.key == "ip6") {
      if (item.value == "dhcp" || item.value == "manual" || item.value == "auto") continue;
      auto slash = item.value.find('/');
      auto addr = parse_ip(std::string_view(item.value).substr(0, slash));
      if (!addr || (addr->family == 6) != (item.key == "ip6"))
        return bad(item,
                   "invalid " + item.key + " '" + item.value + "' in net" + std::to_string(index));
      (item.key == "ip" ? nic.ip : nic.ip6) = IpRange{*addr, *addr};
    }
  }
  guest.nics[index] = std::move(nic);
  return {};
}

}  // namespace

Result<Guest> parse_guest_config(std::string_view text, const std::string& file, uint32_t vmid,
                                 Guest::Type type) {
  Guest guest;
  guest.vmid = vmid;
  guest.type = type;
  guest.file = file;
  int number = 0;
  for (auto raw : split(text, '\n')) {
    ++number;
    auto line = trim(raw);
    if (line.starts_with('[')) break;  // snapshots and pending changes follow
    if (!line.starts_with("net")) continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto index = parse_uint(line.substr(3, colon - 3));
    if (!index) continue;
    if (*index >= 32)
      return fail(
          Error(ErrorCode::InvalidConfig, "NIC index out of range: net" + std::to_string(*index))
              .at({file, number, static_cast<int>(line.data() - raw.data()) + 1}));
    auto value_start = line.find_first_not_of(" \t", colon + 1);
    if (value_start == std::string_view::npos) continue;
    int column = static_cast<int>(line.data() - raw.data() + value_start) + 1;
    MOAT_RETURN_IF_ERROR(parse_nic(guest, static_cast<int>(*index), line.substr(value_start),
                                   {file, number, column}));
  }
  return guest;
}

namespace {

// Reads a file if it exists; nullopt when it does not.
Result<std::optional<std::string>> read_optional(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<std::string>{};
  return std::optional<std::string>(MOAT_TRY(read_file(path)));
}

// Addresses of corosync.conf's nodelist (ringX_addr lines that are IP literals).
std::vector<IpAddress> corosync_peers(std::string_view text) {
  std::vector<IpAddress> peers;
  for (auto raw : split(text, '\n')) {
    auto line = trim(raw);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto key = trim(line.substr(0, colon));
    if (!key.starts_with("ring") || !key.ends_with("_addr")) continue;
    if (auto ip = parse_ip(trim(line.substr(colon + 1)))) peers.push_back(*ip);
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

// Files are named relative to the configuration root in errors and rule origins
// ("firewall/100.fw:7"), as an operator would name them under /etc/pve.
std::string display_name(const std::filesystem::path& root, const std::filesystem::path& path) {
  return path.lexically_relative(root).string();
}

}  // namespace

Result<LoadedConfig> load_config(const std::filesystem::path& root, const std::string& node) {
  LoadedConfig out;
  FirewallConfig& config = out.config;
  config.node = node;
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec))
    return fail(ErrorCode::InvalidArgument,
                "configuration root " + root.string() + " is not a directory");

  auto cluster_path = root / "firewall" / "cluster.fw";
  if (auto text = MOAT_TRY(read_optional(cluster_path)))
    config.cluster = MOAT_TRY(parse_cluster_fw(*text, display_name(root, cluster_path)));
  auto node_dir = root / "nodes" / node;
  auto host_path = node_dir / "host.fw";
  if (auto text = MOAT_TRY(read_optional(host_path)))
    config.host = MOAT_TRY(parse_host_fw(*text, display_name(root, host_path)));

  for (auto [sub, type] : {std::pair{"qemu-server", Guest::Type::Vm}, {"lxc", Guest::Type::Ct}}) {
    auto dir = node_dir / sub;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
      if (entry.path().extension() == ".conf") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      auto vmid = parse_uint(path.stem().string());
      if (!vmid || *vmid < 100 || *vmid > 999999999) {
        out.warnings.push_back(display_name(root, path) + ": ignored, the file name is not a VMID");
        continue;
      }
      auto text = MOAT_TRY(read_file(path));
      auto guest = MOAT_TRY(
          parse_guest_config(text, display_name(root, path), static_cast<uint32_t>(*vmid), type));
      if (config.guests.contains(guest.vmid))
        return fail(
            Error(ErrorCode::InvalidConfig, "VMID " + std::to_string(guest.vmid) +
                                                " is configured both as a VM and as a container")
                .at({display_name(root, path), 0, 0}));
      auto fw_path = root / "firewall" / (std::to_string(guest.vmid) + ".fw");
      if (auto fw_text = MOAT_TRY(read_optional(fw_path)))
        guest.fw = MOAT_TRY(parse_guest_fw(*fw_text, display_name(root, fw_path)));
      config.guests[guest.vmid] = std::move(guest);
    }
  }

  auto vnet_dir = root / "sdn" / "firewall";
  if (std::filesystem::is_directory(vnet_dir, ec)) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(vnet_dir, ec))
      if (entry.path().extension() == ".fw") files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      auto text = MOAT_TRY(read_file(path));
      config.vnets[path.stem().string()] = MOAT_TRY(parse_vnet_fw(text, display_name(root, path)));
    }
  }
  if (auto text = MOAT_TRY(read_optional(root / "corosync.conf")))
    config.cluster_peers = corosync_peers(*text);
  return out;
}

}  // namespace moat::firewall
