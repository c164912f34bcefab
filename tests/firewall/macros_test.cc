#include "moat/firewall/macros.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

namespace moat::firewall {
namespace {

// Renders an expansion compactly so one EXPECT_EQ shows the whole macro on failure:
// "proto dport sport icmp_type family" per entry, empty fields as "-".
std::vector<std::string> expansion(std::string_view name) {
  const Macro* m = find_macro(name);
  if (m == nullptr) return {"<missing>"};
  std::vector<std::string> out;
  auto field = [](std::string_view s) { return s.empty() ? std::string("-") : std::string(s); };
  for (const MacroEntry& e : m->entries) {
    out.push_back(field(e.proto) + " " + field(e.dport) + " " + field(e.sport) + " " +
                  field(e.icmp_type) + " " + std::to_string(e.family));
  }
  return out;
}

using Lines = std::vector<std::string>;

TEST(MacrosTest, TableHasExactly88Macros) { EXPECT_EQ(all_macros().size(), 88u); }

TEST(MacrosTest, TableIsSortedIgnoringCaseAndEveryMacroIsFindable) {
  const auto macros = all_macros();
  for (std::size_t i = 0; i < macros.size(); ++i) {
    const Macro& m = macros[i];
    EXPECT_FALSE(m.entries.empty()) << m.name;
    EXPECT_FALSE(m.description.empty()) << m.name;
    EXPECT_EQ(find_macro(m.name), &m) << m.name;
    if (i > 0) {
      std::string prev(macros[i - 1].name), cur(m.name);
      for (auto& c : prev) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (auto& c : cur) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      EXPECT_LT(prev, cur);
    }
  }
}

TEST(MacrosTest, EveryEntryFixesAProtocolAndAValidFamily) {
  for (const Macro& m : all_macros()) {
    for (const MacroEntry& e : m.entries) {
      EXPECT_FALSE(e.proto.empty()) << m.name;
      EXPECT_TRUE(e.family == 0 || e.family == 4 || e.family == 6) << m.name;
      // icmp types belong to icmp entries only, pinned to the matching family.
      if (!e.icmp_type.empty()) {
        EXPECT_TRUE((e.proto == "icmp" && e.family == 4) ||
                    (e.proto == "ipv6-icmp" && e.family == 6))
            << m.name;
        EXPECT_TRUE(e.dport.empty() && e.sport.empty()) << m.name;
      }
    }
  }
}

TEST(MacrosTest, LookupIgnoresCaseAndReturnsCanonicalName) {
  ASSERT_NE(find_macro("ssh"), nullptr);
  EXPECT_EQ(find_macro("ssh")->name, "SSH");
  EXPECT_EQ(find_macro("ssH"), find_macro("SSH"));
  ASSERT_NE(find_macro("spiceproxy"), nullptr);
  EXPECT_EQ(find_macro("spiceproxy")->name, "SPICEproxy");
  ASSERT_NE(find_macro("http/3"), nullptr);
  EXPECT_EQ(find_macro("http/3")->name, "HTTP/3");
}

TEST(MacrosTest, UnknownNamesAreNotFound) {
  EXPECT_EQ(find_macro(""), nullptr);
  EXPECT_EQ(find_macro("SSH2"), nullptr);
  EXPECT_EQ(find_macro("SS"), nullptr);
  EXPECT_EQ(find_macro("HTTP/"), nullptr);
  EXPECT_EQ(find_macro("Zzz"), nullptr);
  EXPECT_EQ(find_macro("AAA"), nullptr);
}

TEST(MacrosTest, SshIsTcp22) { EXPECT_EQ(expansion("SSH"), (Lines{"tcp 22 - - 0"})); }

TEST(MacrosTest, DnsIsUdpAndTcp53) {
  EXPECT_EQ(expansion("DNS"), (Lines{"udp 53 - - 0", "tcp 53 - - 0"}));
}

TEST(MacrosTest, CephHasMonitorV1V2AndDaemonRange) {
  EXPECT_EQ(expansion("Ceph"), (Lines{"tcp 6789 - - 0", "tcp 3300 - - 0", "tcp 6800:7300 - - 0"}));
}

TEST(MacrosTest, IpsecIsIkeBothWaysPlusEsp) {
  EXPECT_EQ(expansion("IPsec"), (Lines{"udp 500 500 - 0", "50 - - - 0"}));
  EXPECT_EQ(expansion("IPsecah"), (Lines{"udp 500 500 - 0", "51 - - - 0"}));
  EXPECT_EQ(expansion("IPsecnat"), (Lines{"udp 500 - - 0", "udp 4500 - - 0", "50 - - - 0"}));
}

TEST(MacrosTest, SmbHasFourEntries) {
  EXPECT_EQ(expansion("SMB"), (Lines{"udp 135,445 - - 0", "udp 137:139 - - 0",
                                     "udp 1024:65535 137 - 0", "tcp 135,139,445 - - 0"}));
}

TEST(MacrosTest, MailIsSmtpSmtpsAndSubmission) {
  EXPECT_EQ(expansion("Mail"), (Lines{"tcp 25 - - 0", "tcp 465 - - 0", "tcp 587 - - 0"}));
}

TEST(MacrosTest, Http3IsUdp443) { EXPECT_EQ(expansion("HTTP/3"), (Lines{"udp 443 - - 0"})); }

TEST(MacrosTest, PbsIsTcp8007AndPmgTcp8006) {
  EXPECT_EQ(expansion("PBS"), (Lines{"tcp 8007 - - 0"}));
  EXPECT_EQ(expansion("PMG"), (Lines{"tcp 8006 - - 0"}));
}

TEST(MacrosTest, PingCoversBothFamilies) {
  EXPECT_EQ(expansion("Ping"), (Lines{"icmp - - echo-request 4", "ipv6-icmp - - echo-request 6"}));
}

TEST(MacrosTest, TrcrtIsUdpRangePlusPingInBothFamilies) {
  EXPECT_EQ(expansion("Trcrt"), (Lines{"udp 33434:33524 - - 0", "icmp - - echo-request 4",
                                       "ipv6-icmp - - echo-request 6"}));
}

TEST(MacrosTest, DhcpFwdFixesSourceAndDestinationPorts) {
  EXPECT_EQ(expansion("DHCPfwd"), (Lines{"udp 67:68 67:68 - 0"}));
}

TEST(MacrosTest, Dhcpv6IsIpv6Only) {
  EXPECT_EQ(expansion("DHCPv6"), (Lines{"udp 546:547 546:547 - 6"}));
}

TEST(MacrosTest, NeighborDiscoveryIsIpv6IcmpOnly) {
  EXPECT_EQ(expansion("NeighborDiscovery"),
            (Lines{"ipv6-icmp - - router-solicitation 6", "ipv6-icmp - - router-advertisement 6",
                   "ipv6-icmp - - neighbor-solicitation 6",
                   "ipv6-icmp - - neighbor-advertisement 6", "ipv6-icmp - - redirect 6"}));
}

TEST(MacrosTest, BareProtocolMacrosUseNumbers) {
  EXPECT_EQ(expansion("GRE"), (Lines{"47 - - - 0"}));
  EXPECT_EQ(expansion("IPIP"), (Lines{"94 - - - 0"}));
  EXPECT_EQ(expansion("OSPF"), (Lines{"89 - - - 0"}));
  EXPECT_EQ(expansion("PPtP"), (Lines{"47 - - - 0", "tcp 1723 - - 0"}));
}

TEST(MacrosTest, ProxmoxPortsAndWeb) {
  EXPECT_EQ(expansion("SPICEproxy"), (Lines{"tcp 3128 - - 0"}));
  EXPECT_EQ(expansion("VNC"), (Lines{"tcp 5900:5999 - - 0"}));
  EXPECT_EQ(expansion("Web"), (Lines{"tcp 80 - - 0", "tcp 443 - - 0"}));
}

}  // namespace
}  // namespace moat::firewall
