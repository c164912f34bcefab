#include "moat/firewall/local_network.h"

#include <algorithm>
#include <string>

#include "moat/base/file.h"
#include "moat/base/strings.h"

namespace moat::firewall {

std::vector<IpAddress> node_addresses_from_hosts(std::string_view hosts, std::string_view node) {
  std::vector<IpAddress> out;
  for (auto line : split(hosts, '\n')) {
    line = trim(line.substr(0, line.find('#')));
    auto words = split_ws(line);
    if (words.size() < 2) continue;
    auto ip = parse_ip(words[0]);
    if (!ip) continue;
    // A name matches as the canonical name or an alias, with or without the domain.
    for (size_t i = 1; i < words.size(); ++i) {
      auto name = words[i];
      if (iequals(name, node) || iequals(name.substr(0, name.find('.')), node)) {
        out.push_back(*ip);
        break;
      }
    }
  }
  return out;
}

namespace {

bool counts(const NodeAddress& a) {
  if (a.link == "lo" || bridges::is_guest_port(a.link)) return false;
  const auto& b = a.ip.bytes;
  if (a.ip.family == 4) return b[0] != 127 && !(b[0] == 169 && b[1] == 254);
  bool loopback =
      std::all_of(b.begin(), b.end() - 1, [](uint8_t x) { return x == 0; }) && b[15] == 1;
  bool link_local = b[0] == 0xfe && (b[1] & 0xc0) == 0x80;
  return !loopback && !link_local;
}

IpRange network_of(const NodeAddress& a) {
  // parse_ip_range clears the host bits of "addr/len".
  return *parse_ip_range(a.ip.to_string() + "/" + std::to_string(a.prefix));
}

}  // namespace

std::vector<IpRange> pick_local_networks(const std::vector<NodeAddress>& addresses,
                                         const std::vector<IpAddress>& node_ips) {
  std::vector<IpRange> own, all;
  for (const auto& a : addresses) {
    if (!counts(a)) continue;
    IpRange net = network_of(a);
    all.push_back(net);
    if (std::find(node_ips.begin(), node_ips.end(), a.ip) != node_ips.end()) own.push_back(net);
  }
  std::vector<IpRange>& out = own.empty() ? all : own;
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<IpRange> detect_local_networks(const bridges::Observed& observed, std::string_view node,
                                           const std::string& hosts_file) {
  std::vector<IpAddress> node_ips;
  if (auto hosts = read_file(hosts_file)) node_ips = node_addresses_from_hosts(*hosts, node);
  std::vector<NodeAddress> addresses;
  for (const auto& l : observed.links)
    for (const auto& a : l.addresses) addresses.push_back({l.name, a.ip, a.prefix});
  return pick_local_networks(addresses, node_ips);
}

}  // namespace moat::firewall
