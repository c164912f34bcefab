#include "moat/firewall/protocols.h"

#include <algorithm>

#include <array>
#include <cstddef>
#include "moat/base/strings.h"

namespace moat::firewall {
namespace {

// Tables searched with lookup() hold lower-case keys in strictly ascending order.
template <class Row, std::size_t N>
constexpr bool strictly_sorted(const Row (&rows)[N]) {
  for (std::size_t i = 1; i < N; ++i) {
    if (compare_nocase(rows[i - 1].name, rows[i].name) >= 0) return false;
    for (char c : rows[i].name) {
      if (c != ascii_lower(c)) return false;
    }
  }
  return true;
}

template <class Row, std::size_t N>
const Row* lookup(const Row (&rows)[N], std::string_view name) {
  const Row* it = std::lower_bound(
      std::begin(rows), std::end(rows), name,
      [](const Row& r, std::string_view key) { return compare_nocase(r.name, key) < 0; });
  if (it == std::end(rows) || compare_nocase(it->name, name) != 0) return nullptr;
  return it;
}

// Whole decimal number no larger than `max`; no sign, no hex, no whitespace.
std::optional<unsigned> parse_decimal(std::string_view s, unsigned max) {
  if (s.empty()) return std::nullopt;
  unsigned value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > max) return std::nullopt;
  }
  return value;
}

// ---- IP protocols -------------------------------------------------------------------------------

struct ProtocolRow {
  std::string_view name;
  uint8_t number;
};

// Canonical names: the first column of Debian's /etc/protocols, in file order. When two lines
// share a number ("ip" and "hopopt" are both 0) the first one is canonical. mptcp (262) is not
// an IP protocol number and is left out.
constexpr ProtocolRow kCanonicalProtocols[] = {
    {"ip", 0},        {"hopopt", 0},       {"icmp", 1},        {"igmp", 2},
    {"ggp", 3},       {"ipencap", 4},      {"st", 5},          {"tcp", 6},
    {"egp", 8},       {"igp", 9},          {"pup", 12},        {"udp", 17},
    {"hmp", 20},      {"xns-idp", 22},     {"rdp", 27},        {"iso-tp4", 29},
    {"dccp", 33},     {"xtp", 36},         {"ddp", 37},        {"idpr-cmtp", 38},
    {"ipv6", 41},     {"ipv6-route", 43},  {"ipv6-frag", 44},  {"idrp", 45},
    {"rsvp", 46},     {"gre", 47},         {"esp", 50},        {"ah", 51},
    {"skip", 57},     {"ipv6-icmp", 58},   {"ipv6-nonxt", 59}, {"ipv6-opts", 60},
    {"rspf", 73},     {"vmtp", 81},        {"eigrp", 88},      {"ospf", 89},
    {"ax.25", 93},    {"ipip", 94},        {"etherip", 97},    {"encap", 98},
    {"pim", 103},     {"ipcomp", 108},     {"vrrp", 112},      {"l2tp", 115},
    {"isis", 124},    {"sctp", 132},       {"fc", 133},        {"mobility-header", 135},
    {"udplite", 136}, {"mpls-in-ip", 137}, {"manet", 138},     {"hip", 139},
    {"shim6", 140},   {"wesp", 141},       {"rohc", 142},      {"ethernet", 143},
};

// Every accepted name, lower-cased and sorted: the canonical names above, the aliases from
// /etc/protocols that differ from them other than in case, and "icmpv6", which pve-firewall
// accepts for 58.
constexpr ProtocolRow kProtocolNames[] = {
    {"ah", 51},
    {"ax.25", 93},
    {"cphb", 73},
    {"dccp", 33},
    {"ddp", 37},
    {"egp", 8},
    {"eigrp", 88},
    {"encap", 98},
    {"esp", 50},
    {"etherip", 97},
    {"ethernet", 143},
    {"fc", 133},
    {"ggp", 3},
    {"gre", 47},
    {"hip", 139},
    {"hmp", 20},
    {"hopopt", 0},
    {"icmp", 1},
    {"icmpv6", 58},
    {"idpr-cmtp", 38},
    {"idrp", 45},
    {"igmp", 2},
    {"igp", 9},
    {"ip", 0},
    {"ip-encap", 4},
    {"ipcomp", 108},
    {"ipencap", 4},
    {"ipip", 94},
    {"ipsec-ah", 51},
    {"ipsec-esp", 50},
    {"ipv6", 41},
    {"ipv6-frag", 44},
    {"ipv6-icmp", 58},
    {"ipv6-nonxt", 59},
    {"ipv6-opts", 60},
    {"ipv6-route", 43},
    {"isis", 124},
    {"iso-tp4", 29},
    {"l2tp", 115},
    {"manet", 138},
    {"mobility-header", 135},
    {"mpls-in-ip", 137},
    {"ospf", 89},
    {"ospfigp", 89},
    {"pim", 103},
    {"pup", 12},
    {"rdp", 27},
    {"rohc", 142},
    {"rspf", 73},
    {"rsvp", 46},
    {"sctp", 132},
    {"shim6", 140},
    {"skip", 57},
    {"st", 5},
    {"tcp", 6},
    {"udp", 17},
    {"udplite", 136},
    {"vmtp", 81},
    {"vrrp", 112},
    {"wesp", 141},
    {"xns-idp", 22},
    {"xtp", 36},
};
static_assert(strictly_sorted(kProtocolNames));

constexpr bool every_canonical_name_is_accepted() {
  for (const ProtocolRow& c : kCanonicalProtocols) {
    bool found = false;
    for (const ProtocolRow& n : kProtocolNames)
      found = found || (n.name == c.name && n.number == c.number);
    if (!found) return false;
  }
  return true;
}
static_assert(every_canonical_name_is_accepted());

constexpr std::array<std::string_view, 256> make_protocol_names() {
  std::array<std::string_view, 256> names{};
  for (const ProtocolRow& row : kCanonicalProtocols) {
    if (names[row.number].empty()) names[row.number] = row.name;
  }
  return names;
}
constexpr std::array<std::string_view, 256> kProtocolByNumber = make_protocol_names();

// ---- Services -----------------------------------------------------------------------------------

struct ServiceRow {
  std::string_view name;
  uint16_t port;
};

// Debian 12 netbase /etc/services: every name and alias of a tcp or udp line, lower-cased,
// sorted. Where a name appears twice the first line wins, as with getservbyname(): "dicom" is an
// alias of acr-nema (104) before its own line (11112).
constexpr ServiceRow kServices[] = {
    {"acr-nema", 104},
    {"afpovertcp", 548},
    {"afs3-bos", 7007},
    {"afs3-callback", 7001},
    {"afs3-fileserver", 7000},
    {"afs3-kaserver", 7004},
    {"afs3-prserver", 7002},
    {"afs3-rmtsys", 7009},
    {"afs3-update", 7008},
    {"afs3-vlserver", 7003},
    {"afs3-volser", 7005},
    {"amanda", 10080},
    {"amandaidx", 10082},
    {"amidxtape", 10083},
    {"amqp", 5672},
    {"amqps", 5671},
    {"asf-rmcp", 623},
    {"asp", 27374},
    {"auth", 113},
    {"authentication", 113},
    {"babel", 6696},
    {"bacula-dir", 9101},
    {"bacula-fd", 9102},
    {"bacula-sd", 9103},
    {"bbs", 7000},
    {"bgp", 179},
    {"bgpd", 2605},
    {"biff", 512},
    {"binkp", 24554},
    {"bootpc", 68},
    {"bootps", 67},
    {"canna", 5680},
    {"cfengine", 5308},
    {"chargen", 19},
    {"cisco-sccp", 2000},
    {"clc-build-daemon", 8990},
    {"clearcase", 371},
    {"cmd", 514},
    {"cmip-agent", 164},
    {"cmip-man", 163},
    {"codaauth2", 370},
    {"codasrv", 2432},
    {"codasrv-se", 2433},
    {"comsat", 512},
    {"csync2", 30865},
    {"cvspserver", 2401},
    {"daap", 3689},
    {"datametrics", 1645},
    {"daytime", 13},
    {"db-lsp", 17500},
    {"dcap", 22125},
    {"dhcpv6-client", 546},
    {"dhcpv6-server", 547},
    {"dicom", 104},
    {"dict", 2628},
    {"dircproxy", 57000},
    {"discard", 9},
    {"distcc", 3632},
    {"domain", 53},
    {"domain-s", 853},
    {"echo", 7},
    {"epmap", 135},
    {"epmd", 4369},
    {"exec", 512},
    {"f5-globalsite", 2792},
    {"f5-iquery", 4353},
    {"fax", 4557},
    {"fido", 60179},
    {"finger", 79},
    {"font-service", 7100},
    {"freeciv", 5556},
    {"fsp", 21},
    {"fspd", 21},
    {"ftp", 21},
    {"ftp-data", 20},
    {"ftps", 990},
    {"ftps-data", 989},
    {"gdomap", 538},
    {"gds-db", 3050},
    {"gds_db", 3050},
    {"git", 9418},
    {"gnunet", 2086},
    {"gnutella-rtr", 6347},
    {"gnutella-svc", 6346},
    {"gopher", 70},
    {"gpsd", 2947},
    {"gris", 2135},
    {"groupwise", 1677},
    {"gsidcap", 22128},
    {"gsiftp", 2811},
    {"gsigatekeeper", 2119},
    {"hkp", 11371},
    {"hprop", 754},
    {"http", 80},
    {"http-alt", 8080},
    {"https", 443},
    {"hylafax", 4559},
    {"iax", 4569},
    {"icp", 3130},
    {"icpv2", 3130},
    {"ident", 113},
    {"imap", 143},
    {"imap2", 143},
    {"imaps", 993},
    {"ingreslock", 1524},
    {"ipp", 631},
    {"iprop", 2121},
    {"ipsec-nat-t", 4500},
    {"ipx", 213},
    {"ircd", 6667},
    {"ircs-u", 6697},
    {"isakmp", 500},
    {"iscsi-target", 3260},
    {"isisd", 2608},
    {"isns", 3205},
    {"iso-tsap", 102},
    {"jabber-client", 5222},
    {"jabber-server", 5269},
    {"kamanda", 10081},
    {"kdc", 750},
    {"kerberos", 88},
    {"kerberos-adm", 749},
    {"kerberos-iv", 750},
    {"kerberos-master", 751},
    {"kerberos-sec", 88},
    {"kerberos4", 750},
    {"kerberos5", 88},
    {"kerberos_master", 751},
    {"kermit", 1649},
    {"klogin", 543},
    {"kpasswd", 464},
    {"krb-prop", 754},
    {"krb5", 88},
    {"krb5_prop", 754},
    {"krb_prop", 754},
    {"krcmd", 544},
    {"kshell", 544},
    {"l2f", 1701},
    {"l2tp", 1701},
    {"ldap", 389},
    {"ldaps", 636},
    {"ldp", 646},
    {"loc-srv", 135},
    {"login", 513},
    {"lotusnote", 1352},
    {"lotusnotes", 1352},
    {"lrrd", 4949},
    {"mail", 25},
    {"mailq", 174},
    {"mdns", 5353},
    {"microsoft-ds", 445},
    {"moira-db", 775},
    {"moira-update", 777},
    {"moira-ureg", 779},
    {"moira_db", 775},
    {"moira_update", 777},
    {"moira_ureg", 779},
    {"mon", 2583},
    {"ms-sql-m", 1434},
    {"ms-sql-s", 1433},
    {"ms-wbt-server", 3389},
    {"mtn", 4691},
    {"munin", 4949},
    {"mysql", 3306},
    {"mysql-proxy", 6446},
    {"nbd", 10809},
    {"netbios-dgm", 138},
    {"netbios-ns", 137},
    {"netbios-ssn", 139},
    {"netstat", 15},
    {"nfs", 2049},
    {"nicname", 43},
    {"nntp", 119},
    {"nntps", 563},
    {"nqs", 607},
    {"nrpe", 5666},
    {"nsca", 5667},
    {"ntalk", 518},
    {"ntp", 123},
    {"ntske", 4460},
    {"null", 9},
    {"nut", 3493},
    {"old-radacct", 1646},
    {"old-radius", 1645},
    {"omniorb", 8088},
    {"openvpn", 1194},
    {"ospf6d", 2606},
    {"ospfapi", 2607},
    {"ospfd", 2604},
    {"passwd-server", 752},
    {"passwd_server", 752},
    {"pawserv", 345},
    {"pop-3", 110},
    {"pop3", 110},
    {"pop3s", 995},
    {"poppassd", 106},
    {"portmapper", 111},
    {"postgres", 5432},
    {"postgresql", 5432},
    {"predict", 1210},
    {"printer", 515},
    {"proofd", 1093},
    {"ptp-event", 319},
    {"ptp-general", 320},
    {"puppet", 8140},
    {"qmqp", 628},
    {"qmtp", 209},
    {"qotd", 17},
    {"quote", 17},
    {"radacct", 1813},
    {"radius", 1812},
    {"radius-acct", 1813},
    {"radmin-port", 4899},
    {"readnews", 119},
    {"redis", 6379},
    {"remctl", 4373},
    {"ripd", 2602},
    {"ripngd", 2603},
    {"rmiregistry", 1099},
    {"rmtcfg", 1236},
    {"rootd", 1094},
    {"route", 520},
    {"routed", 520},
    {"router", 520},
    {"rpc2portmap", 369},
    {"rplay", 5555},
    {"rptp", 5556},
    {"rsync", 873},
    {"rtcm-sc104", 2101},
    {"rtsp", 554},
    {"sa-msg-port", 1646},
    {"saft", 487},
    {"sane", 6566},
    {"sane-port", 6566},
    {"saned", 6566},
    {"sge-execd", 6445},
    {"sge-qmaster", 6444},
    {"sge_execd", 6445},
    {"sge_qmaster", 6444},
    {"sgi-cad", 17004},
    {"sgi-cmsd", 17001},
    {"sgi-crsd", 17002},
    {"sgi-gcd", 17003},
    {"shell", 514},
    {"sieve", 4190},
    {"silc", 706},
    {"sink", 9},
    {"sip", 5060},
    {"sip-tls", 5061},
    {"skkserv", 1178},
    {"smtp", 25},
    {"smtps", 465},
    {"smux", 199},
    {"snmp", 161},
    {"snmp-trap", 162},
    {"snmptrap", 162},
    {"snntp", 563},
    {"snpp", 444},
    {"socks", 1080},
    {"source", 19},
    {"spamd", 783},
    {"spooler", 515},
    {"ssh", 22},
    {"ssmtp", 465},
    {"submission", 587},
    {"submissions", 465},
    {"subversion", 3690},
    {"sunrpc", 111},
    {"supfiledbg", 1127},
    {"supfilesrv", 871},
    {"suucp", 4031},
    {"svn", 3690},
    {"svrloc", 427},
    {"syslog", 514},
    {"syslog-tls", 6514},
    {"sysrqd", 4094},
    {"systat", 11},
    {"tacacs", 49},
    {"talk", 517},
    {"tap", 113},
    {"tcpmux", 1},
    {"telnet", 23},
    {"telnets", 992},
    {"tfido", 60177},
    {"tftp", 69},
    {"time", 37},
    {"timserver", 37},
    {"tinc", 655},
    {"tproxy", 8081},
    {"tsap", 102},
    {"ttytst", 19},
    {"untp", 119},
    {"urd", 465},
    {"users", 11},
    {"uucp", 540},
    {"uucpd", 540},
    {"venus", 2430},
    {"venus-se", 2431},
    {"wais", 210},
    {"webcache", 8080},
    {"webmin", 10000},
    {"who", 513},
    {"whod", 513},
    {"whois", 43},
    {"wnn6", 22273},
    {"www", 80},
    {"x11", 6000},
    {"x11-0", 6000},
    {"x11-1", 6001},
    {"x11-2", 6002},
    {"x11-3", 6003},
    {"x11-4", 6004},
    {"x11-5", 6005},
    {"x11-6", 6006},
    {"x11-7", 6007},
    {"xdmcp", 177},
    {"xfs", 7100},
    {"xinetd", 9098},
    {"xmms2", 9667},
    {"xmpp-client", 5222},
    {"xmpp-server", 5269},
    {"xtel", 1313},
    {"xtelw", 1314},
    {"z3950", 210},
    {"zabbix-agent", 10050},
    {"zabbix-trapper", 10051},
    {"zebra", 2601},
    {"zebrasrv", 2600},
    {"zephyr-clt", 2103},
    {"zephyr-hm", 2104},
    {"zephyr-srv", 2102},
    {"zope", 9673},
    {"zope-ftp", 8021},
    {"zserv", 346},
};
static_assert(strictly_sorted(kServices));

// ---- ICMP ---------------------------------------------------------------------------------------

struct IcmpRow {
  std::string_view name;
  uint8_t type;
  std::optional<uint8_t> code;
};

// iptables (libxt_icmp) names, without its "any" and the "ping"/"pong"/"ttl-exceeded" aliases,
// which pve-firewall does not accept either.
constexpr IcmpRow kIcmpTypes[] = {
    {"echo-reply", 0, std::nullopt},
    {"destination-unreachable", 3, std::nullopt},
    {"network-unreachable", 3, 0},
    {"host-unreachable", 3, 1},
    {"protocol-unreachable", 3, 2},
    {"port-unreachable", 3, 3},
    {"fragmentation-needed", 3, 4},
    {"source-route-failed", 3, 5},
    {"network-unknown", 3, 6},
    {"host-unknown", 3, 7},
    {"network-prohibited", 3, 9},
    {"host-prohibited", 3, 10},
    {"TOS-network-unreachable", 3, 11},
    {"TOS-host-unreachable", 3, 12},
    {"communication-prohibited", 3, 13},
    {"host-precedence-violation", 3, 14},
    {"precedence-cutoff", 3, 15},
    {"source-quench", 4, std::nullopt},
    {"redirect", 5, std::nullopt},
    {"network-redirect", 5, 0},
    {"host-redirect", 5, 1},
    {"TOS-network-redirect", 5, 2},
    {"TOS-host-redirect", 5, 3},
    {"echo-request", 8, std::nullopt},
    {"router-advertisement", 9, std::nullopt},
    {"router-solicitation", 10, std::nullopt},
    {"time-exceeded", 11, std::nullopt},
    {"ttl-zero-during-transit", 11, 0},
    {"ttl-zero-during-reassembly", 11, 1},
    {"parameter-problem", 12, std::nullopt},
    {"ip-header-bad", 12, 0},
    {"required-option-missing", 12, 1},
    {"timestamp-request", 13, std::nullopt},
    {"timestamp-reply", 14, std::nullopt},
    {"address-mask-request", 17, std::nullopt},
    {"address-mask-reply", 18, std::nullopt},
};

// ip6tables (libip6t_icmp6) names plus the American "neighbor-" spellings pve-firewall uses in
// its NeighborDiscovery macro and mld2-listener-report, which nftables knows.
constexpr IcmpRow kIcmpv6Types[] = {
    {"destination-unreachable", 1, std::nullopt},
    {"no-route", 1, 0},
    {"communication-prohibited", 1, 1},
    {"beyond-scope", 1, 2},
    {"address-unreachable", 1, 3},
    {"port-unreachable", 1, 4},
    {"failed-policy", 1, 5},
    {"reject-route", 1, 6},
    {"packet-too-big", 2, std::nullopt},
    {"time-exceeded", 3, std::nullopt},
    {"ttl-zero-during-transit", 3, 0},
    {"ttl-zero-during-reassembly", 3, 1},
    {"parameter-problem", 4, std::nullopt},
    {"bad-header", 4, 0},
    {"unknown-header-type", 4, 1},
    {"unknown-option", 4, 2},
    {"echo-request", 128, std::nullopt},
    {"echo-reply", 129, std::nullopt},
    {"mld-listener-query", 130, std::nullopt},
    {"mld-listener-report", 131, std::nullopt},
    {"mld-listener-done", 132, std::nullopt},
    {"mld-listener-reduction", 132, std::nullopt},
    {"router-solicitation", 133, std::nullopt},
    {"router-advertisement", 134, std::nullopt},
    {"neighbour-solicitation", 135, std::nullopt},
    {"neighbor-solicitation", 135, std::nullopt},
    {"neighbour-advertisement", 136, std::nullopt},
    {"neighbor-advertisement", 136, std::nullopt},
    {"redirect", 137, std::nullopt},
    {"mld2-listener-report", 143, std::nullopt},
};

// "8" or "3/1".
std::optional<IcmpType> parse_numeric_icmp(std::string_view s) {
  const std::size_t slash = s.find('/');
  const auto type = parse_decimal(s.substr(0, slash), 255);
  if (!type) return std::nullopt;
  IcmpType result{.type = static_cast<uint8_t>(*type)};
  if (slash != std::string_view::npos) {
    const auto code = parse_decimal(s.substr(slash + 1), 255);
    if (!code) return std::nullopt;
    result.code = static_cast<uint8_t>(*code);
  }
  return result;
}

template <std::size_t N>
std::optional<IcmpType> find_icmp(const IcmpRow (&rows)[N], std::string_view name) {
  for (const IcmpRow& row : rows) {
    if (compare_nocase(row.name, name) == 0) return IcmpType{.type = row.type, .code = row.code};
  }
  return parse_numeric_icmp(name);
}

}  // namespace

std::optional<uint8_t> protocol_number(std::string_view name_or_number) {
  if (const auto n = parse_decimal(name_or_number, 255)) return static_cast<uint8_t>(*n);
  if (const ProtocolRow* row = lookup(kProtocolNames, name_or_number)) return row->number;
  return std::nullopt;
}

std::string_view protocol_name(uint8_t number) { return kProtocolByNumber[number]; }

bool protocol_has_ports(uint8_t number) {
  switch (number) {
    case 6:    // tcp
    case 17:   // udp
    case 33:   // dccp
    case 132:  // sctp
    case 136:  // udplite
      return true;
    default:
      return false;
  }
}

std::optional<uint16_t> service_port(std::string_view name) {
  if (const ServiceRow* row = lookup(kServices, name)) return row->port;
  return std::nullopt;
}

std::optional<IcmpType> icmp_type(std::string_view name) { return find_icmp(kIcmpTypes, name); }

std::optional<IcmpType> icmpv6_type(std::string_view name) { return find_icmp(kIcmpv6Types, name); }

}  // namespace moat::firewall
