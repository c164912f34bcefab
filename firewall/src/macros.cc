#include "moat/firewall/macros.h"

#include <algorithm>

#include <array>
#include <cstddef>
#include "moat/base/strings.h"

namespace moat::firewall {
namespace {

// Entries follow Firewall.pm line for line (same order, so expanded rules come out in the order
// pve-firewall produces them). Protocols that pve-firewall writes as numbers stay numbers.
// Where Perl keeps a separate IPv6 table (Ping, Trcrt, NeighborDiscovery, DHCPv6) the entries are
// merged here and pinned with `family`, the way macros.json does it.

constexpr MacroEntry kAmanda[] = {{.proto = "udp", .dport = "10080"},
                                  {.proto = "tcp", .dport = "10080"}};
constexpr MacroEntry kAuth[] = {{.proto = "tcp", .dport = "113"}};
constexpr MacroEntry kBgp[] = {{.proto = "tcp", .dport = "179"}};
constexpr MacroEntry kBitTorrent[] = {{.proto = "tcp", .dport = "6881:6889"},
                                      {.proto = "udp", .dport = "6881"}};
constexpr MacroEntry kBitTorrent32[] = {{.proto = "tcp", .dport = "6881:6999"},
                                        {.proto = "udp", .dport = "6881"}};
// 6789: monitor protocol v1 (legacy), 3300: monitor protocol v2, then OSD/MDS/MGR daemons.
constexpr MacroEntry kCeph[] = {{.proto = "tcp", .dport = "6789"},
                                {.proto = "tcp", .dport = "3300"},
                                {.proto = "tcp", .dport = "6800:7300"}};
constexpr MacroEntry kCitrix[] = {{.proto = "tcp", .dport = "1494"},
                                  {.proto = "udp", .dport = "1604"},
                                  {.proto = "tcp", .dport = "2598"}};
constexpr MacroEntry kCvs[] = {{.proto = "tcp", .dport = "2401"}};
constexpr MacroEntry kDaap[] = {{.proto = "tcp", .dport = "3689"},
                                {.proto = "udp", .dport = "3689"}};
constexpr MacroEntry kDcc[] = {{.proto = "tcp", .dport = "6277"}};
constexpr MacroEntry kDhcpFwd[] = {{.proto = "udp", .dport = "67:68", .sport = "67:68"}};
constexpr MacroEntry kDhcpV6[] = {
    {.proto = "udp", .dport = "546:547", .sport = "546:547", .family = 6}};
constexpr MacroEntry kDistcc[] = {{.proto = "tcp", .dport = "3632"}};
constexpr MacroEntry kDns[] = {{.proto = "udp", .dport = "53"}, {.proto = "tcp", .dport = "53"}};
constexpr MacroEntry kFinger[] = {{.proto = "tcp", .dport = "79"}};
constexpr MacroEntry kFtp[] = {{.proto = "tcp", .dport = "21"}};
constexpr MacroEntry kGit[] = {{.proto = "tcp", .dport = "9418"}};
constexpr MacroEntry kGnunet[] = {{.proto = "tcp", .dport = "2086"},
                                  {.proto = "udp", .dport = "2086"},
                                  {.proto = "tcp", .dport = "1080"},
                                  {.proto = "udp", .dport = "1080"}};
constexpr MacroEntry kGre[] = {{.proto = "47"}};
constexpr MacroEntry kHkp[] = {{.proto = "tcp", .dport = "11371"}};
constexpr MacroEntry kHttp[] = {{.proto = "tcp", .dport = "80"}};
constexpr MacroEntry kHttp3[] = {{.proto = "udp", .dport = "443"}};
constexpr MacroEntry kHttps[] = {{.proto = "tcp", .dport = "443"}};
constexpr MacroEntry kIcpV2[] = {{.proto = "udp", .dport = "3130"}};
constexpr MacroEntry kIcq[] = {{.proto = "tcp", .dport = "5190"}};
constexpr MacroEntry kImap[] = {{.proto = "tcp", .dport = "143"}};
constexpr MacroEntry kImaps[] = {{.proto = "tcp", .dport = "993"}};
constexpr MacroEntry kIpip[] = {{.proto = "94"}};
constexpr MacroEntry kIpsec[] = {{.proto = "udp", .dport = "500", .sport = "500"}, {.proto = "50"}};
constexpr MacroEntry kIpsecAh[] = {{.proto = "udp", .dport = "500", .sport = "500"},
                                   {.proto = "51"}};
constexpr MacroEntry kIpsecNat[] = {
    {.proto = "udp", .dport = "500"}, {.proto = "udp", .dport = "4500"}, {.proto = "50"}};
constexpr MacroEntry kIrc[] = {{.proto = "tcp", .dport = "6667"}};
constexpr MacroEntry kJetdirect[] = {{.proto = "tcp", .dport = "9100"}};
constexpr MacroEntry kL2tp[] = {{.proto = "udp", .dport = "1701"}};
constexpr MacroEntry kLdap[] = {{.proto = "tcp", .dport = "389"}};
constexpr MacroEntry kLdaps[] = {{.proto = "tcp", .dport = "636"}};
constexpr MacroEntry kMail[] = {{.proto = "tcp", .dport = "25"},
                                {.proto = "tcp", .dport = "465"},
                                {.proto = "tcp", .dport = "587"}};
constexpr MacroEntry kMdns[] = {{.proto = "udp", .dport = "5353"}};
constexpr MacroEntry kMsnp[] = {{.proto = "tcp", .dport = "1863"}};
constexpr MacroEntry kMssql[] = {{.proto = "tcp", .dport = "1433"}};
constexpr MacroEntry kMunin[] = {{.proto = "tcp", .dport = "4949"}};
constexpr MacroEntry kMysql[] = {{.proto = "tcp", .dport = "3306"}};
constexpr MacroEntry kNeighborDiscovery[] = {
    {.proto = "ipv6-icmp", .icmp_type = "router-solicitation", .family = 6},
    {.proto = "ipv6-icmp", .icmp_type = "router-advertisement", .family = 6},
    {.proto = "ipv6-icmp", .icmp_type = "neighbor-solicitation", .family = 6},
    {.proto = "ipv6-icmp", .icmp_type = "neighbor-advertisement", .family = 6},
    {.proto = "ipv6-icmp", .icmp_type = "redirect", .family = 6}};
constexpr MacroEntry kNntp[] = {{.proto = "tcp", .dport = "119"}};
constexpr MacroEntry kNntps[] = {{.proto = "tcp", .dport = "563"}};
constexpr MacroEntry kNtp[] = {{.proto = "udp", .dport = "123"}};
constexpr MacroEntry kOpenVpn[] = {{.proto = "udp", .dport = "1194"}};
constexpr MacroEntry kOspf[] = {{.proto = "89"}};
constexpr MacroEntry kPbs[] = {{.proto = "tcp", .dport = "8007"}};
constexpr MacroEntry kPca[] = {{.proto = "udp", .dport = "5632"},
                               {.proto = "tcp", .dport = "5631"}};
constexpr MacroEntry kPing[] = {{.proto = "icmp", .icmp_type = "echo-request", .family = 4},
                                {.proto = "ipv6-icmp", .icmp_type = "echo-request", .family = 6}};
constexpr MacroEntry kPmg[] = {{.proto = "tcp", .dport = "8006"}};
constexpr MacroEntry kPop3[] = {{.proto = "tcp", .dport = "110"}};
constexpr MacroEntry kPop3s[] = {{.proto = "tcp", .dport = "995"}};
constexpr MacroEntry kPostgreSql[] = {{.proto = "tcp", .dport = "5432"}};
constexpr MacroEntry kPptp[] = {{.proto = "47"}, {.proto = "tcp", .dport = "1723"}};
constexpr MacroEntry kPrinter[] = {{.proto = "tcp", .dport = "515"}};
// Firewall.pm gives Razor a fixed ACCEPT action instead of PARAM, so `Razor(DROP)` accepts
// there. macros.json has no per-entry action; this table follows it and carries none.
constexpr MacroEntry kRazor[] = {{.proto = "tcp", .dport = "2703"}};
constexpr MacroEntry kRdate[] = {{.proto = "tcp", .dport = "37"}};
constexpr MacroEntry kRdp[] = {{.proto = "tcp", .dport = "3389"}};
constexpr MacroEntry kRip[] = {{.proto = "udp", .dport = "520"}};
constexpr MacroEntry kRndc[] = {{.proto = "tcp", .dport = "953"}};
constexpr MacroEntry kRsync[] = {{.proto = "tcp", .dport = "873"}};
constexpr MacroEntry kSane[] = {{.proto = "tcp", .dport = "6566"}};
// 41 is IPv6-in-IPv4 (6in4), the tunnel itself.
constexpr MacroEntry kSixXs[] = {{.proto = "tcp", .dport = "3874"},
                                 {.proto = "udp", .dport = "3740"},
                                 {.proto = "41"},
                                 {.proto = "udp", .dport = "5072,8374"}};
// Shorewall's SMB macro also has the mirrored reply rules; pve-firewall keeps only these four.
constexpr MacroEntry kSmb[] = {{.proto = "udp", .dport = "135,445"},
                               {.proto = "udp", .dport = "137:139"},
                               {.proto = "udp", .dport = "1024:65535", .sport = "137"},
                               {.proto = "tcp", .dport = "135,139,445"}};
constexpr MacroEntry kSmbSwat[] = {{.proto = "tcp", .dport = "901"}};
constexpr MacroEntry kSmtp[] = {{.proto = "tcp", .dport = "25"}};
constexpr MacroEntry kSmtps[] = {{.proto = "tcp", .dport = "465"}};
constexpr MacroEntry kSnmp[] = {{.proto = "udp", .dport = "161:162"},
                                {.proto = "tcp", .dport = "161"}};
constexpr MacroEntry kSpamd[] = {{.proto = "tcp", .dport = "783"}};
constexpr MacroEntry kSpiceProxy[] = {{.proto = "tcp", .dport = "3128"}};
constexpr MacroEntry kSquid[] = {{.proto = "tcp", .dport = "3128"}};
constexpr MacroEntry kSsh[] = {{.proto = "tcp", .dport = "22"}};
constexpr MacroEntry kSubmission[] = {{.proto = "tcp", .dport = "587"}};
constexpr MacroEntry kSvn[] = {{.proto = "tcp", .dport = "3690"}};
constexpr MacroEntry kSyslog[] = {{.proto = "udp", .dport = "514"},
                                  {.proto = "tcp", .dport = "514"}};
constexpr MacroEntry kTelnet[] = {{.proto = "tcp", .dport = "23"}};
constexpr MacroEntry kTelnets[] = {{.proto = "tcp", .dport = "992"}};
constexpr MacroEntry kTftp[] = {{.proto = "udp", .dport = "69"}};
constexpr MacroEntry kTime[] = {{.proto = "tcp", .dport = "37"}};
constexpr MacroEntry kTrcrt[] = {{.proto = "udp", .dport = "33434:33524"},
                                 {.proto = "icmp", .icmp_type = "echo-request", .family = 4},
                                 {.proto = "ipv6-icmp", .icmp_type = "echo-request", .family = 6}};
constexpr MacroEntry kVnc[] = {{.proto = "tcp", .dport = "5900:5999"}};
constexpr MacroEntry kVncl[] = {{.proto = "tcp", .dport = "5500"}};
constexpr MacroEntry kWeb[] = {{.proto = "tcp", .dport = "80"}, {.proto = "tcp", .dport = "443"}};
constexpr MacroEntry kWebcache[] = {{.proto = "tcp", .dport = "8080"}};
constexpr MacroEntry kWebmin[] = {{.proto = "tcp", .dport = "10000"}};
constexpr MacroEntry kWhois[] = {{.proto = "tcp", .dport = "43"}};

// Kept sorted by ASCII-lowercased name (checked below) so find_macro can binary-search.
constexpr Macro kMacros[] = {
    {"Amanda", "Amanda Backup", kAmanda},
    {"Auth", "Auth (identd) traffic", kAuth},
    {"BGP", "Border Gateway Protocol traffic", kBgp},
    {"BitTorrent", "BitTorrent traffic for BitTorrent 3.1 and earlier", kBitTorrent},
    {"BitTorrent32", "BitTorrent traffic for BitTorrent 3.2 and later", kBitTorrent32},
    {"Ceph", "Ceph Storage Cluster traffic (Ceph Monitors, OSD & MDS Daemons)", kCeph},
    {"Citrix", "Citrix/ICA traffic (ICA, ICA Browser, CGP)", kCitrix},
    {"CVS", "Concurrent Versions System pserver traffic", kCvs},
    {"DAAP", "Digital Audio Access Protocol traffic (iTunes, Rythmbox daemons)", kDaap},
    {"DCC", "Distributed Checksum Clearinghouse spam filtering mechanism", kDcc},
    {"DHCPfwd", "Forwarded DHCP traffic", kDhcpFwd},
    {"DHCPv6", "DHCPv6 traffic", kDhcpV6},
    {"Distcc", "Distributed Compiler service", kDistcc},
    {"DNS", "Domain Name System traffic (udp and tcp)", kDns},
    {"Finger", "Finger protocol (RFC 742)", kFinger},
    {"FTP", "File Transfer Protocol", kFtp},
    {"Git", "Git distributed revision control traffic", kGit},
    {"GNUnet", "GNUnet secure peer-to-peer networking traffic", kGnunet},
    {"GRE", "Generic Routing Encapsulation tunneling protocol", kGre},
    {"HKP", "OpenPGP HTTP key server protocol traffic", kHkp},
    {"HTTP", "Hypertext Transfer Protocol (WWW)", kHttp},
    {"HTTP/3", "Hypertext Transfer Protocol v3", kHttp3},
    {"HTTPS", "Hypertext Transfer Protocol (WWW) over SSL", kHttps},
    {"ICPV2", "Internet Cache Protocol V2 (Squid) traffic", kIcpV2},
    {"ICQ", "AOL Instant Messenger traffic", kIcq},
    {"IMAP", "Internet Message Access Protocol", kImap},
    {"IMAPS", "Internet Message Access Protocol over SSL", kImaps},
    {"IPIP", "IPIP capsulation traffic", kIpip},
    {"IPsec", "IPsec traffic", kIpsec},
    {"IPsecah", "IPsec authentication (AH) traffic", kIpsecAh},
    {"IPsecnat", "IPsec traffic and Nat-Traversal", kIpsecNat},
    {"IRC", "Internet Relay Chat traffic", kIrc},
    {"Jetdirect", "HP Jetdirect printing", kJetdirect},
    {"L2TP", "Layer 2 Tunneling Protocol traffic", kL2tp},
    {"LDAP", "Lightweight Directory Access Protocol traffic", kLdap},
    {"LDAPS", "Secure Lightweight Directory Access Protocol traffic", kLdaps},
    {"Mail", "Mail traffic (SMTP, SMTPS, Submission)", kMail},
    {"MDNS", "Multicast DNS", kMdns},
    {"MSNP", "Microsoft Notification Protocol", kMsnp},
    {"MSSQL", "Microsoft SQL Server", kMssql},
    {"Munin", "Munin networked resource monitoring traffic", kMunin},
    {"MySQL", "MySQL server", kMysql},
    {"NeighborDiscovery", "IPv6 neighbor solicitation, neighbor and router advertisement",
     kNeighborDiscovery},
    {"NNTP", "NNTP traffic (Usenet).", kNntp},
    {"NNTPS", "Encrypted NNTP traffic (Usenet)", kNntps},
    {"NTP", "Network Time Protocol (ntpd)", kNtp},
    {"OpenVPN", "OpenVPN traffic", kOpenVpn},
    {"OSPF", "OSPF multicast traffic", kOspf},
    {"PBS", "Proxmox Backup Server", kPbs},
    {"PCA", "Symantec PCAnywere (tm)", kPca},
    {"Ping", "ICMP echo request", kPing},
    {"PMG", "Proxmox Mail Gateway web interface", kPmg},
    {"POP3", "POP3 traffic", kPop3},
    {"POP3S", "Encrypted POP3 traffic", kPop3s},
    {"PostgreSQL", "PostgreSQL server", kPostgreSql},
    {"PPtP", "Point-to-Point Tunneling Protocol", kPptp},
    {"Printer", "Line Printer protocol printing", kPrinter},
    {"Razor", "Razor Antispam System", kRazor},
    {"Rdate", "Remote time retrieval (rdate)", kRdate},
    {"RDP", "Microsoft Remote Desktop Protocol traffic", kRdp},
    {"RIP", "Routing Information Protocol (bidirectional)", kRip},
    {"RNDC", "BIND remote management protocol", kRndc},
    {"Rsync", "Rsync server", kRsync},
    {"SANE", "SANE network scanning", kSane},
    {"SixXS", "SixXS IPv6 Deployment and Tunnel Broker", kSixXs},
    {"SMB", "Microsoft SMB traffic", kSmb},
    {"SMBswat", "Samba Web Administration Tool", kSmbSwat},
    {"SMTP", "Simple Mail Transfer Protocol", kSmtp},
    {"SMTPS", "Encrypted Simple Mail Transfer Protocol", kSmtps},
    {"SNMP", "Simple Network Management Protocol", kSnmp},
    {"SPAMD", "Spam Assassin SPAMD traffic", kSpamd},
    {"SPICEproxy", "Proxmox VE SPICE display proxy traffic", kSpiceProxy},
    {"Squid", "Squid web proxy traffic", kSquid},
    {"SSH", "Secure shell traffic", kSsh},
    {"Submission", "Mail message submission traffic", kSubmission},
    {"SVN", "Subversion server (svnserve)", kSvn},
    {"Syslog", "Syslog protocol (RFC 5424) traffic", kSyslog},
    {"Telnet", "Telnet traffic", kTelnet},
    {"Telnets", "Telnet over SSL", kTelnets},
    {"TFTP", "Trivial File Transfer Protocol traffic", kTftp},
    {"Time", "RFC 868 Time protocol", kTime},
    {"Trcrt", "Traceroute (for up to 30 hops) traffic", kTrcrt},
    {"VNC", "VNC traffic for VNC display's 0 - 99", kVnc},
    {"VNCL", "VNC traffic from Vncservers to Vncviewers in listen mode", kVncl},
    {"Web", "WWW traffic (HTTP and HTTPS)", kWeb},
    {"Webcache", "Web Cache/Proxy traffic (port 8080)", kWebcache},
    {"Webmin", "Webmin traffic", kWebmin},
    {"Whois", "Whois (nicname, RFC 3912) traffic", kWhois},
};

constexpr bool table_is_valid() {
  for (std::size_t i = 0; i < std::size(kMacros); ++i) {
    if (kMacros[i].entries.empty() || kMacros[i].description.empty()) return false;
    if (i > 0 && compare_nocase(kMacros[i - 1].name, kMacros[i].name) >= 0) return false;
  }
  return true;
}

static_assert(std::size(kMacros) == 88, "pve-firewall + macros.json define 88 macros");
static_assert(table_is_valid(), "kMacros must be strictly sorted ignoring case, none empty");

}  // namespace

const Macro* find_macro(std::string_view name) {
  const auto* it = std::lower_bound(
      std::begin(kMacros), std::end(kMacros), name,
      [](const Macro& m, std::string_view key) { return compare_nocase(m.name, key) < 0; });
  if (it == std::end(kMacros) || compare_nocase(it->name, name) != 0) return nullptr;
  return it;
}

std::span<const Macro> all_macros() { return kMacros; }

}  // namespace moat::firewall
