// Parsing of Proxmox firewall files into the model (model.h), and loading of a whole
// configuration root shaped like /etc/pve. Parsing is strict: any malformed line is an Error
// with file:line:column and the offending token, and nothing is half-loaded. Pure functions
// except load_config, which reads files; thread-safe.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "moat/firewall/model.h"

namespace moat::firewall {

// Which file a text is: decides the allowed sections, options and rule directions.
enum class FwFileKind { Cluster, Host, Guest, Vnet };

Result<ClusterFw> parse_cluster_fw(std::string_view text, const std::string& file);
Result<HostFw> parse_host_fw(std::string_view text, const std::string& file);
Result<GuestFw> parse_guest_fw(std::string_view text, const std::string& file);
Result<VnetFw> parse_vnet_fw(std::string_view text, const std::string& file);

// Parses one rule line (as found in [RULES] or [group x]) for a file of `kind`; `in_group`
// allows IN/OUT/FORWARD but not GROUP. `where` is the line's location (column ignored).
Result<Rule> parse_rule(std::string_view line, FwFileKind kind, bool in_group,
                        const SourceLocation& where);

// Parses the `netN:` lines of a guest config (qemu-server/<vmid>.conf or lxc/<vmid>.conf);
// other lines are ignored. Only the current config counts: parsing stops at the first
// snapshot section ("[name]").
Result<Guest> parse_guest_config(std::string_view text, const std::string& file, uint32_t vmid,
                                 Guest::Type type);

struct LoadedConfig {
  FirewallConfig config;
  std::vector<std::string> warnings;
};

// Reads the firewall files of `node` from `root`: firewall/cluster.fw,
// nodes/<node>/host.fw, nodes/<node>/{qemu-server,lxc}/<vmid>.conf with firewall/<vmid>.fw,
// sdn/firewall/<vnet>.fw and corosync.conf (cluster peers). Missing files mean defaults.
Result<LoadedConfig> load_config(const std::filesystem::path& root, const std::string& node);

}  // namespace moat::firewall
