// IpRange: CIDR recognition and text forms, for both families.
#include "moat/base/ip.h"

#include <gtest/gtest.h>

namespace moat {
namespace {

IpRange range(std::string_view text) {
  auto r = parse_ip_range(text);
  EXPECT_TRUE(r) << text << ": " << r.error().to_string();
  return r.value_or(IpRange{});
}

TEST(IpRangeTest, PrefixLengthOfEveryCidrBlockIsItsLength) {
  for (int len = 0; len <= 32; ++len)
    EXPECT_EQ(range("10.1.2.3/" + std::to_string(len)).prefix_length(), len) << len;
  for (int len = 0; len <= 128; ++len)
    EXPECT_EQ(range("2001:db8:1:2:3:4:5:6/" + std::to_string(len)).prefix_length(), len) << len;
}

TEST(IpRangeTest, RangesThatAreNoBlockHaveNoPrefixLength) {
  EXPECT_EQ(range("10.0.0.1-10.0.0.2").prefix_length(), std::nullopt);    // not aligned
  EXPECT_EQ(range("10.0.0.0-10.0.0.254").prefix_length(), std::nullopt);  // last not all ones
  EXPECT_EQ(range("10.0.0.0-10.0.1.127").prefix_length(), std::nullopt);  // two blocks' worth
  EXPECT_EQ(range("10.0.0.0-10.0.1.255").prefix_length(), 23);
  EXPECT_EQ(range("2001:db8::-2001:db8::fffe").prefix_length(), std::nullopt);
  EXPECT_EQ(range("2001:db8::-2001:db8::ffff").prefix_length(), 112);
}

TEST(IpRangeTest, TextIsAnAddressABlockOrARange) {
  EXPECT_EQ(range("192.0.2.7").to_string(), "192.0.2.7");
  EXPECT_EQ(range("192.0.2.77/26").to_string(), "192.0.2.64/26");
  EXPECT_EQ(range("192.0.2.1-192.0.2.6").to_string(), "192.0.2.1-192.0.2.6");
  EXPECT_EQ(range("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(range("fe80::1/64").to_string(), "fe80::/64");
}

}  // namespace
}  // namespace moat
