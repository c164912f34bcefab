#include "moat/base/result.h"

#include <gtest/gtest.h>

#include "moat/base/strings.h"

namespace moat {
namespace {

Result<int> parse_positive(std::string_view s) {
  auto v = parse_uint(s);
  if (!v) return fail(ErrorCode::InvalidArgument, "not a number: " + std::string(s));
  return static_cast<int>(*v);
}

Result<int> doubled(std::string_view s) {
  int v = MOAT_TRY(parse_positive(s));
  return v * 2;
}

TEST(ResultTest, TryPropagatesValueAndError) {
  EXPECT_EQ(doubled("21").value(), 42);
  auto bad = doubled("x1");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(bad.error().message(), "not a number: x1");
}

TEST(ResultTest, ErrorTextCarriesLocationContextAndErrno) {
  Error e = Error(ErrorCode::InvalidConfig, "unknown option 'foo'")
                .at({"cluster.fw", 3, 7})
                .add_context("loading firewall")
                .with_errno(ENOENT);
  EXPECT_EQ(e.to_string(),
            "loading firewall: cluster.fw:3:7: unknown option 'foo' (No such file or directory)");
}

TEST(ResultTest, ErrnoMapsToCodes) {
  EXPECT_EQ(fail_errno(EPERM, "x").error().code(), ErrorCode::PermissionDenied);
  EXPECT_EQ(fail_errno(ENOENT, "x").error().code(), ErrorCode::NotFound);
  EXPECT_EQ(fail_errno(EINVAL, "x").error().code(), ErrorCode::Kernel);
}

TEST(StringsTest, SplitTrimAndNumbers) {
  EXPECT_EQ(trim("  a b \t"), "a b");
  auto parts = split("a,,b", ',');
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1], "");
  auto words = split_ws("  IN  ACCEPT\t-p tcp ");
  ASSERT_EQ(words.size(), 4u);
  EXPECT_EQ(words[3], "tcp");
  EXPECT_EQ(parse_uint("0x10"), 16u);
  EXPECT_FALSE(parse_uint("12a"));
  EXPECT_FALSE(parse_uint("99999999999999999999999"));
  EXPECT_TRUE(iequals("OPTIONS", "options"));
}

}  // namespace
}  // namespace moat
