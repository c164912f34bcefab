// Golden tests of the whole firewall front end: every directory under tests/firewall/golden/ is
// one case, a configuration root shaped like /etc/pve (firewall/cluster.fw,
// nodes/node1/host.fw, nodes/node1/{qemu-server,lxc}/<vmid>.conf, firewall/<vmid>.fw,
// sdn/firewall/<vnet>.fw, corosync.conf) loaded for node "node1" and compiled. Expected outputs:
//   expected.nft       nft::to_nft_text of the compiled ruleset
//   expected.warnings  load and compile warnings, one per line
//   expected.error     Error::to_string() when loading or compiling fails (instead of the two)
// An optional `options` file holds `strategy=br-netfilter|bridge-conntrack`,
// `layout=bridge|netdev`, `shards=N`,
// `now=<unix time>`, `local_network=CIDR[,CIDR...]` (the detected local networks),
// `ovs_bridge=NAME[,NAME...]` (the guest bridges that are Open vSwitch bridges),
// `vlan_aware_bridge=NAME[,NAME...]` (those with VLAN filtering) and
// `firewall_bridged=DEVICE[,DEVICE...]` (guest ports found on their fwbr<vmid>i<N>), one per
// line; the defaults are br-netfilter, 2 shards, now=0, no detected network and plain bridges.
// MOAT_UPDATE_GOLDEN=1 rewrites the expected files (and removes the ones that no longer apply).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "harness/golden.h"
#include "moat/base/file.h"
#include "moat/base/ip.h"
#include "moat/base/strings.h"
#include "moat/firewall/compiler.h"
#include "moat/firewall/nft_text.h"
#include "moat/firewall/nic_bridges.h"
#include "moat/firewall/parser.h"

namespace moat::firewall {
namespace {

namespace fs = std::filesystem;

fs::path golden_root() { return moat::testing::source_path("tests/firewall/golden"); }

std::vector<std::string> golden_cases() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(golden_root(), ec))
    if (entry.is_directory()) out.push_back(entry.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool updating() {
  const char* update = std::getenv("MOAT_UPDATE_GOLDEN");
  return update != nullptr && std::string(update) == "1";
}

// Reads the case's `options` file into `options` and `kinds` (the bridges that are OVS or
// VLAN-aware, for plug_nics()); a malformed line fails the test.
void read_case_options(const fs::path& dir, CompileOptions& options, BridgeKinds& kinds) {
  std::error_code ec;
  if (!fs::exists(dir / "options", ec)) return;
  auto text = read_file(dir / "options");
  ASSERT_TRUE(text) << text.error().to_string();
  int number = 0;
  for (auto raw : split(*text, '\n')) {
    ++number;
    auto line = trim(raw);
    if (line.empty() || line.starts_with('#')) continue;
    auto eq = line.find('=');
    ASSERT_NE(eq, std::string_view::npos) << "options:" << number << ": expected key=value";
    auto key = trim(line.substr(0, eq));
    auto value = trim(line.substr(eq + 1));
    if (key == "strategy" && value == "bridge-conntrack") {
      options.strategy = GuestStrategy::BridgeConntrack;
    } else if (key == "strategy" && value == "br-netfilter") {
      options.strategy = GuestStrategy::BrNetfilter;
    } else if (key == "layout" && parse_guest_layout(value)) {
      options.layout = *parse_guest_layout(value);
    } else if (key == "shards" && parse_uint(value)) {
      options.shards = static_cast<int>(*parse_uint(value));
    } else if (key == "now" && parse_uint(value)) {
      options.now = static_cast<int64_t>(*parse_uint(value));
    } else if (key == "local_network") {
      for (auto cidr : split(value, ',')) {
        auto range = parse_ip_range(trim(cidr));
        ASSERT_TRUE(range) << "options:" << number << ": " << range.error().to_string();
        options.local_networks.push_back(*range);
      }
    } else if (key == "ovs_bridge" || key == "vlan_aware_bridge" || key == "firewall_bridged") {
      auto& names = key == "ovs_bridge"          ? kinds.ovs
                    : key == "vlan_aware_bridge" ? kinds.vlan_aware
                                                 : kinds.firewall_bridged;
      for (auto name : split(value, ',')) names.insert(std::string(trim(name)));
    } else {
      FAIL() << "options:" << number << ": unknown option '" << line << "'";
    }
  }
}

class CompileGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CompileGoldenTest, MatchesExpectedOutput) {
  const fs::path dir = golden_root() / GetParam();
  // Most cases pin the bridge layout (their expected files predate the netdev layout);
  // `layout=netdev` cases cover the default.
  CompileOptions options{
      .strategy = GuestStrategy::BrNetfilter, .layout = GuestLayout::Bridge, .shards = 2, .now = 0};
  BridgeKinds kinds;
  read_case_options(dir, options, kinds);
  if (::testing::Test::HasFatalFailure()) return;

  std::optional<std::string> error;
  std::string nft, warnings;
  auto loaded = load_config(dir, "node1");
  if (!loaded) {
    error = loaded.error().to_string();
  } else {
    plug_nics(loaded->config, kinds);
    auto compiled = compile(loaded->config, options);
    if (!compiled) {
      error = compiled.error().to_string();
    } else {
      nft = nft::to_nft_text(compiled->ruleset);
      for (const auto& w : loaded->warnings) warnings += w + "\n";
      for (const auto& w : compiled->warnings) warnings += w + "\n";
    }
  }

  std::error_code ec;
  if (error) {
    moat::testing::expect_golden(dir / "expected.error", *error + "\n");
    for (const char* stale : {"expected.nft", "expected.warnings"}) {
      if (updating()) fs::remove(dir / stale, ec);
      EXPECT_FALSE(fs::exists(dir / stale, ec)) << GetParam() << " failed with: " << *error;
    }
  } else {
    moat::testing::expect_golden(dir / "expected.nft", nft);
    moat::testing::expect_golden(dir / "expected.warnings", warnings);
    if (updating()) fs::remove(dir / "expected.error", ec);
    EXPECT_FALSE(fs::exists(dir / "expected.error", ec))
        << GetParam() << " expects an error but compiled";
  }
}

// Test names from directory names: letters and digits only, so keep [A-Za-z0-9] and map the
// rest to '_'.
std::string case_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, CompileGoldenTest, ::testing::ValuesIn(golden_cases()), case_name);

// Guards against the suite passing vacuously: the cases are there, and each has an expectation.
TEST(CompileGoldenSuiteTest, EveryCaseDirectoryHasAnExpectation) {
  auto cases = golden_cases();
  EXPECT_GE(cases.size(), 30u) << "golden cases missing under " << golden_root();
  std::error_code ec;
  for (const auto& c : cases) {
    bool nft = fs::exists(golden_root() / c / "expected.nft", ec);
    bool err = fs::exists(golden_root() / c / "expected.error", ec);
    EXPECT_TRUE(nft != err || updating()) << c << ": needs exactly one of expected.nft and "
                                          << "expected.error";
  }
}

}  // namespace
}  // namespace moat::firewall
