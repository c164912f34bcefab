#include "moat/base/property_string.h"

#include <gtest/gtest.h>

#include <string>

namespace moat {
namespace {

const SourceLocation kAt{"qemu-server/100.conf", 7, 0};
const PropertyStringOptions kVolume{.default_key = "volume"};

PropertyString parse_ok(std::string_view text, const PropertyStringOptions& options = {}) {
  auto parsed = parse_property_string(text, kAt, options);
  EXPECT_TRUE(parsed) << text << ": " << parsed.error().to_string();
  return parsed ? *parsed : PropertyString{};
}

// Checks that parsing fails with InvalidConfig, exactly `message`, at `where`'s file and line
// and at `column` of that line.
testing::AssertionResult fails_at(std::string_view text, int column, std::string_view message,
                                  const PropertyStringOptions& options = {},
                                  const SourceLocation& where = kAt) {
  auto parsed = parse_property_string(text, where, options);
  if (parsed) return testing::AssertionFailure() << "parsed without error: " << text;
  const Error& e = parsed.error();
  if (e.code() != ErrorCode::InvalidConfig) {
    return testing::AssertionFailure() << "code " << to_string(e.code());
  }
  if (!e.where()) return testing::AssertionFailure() << "no location: " << e.message();
  SourceLocation want{where.file, where.line, column};
  if (*e.where() != want || e.message() != message) {
    return testing::AssertionFailure()
           << "got " << e.to_string() << "\nwant " << want.to_string() << ": " << message;
  }
  return testing::AssertionSuccess();
}

std::vector<std::string> keys(const PropertyString& ps) {
  std::vector<std::string> out;
  for (const PropertyItem& item : ps.items) out.push_back(item.key);
  return out;
}

TEST(PropertyStringTest, ParsesNetDeviceInOrderWithKeyColumns) {
  PropertyString ps = parse_ok("virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0,firewall=1,tag=10");
  EXPECT_EQ(keys(ps), (std::vector<std::string>{"virtio", "bridge", "firewall", "tag"}));
  ASSERT_EQ(ps.items.size(), 4u);
  EXPECT_EQ(ps.items[0], (PropertyItem{"virtio", "AA:BB:CC:DD:EE:FF", 1}));
  EXPECT_EQ(ps.items[1], (PropertyItem{"bridge", "vmbr0", 26}));
  EXPECT_EQ(ps.items[2], (PropertyItem{"firewall", "1", 39}));
  EXPECT_EQ(ps.items[3], (PropertyItem{"tag", "10", 50}));
  ASSERT_NE(ps.find("tag"), nullptr);
  EXPECT_EQ(ps.find("tag")->value, "10");
  EXPECT_EQ(ps.find("mtu"), nullptr);
}

TEST(PropertyStringTest, KeysAreCaseSensitive) {
  PropertyString ps = parse_ok("Bridge=vmbr1,bridge=vmbr0");
  ASSERT_EQ(ps.items.size(), 2u);
  EXPECT_EQ(ps.find("bridge")->value, "vmbr0");
  EXPECT_EQ(ps.find("Bridge")->value, "vmbr1");
  EXPECT_EQ(ps.find("BRIDGE"), nullptr);
}

TEST(PropertyStringTest, BareLeadingValueGoesToDefaultKey) {
  PropertyString ps = parse_ok("local:vm-100-disk-0,size=8G,discard=on", kVolume);
  ASSERT_EQ(ps.items.size(), 3u);
  EXPECT_EQ(ps.items[0], (PropertyItem{"volume", "local:vm-100-disk-0", 1}));
  EXPECT_EQ(ps.find("size")->value, "8G");
}

TEST(PropertyStringTest, DefaultKeyMayAlsoBeGivenExplicitly) {
  PropertyString ps = parse_ok("size=8G,volume=local:vm-100-disk-0", kVolume);
  EXPECT_EQ(ps.find("volume")->value, "local:vm-100-disk-0");
  EXPECT_EQ(ps.find("volume")->column, 9);
}

TEST(PropertyStringTest, ValueMayContainEqualsAndColons) {
  PropertyString ps = parse_ok("ip=10.0.0.5/24,gw=10.0.0.1,opt=a=b:c");
  EXPECT_EQ(ps.find("ip")->value, "10.0.0.5/24");
  EXPECT_EQ(ps.find("opt")->value, "a=b:c");
}

TEST(PropertyStringTest, QuotedValueMayContainCommasQuotesAndBackslashes) {
  PropertyString ps = parse_ok(R"(desc="a,b \"c\" \\d",x=1)");
  ASSERT_EQ(ps.items.size(), 2u);
  EXPECT_EQ(ps.items[0].value, R"(a,b "c" \d)");
  EXPECT_EQ(ps.items[1], (PropertyItem{"x", "1", 22}));
}

TEST(PropertyStringTest, QuotedBareValueGoesToDefaultKey) {
  PropertyString ps = parse_ok(R"("my disk, v2",size=1G)", kVolume);
  EXPECT_EQ(ps.items[0], (PropertyItem{"volume", "my disk, v2", 1}));
  EXPECT_EQ(ps.find("size")->value, "1G");
}

TEST(PropertyStringTest, EmptyValuesAreKept) {
  PropertyString ps = parse_ok(R"(a=,b="",c=1)");
  EXPECT_EQ(ps.find("a")->value, "");
  EXPECT_EQ(ps.find("b")->value, "");
  EXPECT_EQ(ps.find("c")->column, 9);
}

TEST(PropertyStringTest, SkipsEmptyItemsButKeepsColumns) {
  PropertyString ps = parse_ok("a=1,, ,b=2,");
  ASSERT_EQ(ps.items.size(), 2u);
  EXPECT_EQ(ps.items[1], (PropertyItem{"b", "2", 8}));
  EXPECT_TRUE(parse_ok("").items.empty());
}

TEST(PropertyStringTest, UnquotedValueKeepsSpacesAndBackslashesLiterally) {
  PropertyString ps = parse_ok(R"(a=hello world,b=C:\tmp)");
  EXPECT_EQ(ps.find("a")->value, "hello world");
  EXPECT_EQ(ps.find("b")->value, R"(C:\tmp)");
}

TEST(PropertyStringTest, RejectsEmptyKeyWithColumn) {
  EXPECT_TRUE(fails_at("bridge=vmbr0,=10", 14, "empty key before '='"));
}

TEST(PropertyStringTest, RejectsDuplicateKeyWithColumn) {
  EXPECT_TRUE(fails_at("bridge=vmbr0,tag=10,bridge=vmbr1", 21,
                       "duplicate key 'bridge' (first set at column 1)"));
}

TEST(PropertyStringTest, RejectsDefaultKeyGivenTwice) {
  EXPECT_TRUE(fails_at("local:vm-100-disk-0,volume=local:vm-100-disk-1", 21,
                       "duplicate key 'volume' (first set at column 1)", kVolume));
}

TEST(PropertyStringTest, RejectsBareValueWithoutDefaultKey) {
  EXPECT_TRUE(fails_at("dhcp,gw=10.0.0.1", 1, "value 'dhcp' has no key (expected 'key=value')"));
  EXPECT_TRUE(
      fails_at(R"(ip=dhcp,"x,y")", 9, R"(value '"x,y"' has no key (expected 'key=value'))"));
}

TEST(PropertyStringTest, RejectsBareValueAfterTheFirstItem) {
  // Typically an unquoted list: tag=10,20.
  EXPECT_TRUE(fails_at("size=8G,local:vm-100-disk-0", 9,
                       "value 'local:vm-100-disk-0' has no key (only the first item may omit "
                       "its key 'volume')",
                       kVolume));
}

TEST(PropertyStringTest, RejectsUnterminatedQuoteAtOpeningQuote) {
  EXPECT_TRUE(fails_at(R"(a=1,desc="open,b=2)", 10, "unterminated quote"));
  EXPECT_TRUE(fails_at(R"(desc="ends in backslash\)", 6, "unterminated quote"));
  EXPECT_TRUE(fails_at(R"(desc="escaped end\")", 6, "unterminated quote"));
}

TEST(PropertyStringTest, RejectsTextAfterClosingQuote) {
  EXPECT_TRUE(
      fails_at(R"(a="x"y,b=1)", 6, "unexpected 'y' after closing quote (quote the whole value)"));
  EXPECT_TRUE(fails_at(R"("vol" ,size=1G)", 6,
                       "unexpected ' ' after closing quote (quote the whole value)", kVolume));
}

TEST(PropertyStringTest, RejectsUnknownEscapeAtBackslash) {
  EXPECT_TRUE(fails_at(R"(a="x\ny")", 5,
                       R"(unknown escape '\n' in quoted value (only \" and \\ are allowed))"));
}

TEST(PropertyStringTest, RejectsStrayQuoteInUnquotedValue) {
  EXPECT_TRUE(fails_at(R"(a=1,b=x"y",c=2)", 8,
                       R"(stray '"' in unquoted value 'x"y"' (quote the whole value))"));
}

TEST(PropertyStringTest, RejectsKeyWithWhitespaceOrQuote) {
  EXPECT_TRUE(fails_at("a=1, b=2", 5, "invalid key ' b' (keys cannot contain whitespace)"));
  EXPECT_TRUE(fails_at(R"(a"b=1)", 2, R"(invalid key 'a"b' (keys cannot contain quotes))"));
}

TEST(PropertyStringTest, ErrorColumnIsOffsetByWhereColumn) {
  // `net0: bridge=vmbr0,bridge=vmbr1` -- the property string starts at column 7 of line 12.
  SourceLocation where{"qemu-server/101.conf", 12, 7};
  EXPECT_TRUE(fails_at("bridge=vmbr0,bridge=vmbr1", 20,
                       "duplicate key 'bridge' (first set at column 7)", {}, where));
  auto parsed = parse_property_string("a=1,=2", where);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().to_string(), "qemu-server/101.conf:12:11: empty key before '='");
}

TEST(PropertyStringTest, ItemColumnsStayRelativeToTheString) {
  auto parsed = parse_property_string("a=1,b=2", {"x.conf", 3, 40});
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->items[1].column, 5);
}

TEST(PropertyStringTest, CanonicalStringsRoundTripByteForByte) {
  for (std::string_view s : {
           "virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0,firewall=1,tag=10",
           "start-address=192.0.2.100,end-address=192.0.2.199",
           "ip=dhcp,ip6=auto",
           R"(desc="a,b",name="two words",q="say \"hi\"",path=C:\x,empty=)",
           "",
       }) {
    EXPECT_EQ(write_property_string(parse_ok(s)), s);
  }
  for (std::string_view s : {
           "local:vm-100-disk-0,size=8G",
           "local-lvm:vm-100-disk-1,discard=on,iothread=1,size=32G",
           R"("my disk",size=1G)",
           "size=8G",
       }) {
    EXPECT_EQ(write_property_string(parse_ok(s, kVolume), kVolume), s);
  }
}

TEST(PropertyStringTest, WriterQuotesOnlyWhenNeeded) {
  PropertyString ps{.items = {{"plain", "vmbr0", 0},
                              {"space", "a b", 0},
                              {"tab", "a\tb", 0},
                              {"comma", "a,b", 0},
                              {"quote", R"(a"b)", 0},
                              {"backslash", R"(a\b)", 0},
                              {"both", R"(a\"b c)", 0},
                              {"equals", "a=b", 0},
                              {"empty", "", 0}}};
  EXPECT_EQ(write_property_string(ps),
            "plain=vmbr0,space=\"a b\",tab=\"a\tb\",comma=\"a,b\",quote=\"a\\\"b\","
            "backslash=a\\b,both=\"a\\\\\\\"b c\",equals=a=b,empty=");
}

TEST(PropertyStringTest, WriterNamesDefaultKeyWhenItCannotBeBare) {
  PropertyString not_first{.items = {{"size", "8G", 0}, {"volume", "local:vm-1", 0}}};
  EXPECT_EQ(write_property_string(not_first, kVolume), "size=8G,volume=local:vm-1");
  PropertyString with_equals{.items = {{"volume", "a=b", 0}}};
  EXPECT_EQ(write_property_string(with_equals, kVolume), "volume=a=b");
  PropertyString empty{.items = {{"volume", "", 0}, {"size", "1G", 0}}};
  EXPECT_EQ(write_property_string(empty, kVolume), "volume=,size=1G");
  // Without the option, the same key is an ordinary key.
  PropertyString first{.items = {{"volume", "local:vm-1", 0}}};
  EXPECT_EQ(write_property_string(first), "volume=local:vm-1");
}

TEST(PropertyStringTest, WrittenValuesParseBackUnchanged) {
  for (std::string value : {"", " ", "a b", ",", "a,b,", R"(")", R"(\)", R"(\")", R"(x\"y,z)", "=",
                            "a=b", "tab\there", "trailing "}) {
    for (const PropertyStringOptions& options : {PropertyStringOptions{}, kVolume}) {
      PropertyString ps{.items = {{"volume", value, 0}, {"k", value, 0}}};
      PropertyString back = parse_ok(write_property_string(ps, options), options);
      ASSERT_EQ(back.items.size(), 2u) << "value [" << value << "]";
      EXPECT_EQ(back.items[0].key, "volume");
      EXPECT_EQ(back.items[0].value, value);
      EXPECT_EQ(back.items[1].value, value);
    }
  }
}

}  // namespace
}  // namespace moat
