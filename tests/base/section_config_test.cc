#include "moat/base/section_config.h"

#include <gtest/gtest.h>

#include <string>

namespace moat {
namespace {

// Canonical files, as Proxmox writes them: tab indentation, a blank line after every section.
constexpr std::string_view kZones =
    "vxlan: vxzone\n"
    "\tpeers 192.0.2.1,192.0.2.2,192.0.2.3\n"
    "\tipam pve\n"
    "\tmtu 1450\n"
    "\n"
    "evpn: evpnz\n"
    "\tcontroller evpnctl\n"
    "\tvrf-vxlan 10000\n"
    "\texitnodes node1,node2\n"
    "\texitnodes-primary node1\n"
    "\tipam pve\n"
    "\tmac 32:F4:05:FE:6C:0A\n"
    "\tmtu 1450\n"
    "\tadvertise-subnets 1\n"
    "\n"
    "qinq: qinqz1\n"
    "\tbridge vmbr0\n"
    "\ttag 20\n"
    "\tvlan-protocol 802.1ad\n"
    "\tipam pve\n"
    "\n";

constexpr std::string_view kVnets =
    "vnet: myvnet\n"
    "\tzone vxzone\n"
    "\ttag 100000\n"
    "\talias Tenant A frontend\n"
    "\n"
    "vnet: vlan10\n"
    "\tzone vlanz\n"
    "\ttag 10\n"
    "\tvlanaware\n"
    "\n";

constexpr std::string_view kSubnets =
    "subnet: simple-192.0.2.0-24\n"
    "\tvnet vnet0\n"
    "\tdhcp-range start-address=192.0.2.100,end-address=192.0.2.149\n"
    "\tdhcp-range start-address=192.0.2.150,end-address=192.0.2.199\n"
    "\tgateway 192.0.2.1\n"
    "\tsnat 1\n"
    "\n"
    "subnet: evpnz-2001:db8:1::-64\n"
    "\tvnet myvnet\n"
    "\tgateway 2001:db8:1::1\n"
    "\n";

constexpr std::string_view kStorage =
    "dir: local\n"
    "\tpath /var/lib/vz\n"
    "\tcontent iso,vztmpl,backup\n"
    "\n"
    "lvmthin: local-lvm\n"
    "\tthinpool data\n"
    "\tvgname pve\n"
    "\tcontent rootdir,images\n"
    "\n"
    "nfs: backups\n"
    "\tdisable\n"
    "\texport /srv/backups\n"
    "\tpath /mnt/pve/backups\n"
    "\tserver 198.51.100.20\n"
    "\tcontent backup\n"
    "\tprune-backups keep-last=3,keep-weekly=2\n"
    "\n";

SectionConfigOptions subnet_options() { return {.array_keys = {"dhcp-range"}}; }

SectionConfigFile parse_ok(std::string_view text, const SectionConfigOptions& options = {}) {
  auto parsed = parse_section_config(text, "test.cfg", options);
  EXPECT_TRUE(parsed) << parsed.error().to_string();
  return parsed ? *parsed : SectionConfigFile{};
}

// The same file with every location cleared, to compare content across a rewrite that moves
// lines.
SectionConfigFile without_locations(SectionConfigFile file) {
  for (Section& s : file.sections) {
    s.where = {};
    for (SectionProperty& p : s.properties) p.where = {};
  }
  return file;
}

// Checks that parsing fails with InvalidConfig, exactly `message`, at test.cfg:line:column.
testing::AssertionResult fails_at(std::string_view text, int line, int column,
                                  std::string_view message,
                                  const SectionConfigOptions& options = {}) {
  auto parsed = parse_section_config(text, "test.cfg", options);
  if (parsed) return testing::AssertionFailure() << "parsed without error";
  const Error& e = parsed.error();
  if (e.code() != ErrorCode::InvalidConfig) {
    return testing::AssertionFailure() << "code " << to_string(e.code());
  }
  if (!e.where()) return testing::AssertionFailure() << "no location: " << e.message();
  SourceLocation want{"test.cfg", line, column};
  if (*e.where() != want || e.message() != message) {
    return testing::AssertionFailure()
           << "got " << e.to_string() << "\nwant " << want.to_string() << ": " << message;
  }
  return testing::AssertionSuccess();
}

TEST(SectionConfigTest, ParsesZonesInOrderWithLocations) {
  SectionConfigFile file = parse_ok(kZones);
  ASSERT_EQ(file.sections.size(), 3u);
  const Section& vx = file.sections[0];
  EXPECT_EQ(vx.type, "vxlan");
  EXPECT_EQ(vx.id, "vxzone");
  EXPECT_EQ(vx.where, (SourceLocation{"test.cfg", 1, 1}));
  ASSERT_EQ(vx.properties.size(), 3u);
  EXPECT_EQ(vx.properties[0].key, "peers");
  EXPECT_EQ(vx.properties[0].value, "192.0.2.1,192.0.2.2,192.0.2.3");
  EXPECT_EQ(vx.properties[0].where, (SourceLocation{"test.cfg", 2, 2}));

  const Section& evpn = file.sections[1];
  EXPECT_EQ(evpn.type, "evpn");
  EXPECT_EQ(evpn.id, "evpnz");
  EXPECT_EQ(evpn.where.line, 6);
  ASSERT_NE(evpn.find("mac"), nullptr);
  EXPECT_EQ(evpn.find("mac")->value, "32:F4:05:FE:6C:0A");
  EXPECT_EQ(evpn.find("vrf-vxlan")->where.line, 8);
  EXPECT_EQ(file.sections[2].find("vlan-protocol")->value, "802.1ad");
  EXPECT_TRUE(file.trailing_comments.empty());
}

TEST(SectionConfigTest, KeyAloneHasEmptyValue) {
  SectionConfigFile file = parse_ok(kVnets);
  const SectionProperty* flag = file.sections[1].find("vlanaware");
  ASSERT_NE(flag, nullptr);
  EXPECT_EQ(flag->value, "");
}

TEST(SectionConfigTest, ValueKeepsInnerSpacesAndDropsTrailingSpace) {
  SectionConfigFile file = parse_ok("vnet: a\n\talias  Tenant  A  front \t\n");
  EXPECT_EQ(file.sections[0].find("alias")->value, "Tenant  A  front");
}

TEST(SectionConfigTest, AcceptsSpaceIndentationAndReportsKeyColumn) {
  SectionConfigFile file = parse_ok("vnet: a\n    zone z\n \t tag 5\n");
  ASSERT_EQ(file.sections[0].properties.size(), 2u);
  EXPECT_EQ(file.sections[0].properties[0].where.column, 5);
  EXPECT_EQ(file.sections[0].properties[1].where.column, 4);
  EXPECT_EQ(file.sections[0].find("tag")->value, "5");
}

TEST(SectionConfigTest, LowerCasesTypeButNotId) {
  SectionConfigFile file = parse_ok("VNet: MyNet\n\tzone z\n");
  EXPECT_EQ(file.sections[0].type, "vnet");
  EXPECT_EQ(file.sections[0].id, "MyNet");
}

TEST(SectionConfigTest, AcceptsHeaderWithoutOrWithExtraSpaceAfterColon) {
  SectionConfigFile file = parse_ok("vnet:a\n\tzone z\n\nvnet:   b   \n\tzone z\n");
  ASSERT_EQ(file.sections.size(), 2u);
  EXPECT_EQ(file.sections[0].type, "vnet");
  EXPECT_EQ(file.sections[0].id, "a");
  EXPECT_EQ(file.sections[1].id, "b");
}

TEST(SectionConfigTest, SubnetIdMayContainColonsAndDashes) {
  SectionConfigFile file = parse_ok(kSubnets, subnet_options());
  ASSERT_EQ(file.sections.size(), 2u);
  EXPECT_EQ(file.sections[1].type, "subnet");
  EXPECT_EQ(file.sections[1].id, "evpnz-2001:db8:1::-64");
}

TEST(SectionConfigTest, ArrayKeyRepeatsInFileOrder) {
  SectionConfigFile file = parse_ok(kSubnets, subnet_options());
  const Section& s = file.sections[0];
  auto ranges = s.find_all("dhcp-range");
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0]->value, "start-address=192.0.2.100,end-address=192.0.2.149");
  EXPECT_EQ(ranges[1]->value, "start-address=192.0.2.150,end-address=192.0.2.199");
  EXPECT_EQ(ranges[1]->where.line, 4);
  EXPECT_EQ(s.find("dhcp-range"), ranges[0]);
}

TEST(SectionConfigTest, FindMissesAbsentAndDifferentlyCasedKeys) {
  SectionConfigFile file = parse_ok(kStorage);
  const Section& local = file.sections[0];
  EXPECT_EQ(local.find("thinpool"), nullptr);
  EXPECT_EQ(local.find("PATH"), nullptr);
  EXPECT_TRUE(local.find_all("thinpool").empty());
  EXPECT_EQ(local.find("path")->value, "/var/lib/vz");
}

TEST(SectionConfigTest, ParsesStorageTypes) {
  SectionConfigFile file = parse_ok(kStorage);
  ASSERT_EQ(file.sections.size(), 3u);
  EXPECT_EQ(file.sections[0].type + ":" + file.sections[0].id, "dir:local");
  EXPECT_EQ(file.sections[1].type + ":" + file.sections[1].id, "lvmthin:local-lvm");
  EXPECT_EQ(file.sections[2].find("prune-backups")->value, "keep-last=3,keep-weekly=2");
  EXPECT_EQ(file.sections[2].find("disable")->value, "");
}

TEST(SectionConfigTest, CanonicalFilesRoundTripByteForByte) {
  EXPECT_EQ(write_section_config(parse_ok(kZones)), kZones);
  EXPECT_EQ(write_section_config(parse_ok(kVnets)), kVnets);
  EXPECT_EQ(write_section_config(parse_ok(kSubnets, subnet_options())), kSubnets);
  EXPECT_EQ(write_section_config(parse_ok(kStorage)), kStorage);
}

TEST(SectionConfigTest, RewriteParsesToTheSameContent) {
  for (std::string_view text : {kZones, kVnets, kStorage, kSubnets}) {
    SectionConfigFile first = parse_ok(text, subnet_options());
    SectionConfigFile second = parse_ok(write_section_config(first), subnet_options());
    EXPECT_EQ(second, first) << text;  // canonical input: locations survive too
  }
}

TEST(SectionConfigTest, NonCanonicalInputIsNormalizedOnWrite) {
  constexpr std::string_view kMessy =
      "\n\n"
      "vnet:  a  \r\n"
      "   zone   z1  \r\n"
      "\r\n"
      " \t \n"
      "\n"
      "VNET: b\n"
      "\t\ttag 7\n"
      "\tvlanaware   ";  // no final newline
  SectionConfigFile first = parse_ok(kMessy);
  std::string written = write_section_config(first);
  EXPECT_EQ(written,
            "vnet: a\n"
            "\tzone z1\n"
            "\n"
            "vnet: b\n"
            "\ttag 7\n"
            "\tvlanaware\n"
            "\n");
  EXPECT_EQ(without_locations(parse_ok(written)), without_locations(first));
}

TEST(SectionConfigTest, KeepsCommentsInPlace) {
  constexpr std::string_view kCommented =
      "# managed by hand; see ticket 42\n"
      "vnet: a\n"
      "\tzone z\n"
      "# the tag is the VNI\n"
      "\t# (indented comments are comments too)\n"
      "\ttag 100\n"
      "\n"
      "vnet: b\n"
      "\tzone z\n"
      "\n"
      "# end of file\n";
  SectionConfigFile file = parse_ok(kCommented);
  ASSERT_EQ(file.sections.size(), 2u);
  EXPECT_EQ(file.sections[0].leading_comments,
            std::vector<std::string>{"# managed by hand; see ticket 42"});
  const SectionProperty* tag = file.sections[0].find("tag");
  ASSERT_NE(tag, nullptr);
  EXPECT_EQ(tag->value, "100");
  EXPECT_EQ(tag->leading_comments,
            (std::vector<std::string>{"# the tag is the VNI",
                                      "\t# (indented comments are comments too)"}));
  EXPECT_TRUE(file.sections[1].leading_comments.empty());
  EXPECT_EQ(file.trailing_comments, std::vector<std::string>{"# end of file"});
  EXPECT_EQ(write_section_config(file), kCommented);
}

TEST(SectionConfigTest, CommentAfterLastPropertyMovesBeforeNextHeader) {
  SectionConfigFile first = parse_ok(
      "vnet: a\n"
      "\tzone z\n"
      "# about b\n"
      "\n"
      "vnet: b\n"
      "\tzone z\n"
      "# last words\n");
  EXPECT_EQ(first.sections[1].leading_comments, std::vector<std::string>{"# about b"});
  EXPECT_EQ(first.trailing_comments, std::vector<std::string>{"# last words"});
  std::string written = write_section_config(first);
  EXPECT_EQ(written, "vnet: a\n\tzone z\n\n# about b\nvnet: b\n\tzone z\n\n# last words\n");
  EXPECT_EQ(without_locations(parse_ok(written)), without_locations(first));
}

TEST(SectionConfigTest, EmptyAndCommentOnlyFiles) {
  SectionConfigFile empty = parse_ok("");
  EXPECT_TRUE(empty.sections.empty());
  EXPECT_EQ(write_section_config(empty), "");
  SectionConfigFile comments = parse_ok("# nothing yet\n");
  EXPECT_TRUE(comments.sections.empty());
  EXPECT_EQ(write_section_config(comments), "# nothing yet\n");
}

TEST(SectionConfigTest, WritesProgrammaticallyBuiltFile) {
  SectionConfigFile file;
  file.sections.push_back(Section{
      .type = "simple",
      .id = "zone1",
      .where = {},
      .properties = {{.key = "ipam", .value = "pve", .where = {}, .leading_comments = {}},
                     {.key = "dhcp", .value = "dnsmasq", .where = {}, .leading_comments = {}}},
      .leading_comments = {},
  });
  EXPECT_EQ(write_section_config(file), "simple: zone1\n\tipam pve\n\tdhcp dnsmasq\n\n");
}

TEST(SectionConfigTest, RejectsPropertyBeforeAnyHeaderWithColumn) {
  EXPECT_TRUE(fails_at("# zones\n\tbridge vmbr0\nvlan: z\n", 2, 2,
                       "property 'bridge' is outside any section (expected a '<type>: <id>' "
                       "header first)"));
}

TEST(SectionConfigTest, RejectsPropertyAfterBlankLineNamingClosedSection) {
  EXPECT_TRUE(fails_at("vnet: a\n\tzone z\n\n  tag 5\n", 4, 3,
                       "property 'tag' is outside any section (the blank line 3 ended section "
                       "vnet: a)"));
}

TEST(SectionConfigTest, WhitespaceOnlyLineEndsSectionSoNextPropertyIsRejected) {
  // An "indented line with no key" is blank, exactly as in Proxmox; the damage shows on the
  // next property, and the message points back at the blank line.
  EXPECT_TRUE(fails_at("vnet: a\n\tzone z\n\t\n\ttag 5\n", 4, 2,
                       "property 'tag' is outside any section (the blank line 3 ended section "
                       "vnet: a)"));
}

TEST(SectionConfigTest, RejectsHeaderWithoutIdPointingAfterColon) {
  EXPECT_TRUE(fails_at("vnet: a\n\tzone z\n\nvnet:\n\tzone z\n", 4, 6,
                       "section header 'vnet:' has no id (expected 'vnet: <id>')"));
  EXPECT_TRUE(
      fails_at("evpn:   \t\n", 1, 6, "section header 'evpn:' has no id (expected 'evpn: <id>')"));
}

TEST(SectionConfigTest, RejectsHeaderWithExtraTokenAtItsColumn) {
  EXPECT_TRUE(
      fails_at("vnet: my vnet\n", 1, 10, "unexpected 'vnet' after section header 'vnet: my'"));
  EXPECT_TRUE(fails_at("\nvnet:a  b\n", 2, 9, "unexpected 'b' after section header 'vnet: a'"));
}

TEST(SectionConfigTest, RejectsHeaderWithoutType) {
  EXPECT_TRUE(fails_at(": a\n", 1, 1, "section header ': a' has no type before ':'"));
  EXPECT_TRUE(fails_at(":a\n", 1, 1, "section header ':a' has no type before ':'"));
}

TEST(SectionConfigTest, RejectsUnindentedLineThatIsNoHeader) {
  EXPECT_TRUE(fails_at("vnet: a\n\tzone z\n\nzone z\n", 4, 1,
                       "malformed section header 'zone z' (expected '<type>: <id>')"));
  EXPECT_TRUE(fails_at("vnet : a\n", 1, 1,
                       "malformed section header 'vnet : a' (expected '<type>: <id>')"));
}

TEST(SectionConfigTest, RejectsUnindentedPropertyInsideSection) {
  EXPECT_TRUE(fails_at("vnet: a\n\tzone z\ntag 5\n", 3, 1,
                       "line 'tag 5' in section vnet: a is not indented (properties start with a "
                       "tab or spaces)"));
}

TEST(SectionConfigTest, RejectsHeaderNotPrecededByBlankLine) {
  // Proxmox would ignore the second header and merge b's properties into a.
  EXPECT_TRUE(fails_at("vnet: a\n\tzone z\n# b follows\nvnet: b\n\tzone z\n", 4, 1,
                       "section header 'vnet: b' must follow a blank line (section vnet: a is "
                       "still open)"));
}

TEST(SectionConfigTest, RejectsDuplicateKeyWithColumn) {
  EXPECT_TRUE(fails_at("vnet: myvnet\n\tzone z\n\tbridge vmbr0\n   bridge vmbr1\n", 4, 4,
                       "duplicate property 'bridge' in section vnet: myvnet (first set on line "
                       "3)"));
}

TEST(SectionConfigTest, RejectsDuplicateKeyEvenWithoutValue) {
  EXPECT_TRUE(fails_at("vnet: a\n\tvlanaware\n\tvlanaware 1\n", 3, 2,
                       "duplicate property 'vlanaware' in section vnet: a (first set on line "
                       "2)"));
}

TEST(SectionConfigTest, ArrayKeysDoNotLetOtherKeysRepeat) {
  EXPECT_TRUE(
      fails_at("subnet: z-10.0.0.0-24\n"
               "\tdhcp-range start-address=10.0.0.10,end-address=10.0.0.19\n"
               "\tdhcp-range start-address=10.0.0.20,end-address=10.0.0.29\n"
               "\tgateway 10.0.0.1\n"
               "\tgateway 10.0.0.254\n",
               5, 2,
               "duplicate property 'gateway' in section subnet: z-10.0.0.0-24 (first set "
               "on line 4)",
               subnet_options()));
}

TEST(SectionConfigTest, RepeatedArrayKeyIsAnErrorWithoutTheOption) {
  EXPECT_TRUE(fails_at(kSubnets, 4, 2,
                       "duplicate property 'dhcp-range' in section subnet: simple-192.0.2.0-24 "
                       "(first set on line 3)"));
}

TEST(SectionConfigTest, RejectsDuplicateSectionAtIdColumn) {
  EXPECT_TRUE(fails_at("vnet: myvnet\n\tzone z\n\nvnet:   myvnet\n\tzone y\n", 4, 9,
                       "duplicate section vnet: myvnet (first defined on line 1)"));
}

TEST(SectionConfigTest, DuplicateSectionComparesLowerCasedType) {
  EXPECT_TRUE(fails_at("vnet: a\n\nVNET: a\n", 3, 7,
                       "duplicate section vnet: a (first defined on line 1)"));
}

TEST(SectionConfigTest, RejectsSameIdUnderAnotherType) {
  EXPECT_TRUE(fails_at("dir: local\n\tpath /var/lib/vz\n\nnfs: local\n\tserver 192.0.2.9\n", 4, 6,
                       "section id 'local' of nfs: local is already used by dir: local on line 1 "
                       "(ids are unique across types)"));
}

TEST(SectionConfigTest, ErrorTextNamesFileLineAndColumn) {
  auto parsed = parse_section_config("vnet: a\n\tzone z\n\tzone y\n", "/etc/pve/sdn/vnets.cfg");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().to_string(),
            "/etc/pve/sdn/vnets.cfg:3:2: duplicate property 'zone' in section vnet: a (first set "
            "on line 2)");
}

TEST(SectionConfigTest, ReportsCrlfLinesWithCorrectColumns) {
  EXPECT_TRUE(fails_at("vnet: a\r\n\tzone z\r\n\r\n\tzone y\r\n", 4, 2,
                       "property 'zone' is outside any section (the blank line 3 ended section "
                       "vnet: a)"));
}

}  // namespace
}  // namespace moat
