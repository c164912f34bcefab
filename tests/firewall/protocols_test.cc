#include "moat/firewall/protocols.h"

#include <gtest/gtest.h>

namespace moat::firewall {
namespace {

TEST(ProtocolsTest, ResolvesCommonNames) {
  EXPECT_EQ(protocol_number("tcp"), 6);
  EXPECT_EQ(protocol_number("udp"), 17);
  EXPECT_EQ(protocol_number("icmp"), 1);
  EXPECT_EQ(protocol_number("icmpv6"), 58);
  EXPECT_EQ(protocol_number("ipv6-icmp"), 58);
  EXPECT_EQ(protocol_number("esp"), 50);
  EXPECT_EQ(protocol_number("ah"), 51);
  EXPECT_EQ(protocol_number("gre"), 47);
  EXPECT_EQ(protocol_number("sctp"), 132);
  EXPECT_EQ(protocol_number("dccp"), 33);
  EXPECT_EQ(protocol_number("udplite"), 136);
  EXPECT_EQ(protocol_number("igmp"), 2);
  EXPECT_EQ(protocol_number("vrrp"), 112);
  EXPECT_EQ(protocol_number("l2tp"), 115);
  EXPECT_EQ(protocol_number("pim"), 103);
}

TEST(ProtocolsTest, ResolvesEtcProtocolsAliases) {
  EXPECT_EQ(protocol_number("ospf"), 89);
  EXPECT_EQ(protocol_number("ospfigp"), 89);
  EXPECT_EQ(protocol_number("ipencap"), 4);
  EXPECT_EQ(protocol_number("ip-encap"), 4);
  // /etc/protocols: "ipip 94" is IP-within-IP; protocol 4 is "ipencap".
  EXPECT_EQ(protocol_number("ipip"), 94);
  EXPECT_EQ(protocol_number("ipsec-esp"), 50);
  EXPECT_EQ(protocol_number("cphb"), 73);
  EXPECT_EQ(protocol_number("ax.25"), 93);
}

TEST(ProtocolsTest, NamesIgnoreCase) {
  EXPECT_EQ(protocol_number("TCP"), 6);
  EXPECT_EQ(protocol_number("IPv6-ICMP"), 58);
  EXPECT_EQ(protocol_number("OSPFIGP"), 89);
}

TEST(ProtocolsTest, AcceptsAnyDecimalUpTo255) {
  EXPECT_EQ(protocol_number("0"), 0);
  EXPECT_EQ(protocol_number("6"), 6);
  EXPECT_EQ(protocol_number("7"), 7);  // unassigned in /etc/protocols, still a valid number
  EXPECT_EQ(protocol_number("255"), 255);
  EXPECT_EQ(protocol_number("256"), std::nullopt);
  EXPECT_EQ(protocol_number("300"), std::nullopt);
  EXPECT_EQ(protocol_number("99999999999999999999"), std::nullopt);
  EXPECT_EQ(protocol_number("-1"), std::nullopt);
  EXPECT_EQ(protocol_number("0x6"), std::nullopt);
  EXPECT_EQ(protocol_number(" 6"), std::nullopt);
}

TEST(ProtocolsTest, RejectsUnknownNames) {
  EXPECT_EQ(protocol_number(""), std::nullopt);
  EXPECT_EQ(protocol_number("tcpx"), std::nullopt);
  EXPECT_EQ(protocol_number("tc"), std::nullopt);
  EXPECT_EQ(protocol_number("mptcp"), std::nullopt);  // 262 in /etc/protocols: not a u8
  EXPECT_EQ(protocol_number("zzz"), std::nullopt);
}

TEST(ProtocolsTest, CanonicalNames) {
  EXPECT_EQ(protocol_name(6), "tcp");
  EXPECT_EQ(protocol_name(17), "udp");
  EXPECT_EQ(protocol_name(58), "ipv6-icmp");
  EXPECT_EQ(protocol_name(89), "ospf");
  EXPECT_EQ(protocol_name(4), "ipencap");
  EXPECT_EQ(protocol_name(94), "ipip");
  EXPECT_EQ(protocol_name(0), "ip");  // first line wins over "hopopt"
  EXPECT_EQ(protocol_name(7), "");
  EXPECT_EQ(protocol_name(255), "");
}

TEST(ProtocolsTest, NameAndNumberRoundTrip) {
  for (int n = 0; n < 256; ++n) {
    const auto name = protocol_name(static_cast<uint8_t>(n));
    if (name.empty()) continue;
    EXPECT_EQ(protocol_number(name), n) << name;
  }
}

TEST(ProtocolsTest, OnlyPortCarryingProtocolsHavePorts) {
  for (int n = 0; n < 256; ++n) {
    const bool expected = n == 6 || n == 17 || n == 33 || n == 132 || n == 136;
    EXPECT_EQ(protocol_has_ports(static_cast<uint8_t>(n)), expected) << n;
  }
}

TEST(ServicesTest, ResolvesCommonNames) {
  EXPECT_EQ(service_port("ssh"), 22);
  EXPECT_EQ(service_port("http"), 80);
  EXPECT_EQ(service_port("www"), 80);  // alias
  EXPECT_EQ(service_port("https"), 443);
  EXPECT_EQ(service_port("domain"), 53);
  EXPECT_EQ(service_port("smtp"), 25);
  EXPECT_EQ(service_port("submission"), 587);
  EXPECT_EQ(service_port("submissions"), 465);
  EXPECT_EQ(service_port("smtps"), 465);  // alias of submissions
  EXPECT_EQ(service_port("imaps"), 993);
  EXPECT_EQ(service_port("ntp"), 123);
  EXPECT_EQ(service_port("snmp"), 161);
  EXPECT_EQ(service_port("ldap"), 389);
  EXPECT_EQ(service_port("mysql"), 3306);
  EXPECT_EQ(service_port("postgresql"), 5432);
  EXPECT_EQ(service_port("postgres"), 5432);
  EXPECT_EQ(service_port("ms-wbt-server"), 3389);
  EXPECT_EQ(service_port("syslog"), 514);  // udp-only entry
  EXPECT_EQ(service_port("tcpmux"), 1);
}

TEST(ServicesTest, NamesIgnoreCase) {
  EXPECT_EQ(service_port("SSH"), 22);
  EXPECT_EQ(service_port("Clearcase"), 371);
}

TEST(ServicesTest, FirstLineWinsForDuplicateNames) {
  // "dicom" is an alias of acr-nema (104) before its own 11112 line, as getservbyname() sees it.
  EXPECT_EQ(service_port("dicom"), 104);
}

TEST(ServicesTest, RejectsNumbersAndUnknownNames) {
  EXPECT_EQ(service_port("22"), std::nullopt);
  EXPECT_EQ(service_port(""), std::nullopt);
  EXPECT_EQ(service_port("sshh"), std::nullopt);
  EXPECT_EQ(service_port("nbp"), std::nullopt);  // AppleTalk ddp-only entry
  EXPECT_EQ(service_port("echo"), 7);            // tcp/udp 7, not its ddp 4
}

TEST(IcmpTest, ResolvesIptablesNames) {
  EXPECT_EQ(icmp_type("echo-request"), (IcmpType{8, std::nullopt}));
  EXPECT_EQ(icmp_type("echo-reply"), (IcmpType{0, std::nullopt}));
  EXPECT_EQ(icmp_type("destination-unreachable"), (IcmpType{3, std::nullopt}));
  EXPECT_EQ(icmp_type("network-unreachable"), (IcmpType{3, 0}));
  EXPECT_EQ(icmp_type("host-unreachable"), (IcmpType{3, 1}));
  EXPECT_EQ(icmp_type("port-unreachable"), (IcmpType{3, 3}));
  EXPECT_EQ(icmp_type("fragmentation-needed"), (IcmpType{3, 4}));
  EXPECT_EQ(icmp_type("network-prohibited"), (IcmpType{3, 9}));
  EXPECT_EQ(icmp_type("TOS-host-unreachable"), (IcmpType{3, 12}));
  EXPECT_EQ(icmp_type("communication-prohibited"), (IcmpType{3, 13}));
  EXPECT_EQ(icmp_type("precedence-cutoff"), (IcmpType{3, 15}));
  EXPECT_EQ(icmp_type("source-quench"), (IcmpType{4, std::nullopt}));
  EXPECT_EQ(icmp_type("redirect"), (IcmpType{5, std::nullopt}));
  EXPECT_EQ(icmp_type("TOS-host-redirect"), (IcmpType{5, 3}));
  EXPECT_EQ(icmp_type("router-advertisement"), (IcmpType{9, std::nullopt}));
  EXPECT_EQ(icmp_type("router-solicitation"), (IcmpType{10, std::nullopt}));
  EXPECT_EQ(icmp_type("ttl-zero-during-reassembly"), (IcmpType{11, 1}));
  EXPECT_EQ(icmp_type("required-option-missing"), (IcmpType{12, 1}));
  EXPECT_EQ(icmp_type("timestamp-reply"), (IcmpType{14, std::nullopt}));
  EXPECT_EQ(icmp_type("address-mask-reply"), (IcmpType{18, std::nullopt}));
}

TEST(IcmpTest, NamesIgnoreCase) {
  EXPECT_EQ(icmp_type("tos-network-unreachable"), (IcmpType{3, 11}));
  EXPECT_EQ(icmp_type("Echo-Request"), (IcmpType{8, std::nullopt}));
}

TEST(IcmpTest, AcceptsTypeAndTypeSlashCode) {
  EXPECT_EQ(icmp_type("8"), (IcmpType{8, std::nullopt}));
  EXPECT_EQ(icmp_type("3/1"), (IcmpType{3, 1}));
  EXPECT_EQ(icmp_type("255/255"), (IcmpType{255, 255}));
  EXPECT_EQ(icmp_type("256"), std::nullopt);
  EXPECT_EQ(icmp_type("3/256"), std::nullopt);
  EXPECT_EQ(icmp_type("3/"), std::nullopt);
  EXPECT_EQ(icmp_type("/1"), std::nullopt);
  EXPECT_EQ(icmp_type("3/1/2"), std::nullopt);
}

TEST(IcmpTest, RejectsUnknownNamesAndV6OnlyNames) {
  EXPECT_EQ(icmp_type(""), std::nullopt);
  EXPECT_EQ(icmp_type("any"), std::nullopt);
  EXPECT_EQ(icmp_type("echo"), std::nullopt);
  EXPECT_EQ(icmp_type("packet-too-big"), std::nullopt);
  EXPECT_EQ(icmp_type("neighbor-solicitation"), std::nullopt);
}

TEST(Icmpv6Test, ResolvesIp6tablesNames) {
  EXPECT_EQ(icmpv6_type("destination-unreachable"), (IcmpType{1, std::nullopt}));
  EXPECT_EQ(icmpv6_type("no-route"), (IcmpType{1, 0}));
  EXPECT_EQ(icmpv6_type("communication-prohibited"), (IcmpType{1, 1}));
  EXPECT_EQ(icmpv6_type("beyond-scope"), (IcmpType{1, 2}));
  EXPECT_EQ(icmpv6_type("address-unreachable"), (IcmpType{1, 3}));
  EXPECT_EQ(icmpv6_type("port-unreachable"), (IcmpType{1, 4}));
  EXPECT_EQ(icmpv6_type("failed-policy"), (IcmpType{1, 5}));
  EXPECT_EQ(icmpv6_type("packet-too-big"), (IcmpType{2, std::nullopt}));
  EXPECT_EQ(icmpv6_type("time-exceeded"), (IcmpType{3, std::nullopt}));
  EXPECT_EQ(icmpv6_type("ttl-zero-during-transit"), (IcmpType{3, 0}));
  EXPECT_EQ(icmpv6_type("ttl-zero-during-reassembly"), (IcmpType{3, 1}));
  EXPECT_EQ(icmpv6_type("parameter-problem"), (IcmpType{4, std::nullopt}));
  EXPECT_EQ(icmpv6_type("bad-header"), (IcmpType{4, 0}));
  EXPECT_EQ(icmpv6_type("unknown-header-type"), (IcmpType{4, 1}));
  EXPECT_EQ(icmpv6_type("unknown-option"), (IcmpType{4, 2}));
  EXPECT_EQ(icmpv6_type("echo-request"), (IcmpType{128, std::nullopt}));
  EXPECT_EQ(icmpv6_type("echo-reply"), (IcmpType{129, std::nullopt}));
  EXPECT_EQ(icmpv6_type("mld-listener-query"), (IcmpType{130, std::nullopt}));
  EXPECT_EQ(icmpv6_type("mld-listener-report"), (IcmpType{131, std::nullopt}));
  EXPECT_EQ(icmpv6_type("mld-listener-done"), (IcmpType{132, std::nullopt}));
  EXPECT_EQ(icmpv6_type("mld-listener-reduction"), (IcmpType{132, std::nullopt}));
  EXPECT_EQ(icmpv6_type("router-solicitation"), (IcmpType{133, std::nullopt}));
  EXPECT_EQ(icmpv6_type("router-advertisement"), (IcmpType{134, std::nullopt}));
  EXPECT_EQ(icmpv6_type("redirect"), (IcmpType{137, std::nullopt}));
  EXPECT_EQ(icmpv6_type("mld2-listener-report"), (IcmpType{143, std::nullopt}));
}

// The Rust implementation's table has a stray quote in this entry, so it never matches there.
TEST(Icmpv6Test, RejectRouteWorks) { EXPECT_EQ(icmpv6_type("reject-route"), (IcmpType{1, 6})); }

TEST(Icmpv6Test, AcceptsBothNeighbourSpellings) {
  EXPECT_EQ(icmpv6_type("neighbour-solicitation"), (IcmpType{135, std::nullopt}));
  EXPECT_EQ(icmpv6_type("neighbor-solicitation"), (IcmpType{135, std::nullopt}));
  EXPECT_EQ(icmpv6_type("neighbour-advertisement"), (IcmpType{136, std::nullopt}));
  EXPECT_EQ(icmpv6_type("neighbor-advertisement"), (IcmpType{136, std::nullopt}));
}

TEST(Icmpv6Test, AcceptsNumbers) {
  EXPECT_EQ(icmpv6_type("128"), (IcmpType{128, std::nullopt}));
  EXPECT_EQ(icmpv6_type("1/6"), (IcmpType{1, 6}));
  EXPECT_EQ(icmpv6_type("1000"), std::nullopt);
}

TEST(Icmpv6Test, RejectsUnknownNamesAndV4OnlyNames) {
  EXPECT_EQ(icmpv6_type(""), std::nullopt);
  EXPECT_EQ(icmpv6_type("any"), std::nullopt);
  EXPECT_EQ(icmpv6_type("host-unreachable"), std::nullopt);
  EXPECT_EQ(icmpv6_type("source-quench"), std::nullopt);
  EXPECT_EQ(icmpv6_type("timestamp-request"), std::nullopt);
}

TEST(IcmpTest, V4AndV6NumberTheSameNameDifferently) {
  EXPECT_EQ(icmp_type("echo-request")->type, 8);
  EXPECT_EQ(icmpv6_type("echo-request")->type, 128);
  EXPECT_EQ(icmp_type("port-unreachable"), (IcmpType{3, 3}));
  EXPECT_EQ(icmpv6_type("port-unreachable"), (IcmpType{1, 4}));
}

}  // namespace
}  // namespace moat::firewall
