#include "moat/firewall/parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace moat::firewall {
namespace {

// Expects `r` to be an InvalidConfig error at file:line:column whose message quotes or names
// `token` (the offending text), so the operator sees both where and what.
template <class T>
::testing::AssertionResult FailsAt(const Result<T>& r, int line, int column, std::string_view token,
                                   std::string_view file = "t.fw") {
  if (r) return ::testing::AssertionFailure() << "parsed without error";
  const Error& e = r.error();
  if (e.code() != ErrorCode::InvalidConfig)
    return ::testing::AssertionFailure() << "code " << to_string(e.code()) << ": " << e.to_string();
  if (!e.where()) return ::testing::AssertionFailure() << "no source location: " << e.to_string();
  if (e.where()->file != file || e.where()->line != line || e.where()->column != column)
    return ::testing::AssertionFailure()
           << "expected " << file << ":" << line << ":" << column << ", got " << e.to_string();
  if (e.message().find(token) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message does not name '" << token << "': " << e.to_string();
  return ::testing::AssertionSuccess();
}

const SourceLocation kWhere{"t.fw", 1, 0};

Result<Rule> rule(std::string_view line, FwFileKind kind = FwFileKind::Cluster,
                  bool in_group = false) {
  return parse_rule(line, kind, in_group, kWhere);
}

// A successfully parsed rule, or a failed test with the error.
Rule ok_rule(std::string_view line, FwFileKind kind = FwFileKind::Cluster, bool in_group = false) {
  auto r = rule(line, kind, in_group);
  EXPECT_TRUE(r) << line << ": " << r.error().to_string();
  return r ? *r : Rule{};
}

std::vector<PortRange> ports(std::initializer_list<std::pair<int, int>> ranges) {
  std::vector<PortRange> out;
  for (auto [lo, hi] : ranges)
    out.push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)});
  return out;
}

std::vector<std::string> literal_text(const AddressMatch& a) {
  std::vector<std::string> out;
  for (const auto& r : a.literal) out.push_back(r.to_string());
  return out;
}

// ---- options: values and defaults per level ----

TEST(ParserOptionsTest, ClusterDefaultsWhenNothingIsSet) {
  for (std::string_view text : {"", "[OPTIONS]\n", "# only a comment\n\n"}) {
    auto fw = parse_cluster_fw(text, "cluster.fw");
    ASSERT_TRUE(fw) << fw.error().to_string();
    const ClusterOptions& o = fw->options;
    EXPECT_EQ(o.enable, 0);
    EXPECT_TRUE(o.ebtables);
    EXPECT_EQ(o.policy_in, Verdict::Drop);
    EXPECT_EQ(o.policy_out, Verdict::Accept);
    EXPECT_EQ(o.policy_forward, Verdict::Accept);
    EXPECT_TRUE(o.log_ratelimit.enable);
    EXPECT_EQ(o.log_ratelimit.rate, 1u);
    EXPECT_EQ(o.log_ratelimit.unit, "second");
    EXPECT_EQ(o.log_ratelimit.burst, 5u);
    EXPECT_EQ(fw->file, "cluster.fw");
    EXPECT_TRUE(fw->rules.empty());
    EXPECT_TRUE(fw->aliases.empty());
    EXPECT_TRUE(fw->ipsets.empty());
    EXPECT_TRUE(fw->groups.empty());
  }
}

TEST(ParserOptionsTest, ClusterParsesEveryOption) {
  auto fw = parse_cluster_fw(
      "[OPTIONS]\n"
      "enable: 1\n"
      "ebtables: 0\n"
      "policy_in: ACCEPT\n"
      "policy_out: REJECT\n"
      "policy_forward: DROP\n"
      "log_ratelimit: enable=1,rate=2/minute,burst=10\n",
      "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  const ClusterOptions& o = fw->options;
  EXPECT_EQ(o.enable, 1);
  EXPECT_FALSE(o.ebtables);
  EXPECT_EQ(o.policy_in, Verdict::Accept);
  EXPECT_EQ(o.policy_out, Verdict::Reject);
  EXPECT_EQ(o.policy_forward, Verdict::Drop);
  EXPECT_TRUE(o.log_ratelimit.enable);
  EXPECT_EQ(o.log_ratelimit.rate, 2u);
  EXPECT_EQ(o.log_ratelimit.unit, "minute");
  EXPECT_EQ(o.log_ratelimit.burst, 10u);
}

TEST(ParserOptionsTest, ClusterEnableKeepsAnAntiLockoutTimestamp) {
  auto fw = parse_cluster_fw("[OPTIONS]\nenable: 1700000000\n", "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_EQ(fw->options.enable, 1700000000);
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[OPTIONS]\nenable: yes\n", "t.fw"), 2, 9, "yes"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[OPTIONS]\nenable: -1\n", "t.fw"), 2, 9, "-1"));
}

TEST(ParserOptionsTest, ClusterLogRatelimitForms) {
  struct Case {
    std::string value;
    bool enable;
    uint32_t rate;
    std::string unit;
    uint32_t burst;
  };
  for (const Case& c : std::vector<Case>{
           {"0", false, 1, "second", 5},
           {"enable=0", false, 1, "second", 5},
           {"1", true, 1, "second", 5},
           {"1,burst=20", true, 1, "second", 20},
           {"enable=1,rate=3/hour", true, 3, "hour", 5},
           {"rate=7/day,burst=100", true, 7, "day", 100},
           {"rate=4", true, 4, "second", 5},
           {"burst=1,rate=9/second,enable=1", true, 9, "second", 1},
       }) {
    auto fw = parse_cluster_fw("[OPTIONS]\nlog_ratelimit: " + c.value + "\n", "cluster.fw");
    ASSERT_TRUE(fw) << c.value << ": " << fw.error().to_string();
    const LogRateLimit& r = fw->options.log_ratelimit;
    EXPECT_EQ(r.enable, c.enable) << c.value;
    EXPECT_EQ(r.rate, c.rate) << c.value;
    EXPECT_EQ(r.unit, c.unit) << c.value;
    EXPECT_EQ(r.burst, c.burst) << c.value;
  }
}

TEST(ParserOptionsTest, ClusterLogRatelimitRejectsBadParts) {
  // "log_ratelimit: " is 15 characters: the value starts at column 16.
  auto bad = [](const std::string& v) {
    return parse_cluster_fw("[OPTIONS]\nlog_ratelimit: " + v + "\n", "t.fw");
  };
  EXPECT_TRUE(FailsAt(bad("maybe"), 2, 16, "maybe"));
  EXPECT_TRUE(FailsAt(bad("1,burst=0"), 2, 24, "0"));
  EXPECT_TRUE(FailsAt(bad("1,burst=101"), 2, 24, "101"));
  EXPECT_TRUE(FailsAt(bad("rate=0/second"), 2, 21, "0/second"));
  EXPECT_TRUE(FailsAt(bad("rate=1/week"), 2, 21, "1/week"));
  EXPECT_TRUE(FailsAt(bad("1,speed=3"), 2, 18, "speed"));
  EXPECT_TRUE(FailsAt(bad("1,0"), 2, 18, "0"));
}

TEST(ParserOptionsTest, HostDefaultsWhenNothingIsSet) {
  auto fw = parse_host_fw("", "host.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  const HostOptions& o = fw->options;
  EXPECT_TRUE(o.enable);
  EXPECT_FALSE(o.nftables);
  EXPECT_TRUE(o.nosmurfs);
  EXPECT_FALSE(o.tcpflags);
  EXPECT_TRUE(o.ndp);
  EXPECT_FALSE(o.nf_conntrack_allow_invalid);
  EXPECT_FALSE(o.protection_synflood);
  EXPECT_EQ(o.protection_synflood_rate, 200u);
  EXPECT_EQ(o.protection_synflood_burst, 1000u);
  EXPECT_FALSE(o.log_nf_conntrack);
  EXPECT_EQ(o.log_level_in, LogLevel::Nolog);
  EXPECT_EQ(o.log_level_out, LogLevel::Nolog);
  EXPECT_EQ(o.log_level_forward, LogLevel::Nolog);
  EXPECT_EQ(o.smurf_log_level, LogLevel::Nolog);
  EXPECT_EQ(o.tcp_flags_log_level, LogLevel::Nolog);
  EXPECT_FALSE(o.nf_conntrack_max);
  EXPECT_FALSE(o.nf_conntrack_tcp_timeout_established);
  EXPECT_FALSE(o.nf_conntrack_tcp_timeout_syn_recv);
  EXPECT_TRUE(o.nf_conntrack_helpers.empty());
}

TEST(ParserOptionsTest, HostParsesEveryOption) {
  auto fw = parse_host_fw(
      "[OPTIONS]\n"
      "enable: 0\n"
      "nftables: 1\n"
      "nosmurfs: 0\n"
      "tcpflags: 1\n"
      "ndp: 0\n"
      "nf_conntrack_allow_invalid: 1\n"
      "protection_synflood: 1\n"
      "protection_synflood_rate: 50\n"
      "protection_synflood_burst: 70\n"
      "log_nf_conntrack: 1\n"
      "log_level_in: info\n"
      "log_level_out: warning\n"
      "log_level_forward: err\n"
      "smurf_log_level: crit\n"
      "tcp_flags_log_level: debug\n"
      "nf_conntrack_max: 32768\n"
      "nf_conntrack_tcp_timeout_established: 7875\n"
      "nf_conntrack_tcp_timeout_syn_recv: 30\n"
      "nf_conntrack_helpers: ftp,tftp,sip\n",
      "host.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  const HostOptions& o = fw->options;
  EXPECT_FALSE(o.enable);
  EXPECT_TRUE(o.nftables);
  EXPECT_FALSE(o.nosmurfs);
  EXPECT_TRUE(o.tcpflags);
  EXPECT_FALSE(o.ndp);
  EXPECT_TRUE(o.nf_conntrack_allow_invalid);
  EXPECT_TRUE(o.protection_synflood);
  EXPECT_EQ(o.protection_synflood_rate, 50u);
  EXPECT_EQ(o.protection_synflood_burst, 70u);
  EXPECT_TRUE(o.log_nf_conntrack);
  EXPECT_EQ(o.log_level_in, LogLevel::Info);
  EXPECT_EQ(o.log_level_out, LogLevel::Warning);
  EXPECT_EQ(o.log_level_forward, LogLevel::Err);
  EXPECT_EQ(o.smurf_log_level, LogLevel::Crit);
  EXPECT_EQ(o.tcp_flags_log_level, LogLevel::Debug);
  EXPECT_EQ(o.nf_conntrack_max, 32768u);
  EXPECT_EQ(o.nf_conntrack_tcp_timeout_established, 7875u);
  EXPECT_EQ(o.nf_conntrack_tcp_timeout_syn_recv, 30u);
  EXPECT_EQ(o.nf_conntrack_helpers, (std::vector<std::string>{"ftp", "tftp", "sip"}));
}

TEST(ParserOptionsTest, HostRejectsNumbersOutOfRange) {
  auto bad = [](const std::string& line) {
    return parse_host_fw("[OPTIONS]\n" + line + "\n", "t.fw");
  };
  EXPECT_TRUE(FailsAt(bad("nf_conntrack_max: 32767"), 2, 19, "32767"));
  EXPECT_TRUE(FailsAt(bad("nf_conntrack_tcp_timeout_established: 7874"), 2, 39, "7874"));
  EXPECT_TRUE(FailsAt(bad("nf_conntrack_tcp_timeout_syn_recv: 61"), 2, 36, "61"));
  EXPECT_TRUE(FailsAt(bad("nf_conntrack_tcp_timeout_syn_recv: 29"), 2, 36, "29"));
  EXPECT_TRUE(FailsAt(bad("protection_synflood_rate: 0"), 2, 27, "0"));
  EXPECT_TRUE(FailsAt(bad("protection_synflood_burst: lots"), 2, 28, "lots"));
}

TEST(ParserOptionsTest, HostRejectsUnknownConntrackHelper) {
  // "nf_conntrack_helpers: " is 22 characters; "ftp," puts "gopher" at column 27.
  EXPECT_TRUE(FailsAt(parse_host_fw("[OPTIONS]\nnf_conntrack_helpers: ftp,gopher\n", "t.fw"), 2, 27,
                      "gopher"));
}

TEST(ParserOptionsTest, GuestDefaultsWhenNothingIsSet) {
  auto fw = parse_guest_fw("", "100.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  const GuestOptions& o = fw->options;
  EXPECT_FALSE(o.enable);
  EXPECT_TRUE(o.macfilter);
  EXPECT_FALSE(o.ipfilter);
  EXPECT_TRUE(o.dhcp);  // allowed unless set to 0, as both implementations do
  EXPECT_TRUE(o.ndp);
  EXPECT_FALSE(o.radv);
  EXPECT_EQ(o.policy_in, Verdict::Drop);
  EXPECT_EQ(o.policy_out, Verdict::Accept);
  EXPECT_EQ(o.log_level_in, LogLevel::Nolog);
  EXPECT_EQ(o.log_level_out, LogLevel::Nolog);
}

TEST(ParserOptionsTest, GuestParsesEveryOption) {
  auto fw = parse_guest_fw(
      "[OPTIONS]\n"
      "enable: 1\n"
      "macfilter: 0\n"
      "ipfilter: 1\n"
      "dhcp: 0\n"
      "ndp: 0\n"
      "radv: 1\n"
      "policy_in: REJECT\n"
      "policy_out: DROP\n"
      "log_level_in: notice\n"
      "log_level_out: alert\n",
      "100.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  const GuestOptions& o = fw->options;
  EXPECT_TRUE(o.enable);
  EXPECT_FALSE(o.macfilter);
  EXPECT_TRUE(o.ipfilter);
  EXPECT_FALSE(o.dhcp);
  EXPECT_FALSE(o.ndp);
  EXPECT_TRUE(o.radv);
  EXPECT_EQ(o.policy_in, Verdict::Reject);
  EXPECT_EQ(o.policy_out, Verdict::Drop);
  EXPECT_EQ(o.log_level_in, LogLevel::Notice);
  EXPECT_EQ(o.log_level_out, LogLevel::Alert);
}

TEST(ParserOptionsTest, GuestAcceptsPerlOnlyOptionsWithoutEffect) {
  auto fw = parse_guest_fw(
      "[OPTIONS]\nips: 1\nips_queues: 0:3\nlayer2_protocols: ARP,IPv4,IPv6\nenable: 1\n", "100.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_TRUE(fw->options.enable);
  // Still only once each.
  EXPECT_TRUE(FailsAt(parse_guest_fw("[OPTIONS]\nips: 1\nips: 0\n", "t.fw"), 3, 1, "ips"));
}

TEST(ParserOptionsTest, VnetDefaultsAndEveryOption) {
  auto defaults = parse_vnet_fw("", "vnet0.fw");
  ASSERT_TRUE(defaults) << defaults.error().to_string();
  EXPECT_FALSE(defaults->options.enable);
  EXPECT_EQ(defaults->options.policy_forward, Verdict::Accept);
  EXPECT_EQ(defaults->options.log_level_forward, LogLevel::Nolog);

  auto fw = parse_vnet_fw("[OPTIONS]\nenable: 1\npolicy_forward: DROP\nlog_level_forward: info\n",
                          "vnet0.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_TRUE(fw->options.enable);
  EXPECT_EQ(fw->options.policy_forward, Verdict::Drop);
  EXPECT_EQ(fw->options.log_level_forward, LogLevel::Info);
}

TEST(ParserOptionsTest, PolicyForwardRejectsReject) {
  EXPECT_TRUE(
      FailsAt(parse_vnet_fw("[OPTIONS]\npolicy_forward: REJECT\n", "t.fw"), 2, 17, "REJECT"));
  EXPECT_TRUE(
      FailsAt(parse_cluster_fw("[OPTIONS]\npolicy_forward: REJECT\n", "t.fw"), 2, 17, "REJECT"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[OPTIONS]\npolicy_in: DENY\n", "t.fw"), 2, 12, "DENY"));
}

TEST(ParserOptionsTest, BooleansAcceptEverySpelling) {
  struct Spelling {
    std::string text;
    bool value;
  };
  const std::vector<Spelling> spellings = {
      {"1", true},   {"true", true},   {"on", true},   {"yes", true},    {"TRUE", true},
      {"On", true},  {"YES", true},    {"0", false},   {"false", false}, {"off", false},
      {"no", false}, {"FALSE", false}, {"Off", false}, {"NO", false}};
  for (const auto& s : spellings) {
    // Each level with a boolean whose default is the opposite of the value.
    std::string v = s.value ? "1" : "0";
    auto host =
        parse_host_fw("[OPTIONS]\nenable: " + s.text + "\ntcpflags: " + s.text + "\n", "host.fw");
    ASSERT_TRUE(host) << s.text << ": " << host.error().to_string();
    EXPECT_EQ(host->options.enable, s.value) << s.text;
    EXPECT_EQ(host->options.tcpflags, s.value) << s.text;
    auto guest =
        parse_guest_fw("[OPTIONS]\nmacfilter: " + s.text + "\nradv: " + s.text + "\n", "100.fw");
    ASSERT_TRUE(guest) << s.text << ": " << guest.error().to_string();
    EXPECT_EQ(guest->options.macfilter, s.value) << s.text;
    EXPECT_EQ(guest->options.radv, s.value) << s.text;
    auto vnet = parse_vnet_fw("[OPTIONS]\nenable: " + s.text + "\n", "vnet0.fw");
    ASSERT_TRUE(vnet) << s.text << ": " << vnet.error().to_string();
    EXPECT_EQ(vnet->options.enable, s.value) << s.text;
    auto cluster = parse_cluster_fw("[OPTIONS]\nebtables: " + s.text + "\n", "cluster.fw");
    ASSERT_TRUE(cluster) << s.text << ": " << cluster.error().to_string();
    EXPECT_EQ(cluster->options.ebtables, s.value) << s.text;
  }
}

TEST(ParserOptionsTest, RejectsBadBoolean) {
  EXPECT_TRUE(
      FailsAt(parse_guest_fw("[OPTIONS]\nenable: 1\nmacfilter: maybe\n", "t.fw"), 3, 12, "maybe"));
  EXPECT_TRUE(FailsAt(parse_host_fw("[OPTIONS]\n  ndp:   2\n", "t.fw"), 2, 10, "2"));
}

TEST(ParserOptionsTest, EveryLogLevelParses) {
  const std::vector<std::pair<std::string, LogLevel>> levels = {
      {"emerg", LogLevel::Emerg}, {"alert", LogLevel::Alert},     {"crit", LogLevel::Crit},
      {"err", LogLevel::Err},     {"warning", LogLevel::Warning}, {"notice", LogLevel::Notice},
      {"info", LogLevel::Info},   {"debug", LogLevel::Debug},     {"nolog", LogLevel::Nolog}};
  for (const auto& [name, level] : levels) {
    auto fw = parse_guest_fw("[OPTIONS]\nlog_level_in: " + name + "\n", "100.fw");
    ASSERT_TRUE(fw) << name << ": " << fw.error().to_string();
    EXPECT_EQ(fw->options.log_level_in, level) << name;
    EXPECT_STREQ(to_string(level), name.c_str());
    EXPECT_EQ(ok_rule("IN ACCEPT -log " + name).log, level) << name;
  }
}

TEST(ParserOptionsTest, RejectsUnknownLogLevel) {
  EXPECT_TRUE(
      FailsAt(parse_host_fw("[OPTIONS]\nlog_level_in: verbose\n", "t.fw"), 2, 15, "verbose"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -log loud"), 1, 16, "loud"));
}

TEST(ParserOptionsTest, RejectsUnknownOption) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[OPTIONS]\nenable: 1\npolicy_fwd: DROP\n", "t.fw"), 3, 1,
                      "policy_fwd"));
  // Each level knows only its own options.
  EXPECT_TRUE(
      FailsAt(parse_guest_fw("[OPTIONS]\npolicy_forward: DROP\n", "t.fw"), 2, 1, "policy_forward"));
  EXPECT_TRUE(FailsAt(parse_vnet_fw("[OPTIONS]\npolicy_in: DROP\n", "t.fw"), 2, 1, "policy_in"));
  EXPECT_TRUE(FailsAt(parse_host_fw("[OPTIONS]\nmacfilter: 0\n", "t.fw"), 2, 1, "macfilter"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[OPTIONS]\nndp: 0\n", "t.fw"), 2, 1, "ndp"));
}

TEST(ParserOptionsTest, RejectsDuplicateOption) {
  EXPECT_TRUE(
      FailsAt(parse_guest_fw("[OPTIONS]\nenable: 1\npolicy_in: DROP\n  enable: 0\n", "t.fw"), 4, 3,
              "enable"));
  // Also across two [OPTIONS] sections of one file.
  EXPECT_TRUE(FailsAt(parse_host_fw("[OPTIONS]\nndp: 1\n[RULES]\n[OPTIONS]\nndp: 1\n", "t.fw"), 5,
                      1, "ndp"));
}

TEST(ParserOptionsTest, RejectsOptionWithoutValue) {
  EXPECT_TRUE(FailsAt(parse_guest_fw("[OPTIONS]\nenable:\n", "t.fw"), 2, 1, "enable"));
  EXPECT_TRUE(FailsAt(parse_guest_fw("[OPTIONS]\nenable:   \n", "t.fw"), 2, 1, "enable"));
  EXPECT_TRUE(FailsAt(parse_guest_fw("[OPTIONS]\nenable 1\n", "t.fw"), 2, 1, "enable 1"));
}

// ---- sections ----

TEST(ParserSectionsTest, SectionNamesAreCaseInsensitiveAndMayCarryComments) {
  auto fw = parse_cluster_fw(
      "[options]\n"
      "enable: 1\n"
      "[Aliases]\n"
      "net1 10.0.0.0/8\n"
      "[ipset Admins] # the admins\n"
      "10.1.1.1\n"
      "[GROUP Web] # web tier\n"
      "IN ACCEPT\n"
      "[rules] # cluster rules\n"
      "OUT DROP\n",
      "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_EQ(fw->options.enable, 1);
  EXPECT_TRUE(fw->aliases.contains("net1"));
  ASSERT_TRUE(fw->ipsets.contains("admins"));
  EXPECT_EQ(fw->ipsets.at("admins").comment, "the admins");
  ASSERT_TRUE(fw->groups.contains("web"));
  EXPECT_EQ(fw->groups.at("web").comment, "web tier");
  ASSERT_EQ(fw->rules.size(), 1u);
  EXPECT_EQ(fw->rules[0].direction, Direction::Out);
}

TEST(ParserSectionsTest, SkipsBlankLinesAndComments) {
  auto fw = parse_guest_fw(
      "# header comment\n"
      "\n"
      "[RULES]\n"
      "   # indented comment\n"
      "\t\n"
      "IN ACCEPT\n",
      "100.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  ASSERT_EQ(fw->rules.size(), 1u);
  EXPECT_EQ(fw->rules[0].where, (SourceLocation{"100.fw", 6, 0}));
}

TEST(ParserSectionsTest, RejectsUnknownSection) {
  EXPECT_TRUE(
      FailsAt(parse_cluster_fw("[OPTIONS]\nenable: 1\n[POLICY]\n", "t.fw"), 3, 2, "[POLICY]"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET]\n", "t.fw"), 1, 2, "[IPSET]"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("  [RULES extra]\n", "t.fw"), 1, 4, "[RULES extra]"));
}

TEST(ParserSectionsTest, RejectsSectionNotAllowedInTheFileKind) {
  EXPECT_TRUE(
      FailsAt(parse_guest_fw("[OPTIONS]\nenable: 1\n[group web]\n", "t.fw"), 3, 2, "[group web]"));
  EXPECT_TRUE(FailsAt(parse_host_fw("[ALIASES]\n", "t.fw"), 1, 2, "[ALIASES]"));
  EXPECT_TRUE(FailsAt(parse_host_fw("[IPSET x1]\n", "t.fw"), 1, 2, "[IPSET x1]"));
  EXPECT_TRUE(FailsAt(parse_host_fw("[group web]\n", "t.fw"), 1, 2, "[group web]"));
  EXPECT_TRUE(FailsAt(parse_vnet_fw("[RULES]\n[ALIASES]\n", "t.fw"), 2, 2, "[ALIASES]"));
  EXPECT_TRUE(FailsAt(parse_vnet_fw("[IPSET x1]\n", "t.fw"), 1, 2, "[IPSET x1]"));
  EXPECT_TRUE(FailsAt(parse_vnet_fw("[group web]\n", "t.fw"), 1, 2, "[group web]"));
}

TEST(ParserSectionsTest, RejectsMalformedHeaders) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[RULES\n", "t.fw"), 1, 1, "[RULES"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[RULES] IN ACCEPT\n", "t.fw"), 1, 9, "IN ACCEPT"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET 1abc]\n", "t.fw"), 1, 8, "1abc"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a]\n", "t.fw"), 1, 8, "'a'"));
  // Group names are capped at 18 characters (Perl's 28-character chain names).
  EXPECT_TRUE(parse_cluster_fw("[group abcdefghijklmnopqr]\n", "t.fw"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[group abcdefghijklmnopqrs]\n", "t.fw"), 1, 8,
                      "abcdefghijklmnopqrs"));
}

TEST(ParserSectionsTest, RejectsLineOutsideAnySection) {
  EXPECT_TRUE(FailsAt(parse_guest_fw("# comment\n  IN ACCEPT\n", "t.fw"), 2, 3, "IN ACCEPT"));
  EXPECT_TRUE(FailsAt(parse_host_fw("enable: 1\n", "t.fw"), 1, 1, "enable: 1"));
}

// ---- rules ----

TEST(ParserRuleTest, ParsesAMinimalRule) {
  Rule r = ok_rule("IN ACCEPT");
  EXPECT_EQ(r.kind, Rule::Kind::Action);
  EXPECT_TRUE(r.enabled);
  EXPECT_EQ(r.direction, Direction::In);
  EXPECT_EQ(r.verdict, Verdict::Accept);
  EXPECT_TRUE(r.iface.empty());
  EXPECT_FALSE(r.source);
  EXPECT_FALSE(r.dest);
  EXPECT_FALSE(r.proto);
  EXPECT_TRUE(r.dport.empty());
  EXPECT_TRUE(r.sport.empty());
  EXPECT_FALSE(r.icmp);
  EXPECT_EQ(r.log, LogLevel::Nolog);
  EXPECT_TRUE(r.comment.empty());
  EXPECT_EQ(r.where, kWhere);
  EXPECT_EQ(ok_rule("OUT DROP").direction, Direction::Out);
  EXPECT_EQ(ok_rule("OUT DROP").verdict, Verdict::Drop);
  EXPECT_EQ(ok_rule("FORWARD ACCEPT").direction, Direction::Forward);
  EXPECT_EQ(ok_rule("IN REJECT").verdict, Verdict::Reject);
}

TEST(ParserRuleTest, ParsesEveryOptionWithOneOrTwoDashes) {
  for (std::string dash : {"-", "--"}) {
    std::string line = "IN DROP " + dash + "i vmbr0 " + dash + "source 10.0.0.0/8 " + dash +
                       "dest 192.0.2.1 " + dash + "p tcp " + dash + "dport 22 " + dash +
                       "sport 1024:65535 " + dash + "log info # all of them";
    Rule r = ok_rule(line);
    EXPECT_EQ(r.iface, "vmbr0") << line;
    ASSERT_TRUE(r.source) << line;
    EXPECT_EQ(literal_text(*r.source), std::vector<std::string>{"10.0.0.0/8"});
    ASSERT_TRUE(r.dest) << line;
    EXPECT_EQ(literal_text(*r.dest), std::vector<std::string>{"192.0.2.1"});
    EXPECT_EQ(r.proto, 6) << line;
    EXPECT_EQ(r.proto_text, "tcp") << line;
    EXPECT_EQ(r.dport, ports({{22, 22}})) << line;
    EXPECT_EQ(r.sport, ports({{1024, 65535}})) << line;
    EXPECT_EQ(r.log, LogLevel::Info) << line;
    EXPECT_EQ(r.comment, "all of them") << line;

    Rule icmp = ok_rule("IN ACCEPT " + dash + "p icmp " + dash + "icmp-type echo-request");
    ASSERT_TRUE(icmp.icmp);
    EXPECT_EQ(icmp.icmp->type, 8);
  }
}

TEST(ParserRuleTest, AcceptsLongOptionNamesForInterfaceAndProtocol) {
  for (std::string spelling : {"-iface", "--iface"})
    EXPECT_EQ(ok_rule("IN ACCEPT " + spelling + " eth0").iface, "eth0") << spelling;
  for (std::string spelling : {"-proto", "--proto"})
    EXPECT_EQ(ok_rule("IN ACCEPT " + spelling + " udp -dport 53").proto, 17) << spelling;
}

TEST(ParserRuleTest, AcceptsOptionsInAnyOrder) {
  Rule a = ok_rule("IN ACCEPT -log debug -dport 80 -source 10.0.0.1 -p tcp -i eth1");
  Rule b = ok_rule("IN ACCEPT -i eth1 -source 10.0.0.1 -p tcp -dport 80 -log debug");
  EXPECT_EQ(a.iface, b.iface);
  EXPECT_EQ(a.proto, b.proto);
  EXPECT_EQ(a.dport, b.dport);
  EXPECT_EQ(literal_text(*a.source), literal_text(*b.source));
  EXPECT_EQ(a.log, b.log);
}

TEST(ParserRuleTest, ParsesProtocolNamesAndNumbers) {
  EXPECT_EQ(ok_rule("IN ACCEPT -p udp").proto, 17);
  EXPECT_EQ(ok_rule("IN ACCEPT -p 47").proto, 47);
  EXPECT_EQ(ok_rule("IN ACCEPT -p gre").proto, 47);
  EXPECT_EQ(ok_rule("IN ACCEPT -p esp").proto, 50);
  EXPECT_EQ(ok_rule("IN ACCEPT -p icmpv6").proto, 58);
  EXPECT_EQ(ok_rule("IN ACCEPT -p ipv6-icmp").proto, 58);
  EXPECT_EQ(ok_rule("IN ACCEPT -p sctp -dport 2905").proto, 132);
  EXPECT_EQ(ok_rule("IN ACCEPT -p TCP").proto_text, "TCP");
}

TEST(ParserRuleTest, ParsesIcmpTypes) {
  Rule unreachable = ok_rule("IN ACCEPT -p icmp -icmp-type host-unreachable");
  ASSERT_TRUE(unreachable.icmp);
  EXPECT_FALSE(unreachable.icmp->v6);
  EXPECT_EQ(unreachable.icmp->type, 3);
  EXPECT_EQ(unreachable.icmp->code, 1);
  EXPECT_EQ(unreachable.icmp->text, "host-unreachable");

  Rule ns = ok_rule("IN ACCEPT -p icmpv6 -icmp-type neighbor-solicitation");
  ASSERT_TRUE(ns.icmp);
  EXPECT_TRUE(ns.icmp->v6);
  EXPECT_EQ(ns.icmp->type, 135);
  EXPECT_FALSE(ns.icmp->code);

  Rule numeric = ok_rule("IN ACCEPT -p ipv6-icmp -icmp-type 128");
  ASSERT_TRUE(numeric.icmp);
  EXPECT_EQ(numeric.icmp->type, 128);
}

TEST(ParserRuleTest, AcceptsLegacyIcmpTypeNameInDport) {
  Rule r = ok_rule("IN ACCEPT -p icmp -dport echo-request");
  ASSERT_TRUE(r.icmp);
  EXPECT_FALSE(r.icmp->v6);
  EXPECT_EQ(r.icmp->type, 8);
  EXPECT_TRUE(r.dport.empty());
  Rule v6 = ok_rule("OUT ACCEPT -p icmpv6 -dport echo-reply");
  ASSERT_TRUE(v6.icmp);
  EXPECT_TRUE(v6.icmp->v6);
  EXPECT_EQ(v6.icmp->type, 129);
}

TEST(ParserRuleTest, MacroNamesAreCaseInsensitiveAndStoredCanonically) {
  struct Case {
    std::string written;
    std::string canonical;
    Verdict verdict;
  };
  for (const Case& c : std::vector<Case>{{"ssh(ACCEPT)", "SSH", Verdict::Accept},
                                         {"SSH(accept)", "SSH", Verdict::Accept},
                                         {"spiceproxy(DROP)", "SPICEproxy", Verdict::Drop},
                                         {"http/3(REJECT)", "HTTP/3", Verdict::Reject},
                                         {"PING(Drop)", "Ping", Verdict::Drop},
                                         {"ceph(ACCEPT)", "Ceph", Verdict::Accept}}) {
    Rule r = ok_rule("IN " + c.written);
    EXPECT_EQ(r.kind, Rule::Kind::Macro) << c.written;
    EXPECT_EQ(r.macro, c.canonical) << c.written;
    EXPECT_EQ(r.verdict, c.verdict) << c.written;
    EXPECT_FALSE(r.proto) << c.written;  // the macro's protocols are expanded by the compiler
  }
}

TEST(ParserRuleTest, MacroRulesTakeTheOptionsTheMacroLeavesOpen) {
  Rule r = ok_rule("IN SSH(ACCEPT) -i eth0 -source +dc/admins -dest 10.0.0.1 -log info");
  EXPECT_EQ(r.macro, "SSH");
  EXPECT_EQ(r.iface, "eth0");
  ASSERT_TRUE(r.source);
  EXPECT_EQ(r.source->name, "admins");
  EXPECT_EQ(r.log, LogLevel::Info);
  // SSH fixes the protocol and the destination port, not the source port: no -p needed.
  Rule sport = ok_rule("IN SSH(ACCEPT) -sport 1024:65535");
  EXPECT_EQ(sport.sport, ports({{1024, 65535}}));
  EXPECT_FALSE(sport.proto);
}

TEST(ParserRuleTest, ParsesGroupRules) {
  Rule g = ok_rule("GROUP webserver");
  EXPECT_EQ(g.kind, Rule::Kind::Group);
  EXPECT_EQ(g.group, "webserver");
  EXPECT_TRUE(g.iface.empty());
  Rule gi = ok_rule("GROUP WebServer -i net1 # web", FwFileKind::Guest);
  EXPECT_EQ(gi.group, "webserver");  // group names are lower-cased, like [group x] headers
  EXPECT_EQ(gi.iface, "net1");
  EXPECT_EQ(gi.comment, "web");
  EXPECT_EQ(ok_rule("GROUP web --iface vmbr0", FwFileKind::Host).iface, "vmbr0");
  EXPECT_EQ(ok_rule("GROUP web", FwFileKind::Vnet).kind, Rule::Kind::Group);
}

TEST(ParserRuleTest, GroupReferenceMatchesAMixedCaseGroupHeader) {
  auto fw = parse_cluster_fw("[group WebTier]\nIN ACCEPT\n[RULES]\nGROUP WebTier\n", "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  ASSERT_EQ(fw->rules.size(), 1u);
  EXPECT_TRUE(fw->groups.contains(fw->rules[0].group)) << fw->rules[0].group;
}

TEST(ParserRuleTest, ParsesDisabledRules) {
  Rule r = ok_rule("|IN ACCEPT -p tcp -dport 22");
  EXPECT_FALSE(r.enabled);
  EXPECT_EQ(r.direction, Direction::In);
  EXPECT_EQ(r.dport, ports({{22, 22}}));
  EXPECT_FALSE(ok_rule("| OUT DROP").enabled);
  EXPECT_FALSE(ok_rule("|GROUP web").enabled);
  EXPECT_FALSE(ok_rule("|IN SSH(ACCEPT) # off for now").enabled);
  // A disabled rule is still checked.
  EXPECT_TRUE(FailsAt(rule("|IN ACCEPT -dport 22"), 1, 19, "22"));
}

TEST(ParserRuleTest, CommentRunsFromTheFirstHash) {
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport 80 # web # and more #3").comment, "web # and more #3");
  EXPECT_EQ(ok_rule("IN ACCEPT #tight").comment, "tight");
  EXPECT_EQ(ok_rule("IN ACCEPT #").comment, "");
  auto fw = parse_guest_fw("[RULES]\nIN ACCEPT -p tcp -dport 443 # see ticket #6399\n", "100.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_EQ(fw->rules.at(0).comment, "see ticket #6399");
}

TEST(ParserRuleTest, DirectionsAllowedPerFileKind) {
  EXPECT_TRUE(rule("IN ACCEPT", FwFileKind::Guest));
  EXPECT_TRUE(rule("OUT ACCEPT", FwFileKind::Guest));
  EXPECT_TRUE(rule("GROUP web", FwFileKind::Guest));
  EXPECT_TRUE(rule("FORWARD ACCEPT", FwFileKind::Host));
  EXPECT_TRUE(rule("FORWARD ACCEPT", FwFileKind::Cluster));
  EXPECT_TRUE(rule("FORWARD DROP", FwFileKind::Cluster, /*in_group=*/true));
  EXPECT_TRUE(rule("FORWARD ACCEPT", FwFileKind::Vnet));
  EXPECT_TRUE(rule("GROUP web", FwFileKind::Vnet));
}

TEST(ParserRuleTest, RejectsForwardInAGuestFile) {
  auto fw = parse_guest_fw("[OPTIONS]\nenable: 1\n[RULES]\nIN ACCEPT\n  FORWARD ACCEPT\n", "t.fw");
  EXPECT_TRUE(FailsAt(fw, 5, 3, "FORWARD"));
}

TEST(ParserRuleTest, RejectsInAndOutInAVnetFile) {
  EXPECT_TRUE(FailsAt(parse_vnet_fw("[RULES]\nFORWARD ACCEPT\nIN ACCEPT\n", "t.fw"), 3, 1, "IN"));
  EXPECT_TRUE(FailsAt(rule("OUT DROP", FwFileKind::Vnet), 1, 1, "OUT"));
}

TEST(ParserRuleTest, RejectsRejectOnForward) {
  EXPECT_TRUE(FailsAt(rule("FORWARD REJECT -p tcp"), 1, 9, "REJECT"));
  EXPECT_TRUE(FailsAt(rule("FORWARD SSH(REJECT)", FwFileKind::Vnet), 1, 9, "REJECT"));
  EXPECT_TRUE(FailsAt(rule("FORWARD REJECT", FwFileKind::Cluster, true), 1, 9, "REJECT"));
}

TEST(ParserRuleTest, RejectsGroupRulesWhereTheyCannotBe) {
  EXPECT_TRUE(FailsAt(rule("GROUP other", FwFileKind::Cluster, /*in_group=*/true), 1, 1, "GROUP"));
  EXPECT_TRUE(FailsAt(rule("GROUP web -p tcp"), 1, 11, "-p"));
  EXPECT_TRUE(FailsAt(rule("GROUP web -log info"), 1, 11, "-log"));
  EXPECT_TRUE(FailsAt(rule("GROUP abcdefghijklmnopqrs"), 1, 7, "abcdefghijklmnopqrs"));
  EXPECT_TRUE(FailsAt(rule("GROUP 9web"), 1, 7, "9web"));
  EXPECT_TRUE(FailsAt(rule("GROUP"), 1, 1, "GROUP"));
  EXPECT_TRUE(
      FailsAt(parse_cluster_fw("[group web]\nIN ACCEPT\nGROUP web\n", "t.fw"), 3, 1, "GROUP"));
}

TEST(ParserRuleTest, RejectsUnknownDirectionOrAction) {
  EXPECT_TRUE(FailsAt(rule("INPUT ACCEPT"), 1, 1, "INPUT"));
  EXPECT_TRUE(FailsAt(rule("IN ALLOW -p tcp"), 1, 4, "ALLOW"));
  EXPECT_TRUE(FailsAt(rule("IN"), 1, 1, "IN"));
  EXPECT_TRUE(FailsAt(rule("IN SSH(ALLOW)"), 1, 4, "SSH(ALLOW)"));
  EXPECT_TRUE(FailsAt(rule("IN SSH(ACCEPT"), 1, 4, "SSH(ACCEPT"));
}

TEST(ParserRuleTest, RejectsUnknownMacro) {
  EXPECT_TRUE(FailsAt(rule("IN Gopher(ACCEPT) -source 10.0.0.1"), 1, 4, "Gopher"));
  auto fw = parse_cluster_fw("[RULES]\nIN SSH(ACCEPT)\n   OUT NoSuchThing(DROP)\n", "t.fw");
  EXPECT_TRUE(FailsAt(fw, 3, 8, "NoSuchThing"));
}

TEST(ParserRuleTest, RejectsMacroWithConflictingProtocolOrPorts) {
  EXPECT_TRUE(FailsAt(rule("IN SSH(ACCEPT) -p udp"), 1, 19, "udp"));
  EXPECT_TRUE(FailsAt(rule("IN SSH(ACCEPT) -dport 2222"), 1, 23, "2222"));
  EXPECT_TRUE(FailsAt(rule("IN DNS(ACCEPT) -p tcp -dport 53"), 1, 19, "tcp"));
  // DHCPfwd fixes the source port as well.
  EXPECT_TRUE(FailsAt(rule("IN DHCPfwd(ACCEPT) -sport 68"), 1, 27, "68"));
  // Ports on a macro with a protocol that has none (icmp, esp) are meaningless.
  EXPECT_TRUE(FailsAt(rule("IN Ping(ACCEPT) -dport 22"), 1, 24, "22"));
  EXPECT_TRUE(FailsAt(rule("IN IPsec(ACCEPT) -sport 4500"), 1, 25, "4500"));
}

TEST(ParserRuleTest, RejectsPortWithoutProtocol) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -dport 22"), 1, 18, "22"));
  EXPECT_TRUE(FailsAt(rule("OUT ACCEPT -source 10.0.0.1 -sport 53"), 1, 36, "53"));
  auto fw = parse_host_fw("[RULES]\nIN ACCEPT -p tcp -dport 22\nIN ACCEPT --dport 8006\n", "t.fw");
  EXPECT_TRUE(FailsAt(fw, 3, 19, "8006"));
}

TEST(ParserRuleTest, RejectsPortsOnAProtocolWithoutPorts) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p gre -dport 22"), 1, 25, "22"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p esp -sport 1"), 1, 25, "1"));
  // icmp has types, not ports: -sport is an error; -dport is the legacy type name.
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p icmp -sport 8"), 1, 26, "8"));
}

TEST(ParserRuleTest, RejectsDportWithIcmpUnlessItIsAnIcmpType) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p icmp -dport 80:90"), 1, 26, "80:90"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p icmpv6 -dport www"), 1, 28, "www"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p icmp -icmp-type echo-reply -dport echo-request"), 1, 30,
                      "echo-reply"));
}

TEST(ParserRuleTest, RejectsIcmpTypeWithoutIcmpProtocol) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -icmp-type echo-request"), 1, 22, "echo-request"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -icmp-type echo-request"), 1, 29, "echo-request"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p icmp -icmp-type neighbor-solicitation"), 1, 30,
                      "neighbor-solicitation"));
  EXPECT_TRUE(
      FailsAt(rule("IN ACCEPT -p icmpv6 -icmp-type source-quench"), 1, 32, "source-quench"));
}

TEST(ParserRuleTest, RejectsUnknownProtocol) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcpp -dport 22"), 1, 14, "tcpp"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p 256"), 1, 14, "256"));
}

TEST(ParserRuleTest, RejectsIcmpProtocolOfTheOtherFamily) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source 2001:db8::1 -p icmp"), 1, 34, "icmp"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p icmpv6 -dest 10.0.0.1"), 1, 14, "icmpv6"));
}

TEST(ParserRuleTest, RejectsSourceAndDestOfDifferentFamilies) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source 10.0.0.1 -dest 2001:db8::1"), 1, 34, "2001:db8::1"));
}

TEST(ParserRuleTest, RejectsMalformedOptions) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -proto udp"), 1, 18, "-proto"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -i eth0 -iface eth1"), 1, 19, "-iface"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -foo bar"), 1, 11, "-foo"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT tcp"), 1, 11, "tcp"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source"), 1, 11, "-source"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -dport"), 1, 18, "-dport"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -i abcdefghijklmnop"), 1, 14, "abcdefghijklmnop"));
}

TEST(ParserRuleTest, GuestInterfacesMustBeNetN) {
  EXPECT_EQ(ok_rule("IN ACCEPT -i net0", FwFileKind::Guest).iface, "net0");
  EXPECT_EQ(ok_rule("IN ACCEPT -i net31", FwFileKind::Guest).iface, "net31");
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -i eth0", FwFileKind::Guest), 1, 14, "eth0"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -i net32", FwFileKind::Guest), 1, 14, "net32"));
  EXPECT_TRUE(FailsAt(rule("GROUP web -i tap100i0", FwFileKind::Guest), 1, 14, "tap100i0"));
  auto fw = parse_guest_fw("[RULES]\nOUT DROP -p tcp -i eth0\n", "t.fw");
  EXPECT_TRUE(FailsAt(fw, 2, 20, "eth0"));
}

// ---- addresses ----

TEST(ParserAddressTest, ParsesIpSetReferences) {
  struct Case {
    std::string text;
    std::string scope;
    std::string name;
  };
  for (const Case& c : std::vector<Case>{{"+mgmt", "", "mgmt"},
                                         {"+Mgmt", "", "mgmt"},
                                         {"+dc/Mgmt", "dc", "mgmt"},
                                         {"+guest/ipfilter-net0", "guest", "ipfilter-net0"},
                                         {"+sdn/vnet1-all", "sdn", "vnet1-all"},
                                         {"+sdn/guest-ipam-100", "sdn", "guest-ipam-100"}}) {
    Rule r = ok_rule("IN ACCEPT -source " + c.text);
    ASSERT_TRUE(r.source) << c.text;
    EXPECT_EQ(r.source->kind, AddressMatch::Kind::IpSet) << c.text;
    EXPECT_EQ(r.source->scope, c.scope) << c.text;
    EXPECT_EQ(r.source->name, c.name) << c.text;
    EXPECT_EQ(r.source->text, c.text) << c.text;
  }
}

TEST(ParserAddressTest, ParsesAliasReferencesLowerCased) {
  struct Case {
    std::string text;
    std::string scope;
    std::string name;
  };
  for (const Case& c : std::vector<Case>{{"MyNet", "", "mynet"},
                                         {"local_network", "", "local_network"},
                                         {"dc/AdminNet", "dc", "adminnet"},
                                         {"guest/web-vip", "guest", "web-vip"},
                                         {"dead", "", "dead"}}) {
    Rule r = ok_rule("OUT ACCEPT -dest " + c.text);
    ASSERT_TRUE(r.dest) << c.text;
    EXPECT_EQ(r.dest->kind, AddressMatch::Kind::Alias) << c.text;
    EXPECT_EQ(r.dest->scope, c.scope) << c.text;
    EXPECT_EQ(r.dest->name, c.name) << c.text;
  }
}

TEST(ParserAddressTest, ParsesLiterals) {
  struct Case {
    std::string text;
    std::vector<std::string> ranges;
  };
  for (const Case& c : std::vector<Case>{
           {"192.0.2.7", {"192.0.2.7"}},
           {"10.1.0.0/16", {"10.1.0.0/16"}},
           {"10.1.2.3/16", {"10.1.0.0/16"}},  // host bits cleared, as Proxmox does
           {"2001:db8::/32", {"2001:db8::/32"}},
           {"fe80::1", {"fe80::1"}},
           {"10.0.0.1-10.0.0.9", {"10.0.0.1-10.0.0.9"}},
           {"2001:db8::1-2001:db8::ff", {"2001:db8::1-2001:db8::ff"}},
           {"10.0.0.1,10.2.0.0/24,192.0.2.7", {"10.0.0.1", "10.2.0.0/24", "192.0.2.7"}},
           {"2001:db8::1,2001:db8:1::/48", {"2001:db8::1", "2001:db8:1::/48"}}}) {
    Rule r = ok_rule("IN ACCEPT -source " + c.text);
    ASSERT_TRUE(r.source) << c.text;
    EXPECT_EQ(r.source->kind, AddressMatch::Kind::Literal) << c.text;
    EXPECT_EQ(literal_text(*r.source), c.ranges) << c.text;
    EXPECT_EQ(r.source->text, c.text);
  }
}

TEST(ParserAddressTest, RejectsBadCidr) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source 10.0.0.0/33"), 1, 19, "10.0.0.0/33"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -dest 300.1.1.1"), 1, 17, "300.1.1.1"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source 2001:db8::/129"), 1, 19, "2001:db8::/129"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source 10.0.0.9-10.0.0.1"), 1, 19, "10.0.0.9-10.0.0.1"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source 10.0.0.1,,10.0.0.2"), 1, 28, "10.0.0.1,,10.0.0.2"));
}

TEST(ParserAddressTest, RejectsMixedFamilyList) {
  EXPECT_TRUE(
      FailsAt(rule("IN ACCEPT -source 10.0.0.1,2001:db8::1,10.0.0.2"), 1, 28, "2001:db8::1"));
}

TEST(ParserAddressTest, RejectsRangeInsideAList) {
  EXPECT_TRUE(
      FailsAt(rule("IN ACCEPT -dest 10.0.0.1,10.0.0.5-10.0.0.7"), 1, 26, "10.0.0.5-10.0.0.7"));
}

TEST(ParserAddressTest, RejectsBadNames) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source +1set"), 1, 19, "+1set"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source +dc/"), 1, 19, "+dc/"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source dc/x"), 1, 19, "dc/x"));
  // sdn/ names are ipsets only.
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source sdn/vnet1-all"), 1, 19, "sdn/vnet1-all"));
  std::string long_list(520, '1');
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -source " + long_list), 1, 19, "512"));
}

// ---- ports ----

TEST(ParserPortTest, ParsesListsRangesAndServiceNames) {
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport 22,80,443").dport,
            ports({{22, 22}, {80, 80}, {443, 443}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport 5900:5999").dport, ports({{5900, 5999}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport 8006,5900:5999,3128").dport,
            ports({{8006, 8006}, {5900, 5999}, {3128, 3128}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport ssh,http,https").dport,
            ports({{22, 22}, {80, 80}, {443, 443}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p udp -dport domain").dport, ports({{53, 53}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport ssh:http").dport, ports({{22, 80}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p tcp -dport 0:65535").dport, ports({{0, 65535}}));
  EXPECT_EQ(ok_rule("IN ACCEPT -p udp -sport 53 -dport 1024:65535").sport, ports({{53, 53}}));
}

TEST(ParserPortTest, RejectsBackwardsPortRange) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -dport 22,100:10"), 1, 28, "100:10"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -sport http:ssh"), 1, 25, "http:ssh"));
}

TEST(ParserPortTest, RejectsBadPorts) {
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -dport 65536"), 1, 25, "65536"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -dport 22,nosuchsvc"), 1, 28, "nosuchsvc"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -dport 22:"), 1, 25, "22:"));
  EXPECT_TRUE(FailsAt(rule("IN ACCEPT -p tcp -dport 22,,80"), 1, 25, "22,,80"));
}

// ---- aliases, ipsets, groups ----

TEST(ParserAliasTest, ParsesAliasesWithLowerCasedNames) {
  auto fw = parse_cluster_fw(
      "[ALIASES]\n"
      "AdminNet 192.0.2.0/28 # operators\n"
      "  web_vip 198.51.100.10\n"
      "v6net 2001:db8::/64\n",
      "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  ASSERT_EQ(fw->aliases.size(), 3u);
  const Alias& admin = fw->aliases.at("adminnet");
  EXPECT_EQ(admin.name, "adminnet");
  EXPECT_EQ(admin.cidr.to_string(), "192.0.2.0/28");
  EXPECT_EQ(admin.comment, "operators");
  EXPECT_EQ(admin.where, (SourceLocation{"cluster.fw", 2, 1}));
  const Alias& vip = fw->aliases.at("web_vip");
  EXPECT_EQ(vip.cidr.to_string(), "198.51.100.10");
  EXPECT_EQ(vip.where, (SourceLocation{"cluster.fw", 3, 3}));
  EXPECT_EQ(fw->aliases.at("v6net").cidr.family(), 6);

  auto guest = parse_guest_fw("[ALIASES]\nOps 10.0.0.1\n", "100.fw");
  ASSERT_TRUE(guest) << guest.error().to_string();
  EXPECT_TRUE(guest->aliases.contains("ops"));
}

TEST(ParserAliasTest, RejectsDuplicateAlias) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[ALIASES]\nnet1 10.0.0.0/8\nNET1 10.0.0.0/8\n", "t.fw"), 3,
                      1, "net1"));
}

TEST(ParserAliasTest, RejectsBadAliasLines) {
  EXPECT_TRUE(
      FailsAt(parse_cluster_fw("[ALIASES]\nnet1 10.0.0.0/33\n", "t.fw"), 2, 6, "10.0.0.0/33"));
  // An alias is an address or a CIDR, not a range.
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[ALIASES]\nnet1 10.0.0.1-10.0.0.5\n", "t.fw"), 2, 6,
                      "10.0.0.1-10.0.0.5"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[ALIASES]\n1net 10.0.0.1\n", "t.fw"), 2, 1, "1net"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[ALIASES]\nnet1\n", "t.fw"), 2, 1, "net1"));
  EXPECT_TRUE(FailsAt(parse_guest_fw("[ALIASES]\nnet1 10.0.0.1 10.0.0.2\n", "t.fw"), 2, 1,
                      "net1 10.0.0.1 10.0.0.2"));
}

TEST(ParserIpSetTest, ParsesEntriesNomatchAndAliases) {
  auto fw = parse_cluster_fw(
      "[IPSET Mgmt] # GUI and SSH\n"
      "10.0.0.0/8\n"
      "!10.1.0.0/16 # not the lab\n"
      "! 10.2.0.1\n"
      "dc/AdminNet\n"
      "guest/other\n"
      "LegacyName # unscoped\n"
      "2001:db8::/64\n",
      "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  ASSERT_TRUE(fw->ipsets.contains("mgmt"));
  const IpSet& set = fw->ipsets.at("mgmt");
  EXPECT_EQ(set.name, "mgmt");
  EXPECT_EQ(set.comment, "GUI and SSH");
  EXPECT_EQ(set.where, (SourceLocation{"cluster.fw", 1, 0}));
  ASSERT_EQ(set.entries.size(), 7u);
  EXPECT_FALSE(set.entries[0].nomatch);
  EXPECT_EQ(set.entries[0].cidr->to_string(), "10.0.0.0/8");
  EXPECT_TRUE(set.entries[1].nomatch);
  EXPECT_EQ(set.entries[1].cidr->to_string(), "10.1.0.0/16");
  EXPECT_EQ(set.entries[1].comment, "not the lab");
  EXPECT_TRUE(set.entries[2].nomatch);
  EXPECT_EQ(set.entries[2].cidr->to_string(), "10.2.0.1");
  EXPECT_EQ(set.entries[2].where, (SourceLocation{"cluster.fw", 4, 3}));
  EXPECT_FALSE(set.entries[3].cidr);
  EXPECT_EQ(set.entries[3].alias_scope, "dc");
  EXPECT_EQ(set.entries[3].alias, "adminnet");
  EXPECT_EQ(set.entries[4].alias_scope, "guest");
  EXPECT_EQ(set.entries[4].alias, "other");
  EXPECT_EQ(set.entries[5].alias_scope, "");
  EXPECT_EQ(set.entries[5].alias, "legacyname");
  EXPECT_EQ(set.entries[5].comment, "unscoped");
  EXPECT_EQ(set.entries[6].cidr->family(), 6);
}

TEST(ParserIpSetTest, GuestFilesHaveIpsetsButNotGroups) {
  auto fw = parse_guest_fw("[IPSET ipfilter-net0]\n198.51.100.10\n[IPSET empty]\n", "100.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_EQ(fw->ipsets.at("ipfilter-net0").entries.size(), 1u);
  EXPECT_TRUE(fw->ipsets.at("empty").entries.empty());
}

TEST(ParserIpSetTest, RejectsDuplicateIpset) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n10.0.0.1\n[IPSET A1]\n", "t.fw"), 3, 8, "a1"));
  EXPECT_TRUE(FailsAt(parse_guest_fw("[IPSET x1]\n[IPSET x1]\n", "t.fw"), 2, 8, "x1"));
}

TEST(ParserIpSetTest, RejectsZeroPrefixEntry) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n0.0.0.0/0\n", "t.fw"), 2, 1, "0.0.0.0/0"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n10.0.0.1\n! ::/0\n", "t.fw"), 3, 3, "::/0"));
}

TEST(ParserIpSetTest, RejectsDuplicateEntry) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n10.0.0.0/8\n10.0.0.0/8\n", "t.fw"), 3, 1,
                      "10.0.0.0/8"));
  // Same network written differently, and the same entry as nomatch.
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n10.0.0.0/8\n!10.9.9.9/8\n", "t.fw"), 3, 2,
                      "10.9.9.9/8"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\ndc/net1\ndc/NET1\n", "t.fw"), 3, 1, "dc/NET1"));
}

TEST(ParserIpSetTest, RejectsBadEntries) {
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n10.0.0.0/40\n", "t.fw"), 2, 1, "10.0.0.0/40"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n10.0.0.1 10.0.0.2\n", "t.fw"), 2, 1,
                      "10.0.0.1 10.0.0.2"));
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n!\n", "t.fw"), 2, 1, "!"));
  // Entries are addresses, CIDRs or aliases, not ranges.
  EXPECT_TRUE(FailsAt(parse_cluster_fw("[IPSET a1]\n! 10.0.0.1-10.0.0.9\n", "t.fw"), 2, 3,
                      "10.0.0.1-10.0.0.9"));
}

TEST(ParserGroupTest, ParsesGroupsWithTheirRules) {
  auto fw = parse_cluster_fw(
      "[group WebServer] # web tier\n"
      "IN HTTP(ACCEPT)\n"
      "OUT ACCEPT -p tcp -dport 443\n"
      "FORWARD DROP\n"
      "[group db]\n",
      "cluster.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  ASSERT_EQ(fw->groups.size(), 2u);
  const SecurityGroup& web = fw->groups.at("webserver");
  EXPECT_EQ(web.name, "webserver");
  EXPECT_EQ(web.comment, "web tier");
  ASSERT_EQ(web.rules.size(), 3u);
  EXPECT_EQ(web.rules[0].macro, "HTTP");
  EXPECT_EQ(web.rules[1].direction, Direction::Out);
  EXPECT_EQ(web.rules[2].direction, Direction::Forward);
  EXPECT_EQ(web.rules[2].where, (SourceLocation{"cluster.fw", 4, 0}));
  EXPECT_TRUE(fw->groups.at("db").rules.empty());
}

TEST(ParserGroupTest, RejectsDuplicateGroup) {
  EXPECT_TRUE(
      FailsAt(parse_cluster_fw("[group web]\nIN ACCEPT\n[group Web]\n", "t.fw"), 3, 8, "web"));
}

TEST(ParserFileTest, RulesKeepTheirFileLineAndOrder) {
  auto fw = parse_host_fw(
      "[OPTIONS]\n"
      "enable: 1\n"
      "\n"
      "[RULES]\n"
      "IN SSH(ACCEPT) -i vmbr0\n"
      "|OUT DROP\n"
      "FORWARD ACCEPT -p udp -dport 53\n"
      "GROUP web\n",
      "nodes/node1/host.fw");
  ASSERT_TRUE(fw) << fw.error().to_string();
  EXPECT_EQ(fw->file, "nodes/node1/host.fw");
  ASSERT_EQ(fw->rules.size(), 4u);
  EXPECT_EQ(fw->rules[0].where, (SourceLocation{"nodes/node1/host.fw", 5, 0}));
  EXPECT_EQ(fw->rules[1].enabled, false);
  EXPECT_EQ(fw->rules[2].direction, Direction::Forward);
  EXPECT_EQ(fw->rules[3].kind, Rule::Kind::Group);
  EXPECT_EQ(fw->rules[3].where.line, 8);
}

TEST(ParserFileTest, ErrorsInsideRulesPointIntoTheRawLine) {
  // The column counts the line's leading whitespace.
  auto fw = parse_cluster_fw("[RULES]\nIN ACCEPT\n\t  IN ACCEPT -p tcp -dport 22:1\n", "c.fw");
  EXPECT_TRUE(FailsAt(fw, 3, 28, "22:1", "c.fw"));
  auto group = parse_cluster_fw("[group g1]\nIN ACCEPT\n  OUT ACCEPT -p tcpx\n", "c.fw");
  EXPECT_TRUE(FailsAt(group, 3, 17, "tcpx", "c.fw"));
  auto vnet = parse_vnet_fw("[RULES]\nFORWARD REJECT\n", "sdn/firewall/v1.fw");
  EXPECT_TRUE(FailsAt(vnet, 2, 9, "REJECT", "sdn/firewall/v1.fw"));
}

// ---- guest configs ----

TEST(ParserGuestConfigTest, ParsesVmNics) {
  auto g = parse_guest_config(
      "boot: order=scsi0\n"
      "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1,tag=10\n"
      "net1: e1000=bc:24:11:00:01:01,bridge=vmbr1\n"
      "net3: virtio=BC:24:11:00:01:03,bridge=vmbr0,firewall=0,tag=4094\n"
      "scsi0: local:100/vm-100-disk-0.qcow2,size=8G\n",
      "qemu-server/100.conf", 100, Guest::Type::Vm);
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_EQ(g->vmid, 100u);
  EXPECT_EQ(g->type, Guest::Type::Vm);
  EXPECT_EQ(g->file, "qemu-server/100.conf");
  ASSERT_EQ(g->nics.size(), 3u);
  const GuestNic& n0 = g->nics.at(0);
  EXPECT_EQ(n0.index, 0);
  EXPECT_EQ(n0.mac, "bc:24:11:00:01:00");
  EXPECT_EQ(n0.bridge, "vmbr0");
  EXPECT_EQ(n0.tag, 10);
  EXPECT_TRUE(n0.firewall);
  EXPECT_EQ(n0.where, (SourceLocation{"qemu-server/100.conf", 2, 7}));
  EXPECT_EQ(g->nics.at(1).mac, "bc:24:11:00:01:01");
  EXPECT_FALSE(g->nics.at(1).firewall);
  EXPECT_FALSE(g->nics.at(1).tag);
  EXPECT_FALSE(g->nics.at(3).firewall);
  EXPECT_EQ(g->nics.at(3).tag, 4094);
}

TEST(ParserGuestConfigTest, ParsesContainerNicsWithStaticAddresses) {
  auto g = parse_guest_config(
      "hostname: ct1\n"
      "net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:02:00,ip=198.51.100.20/24,"
      "ip6=2001:db8::20/64,type=veth\n"
      "net1: name=eth1,bridge=vmbr1,firewall=1,hwaddr=BC:24:11:00:02:01,ip=dhcp,ip6=auto\n"
      "net2: name=eth2,bridge=vmbr1,hwaddr=BC:24:11:00:02:02,ip=manual,ip6=dhcp\n",
      "lxc/200.conf", 200, Guest::Type::Ct);
  ASSERT_TRUE(g) << g.error().to_string();
  EXPECT_EQ(g->type, Guest::Type::Ct);
  ASSERT_EQ(g->nics.size(), 3u);
  const GuestNic& n0 = g->nics.at(0);
  EXPECT_EQ(n0.mac, "bc:24:11:00:02:00");
  ASSERT_TRUE(n0.ip);
  EXPECT_EQ(n0.ip->to_string(), "198.51.100.20");  // the host address, not the subnet
  ASSERT_TRUE(n0.ip6);
  EXPECT_EQ(n0.ip6->to_string(), "2001:db8::20");
  EXPECT_FALSE(g->nics.at(1).ip);
  EXPECT_FALSE(g->nics.at(1).ip6);
  EXPECT_FALSE(g->nics.at(2).ip);
  EXPECT_FALSE(g->nics.at(2).firewall);
}

TEST(ParserGuestConfigTest, FirewallFlagAcceptsProxmoxBooleans) {
  for (std::string v : {"1", "on", "yes", "true"}) {
    auto g = parse_guest_config("net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=" + v + "\n",
                                "qemu-server/100.conf", 100, Guest::Type::Vm);
    ASSERT_TRUE(g) << v << ": " << g.error().to_string();
    EXPECT_TRUE(g->nics.at(0).firewall) << v;
  }
  for (std::string v : {"0", "off", "no", "false"}) {
    auto g = parse_guest_config("net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=" + v + "\n",
                                "qemu-server/100.conf", 100, Guest::Type::Vm);
    ASSERT_TRUE(g) << v << ": " << g.error().to_string();
    EXPECT_FALSE(g->nics.at(0).firewall) << v;
  }
  EXPECT_TRUE(FailsAt(parse_guest_config("net0: virtio=BC:24:11:00:01:00,firewall=maybe\n",
                                         "q.conf", 100, Guest::Type::Vm),
                      1, 41, "maybe", "q.conf"));
}

TEST(ParserGuestConfigTest, StopsAtTheFirstSnapshotSection) {
  auto g = parse_guest_config(
      "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,firewall=1\n"
      "\n"
      "[before-upgrade]\n"
      "net0: virtio=BC:24:11:00:01:99,bridge=vmbr9,firewall=0\n"
      "net1: virtio=zz,bridge=vmbr9\n",
      "qemu-server/100.conf", 100, Guest::Type::Vm);
  ASSERT_TRUE(g) << g.error().to_string();
  ASSERT_EQ(g->nics.size(), 1u);
  EXPECT_EQ(g->nics.at(0).mac, "bc:24:11:00:01:00");
  EXPECT_TRUE(g->nics.at(0).firewall);
}

TEST(ParserGuestConfigTest, RejectsInvalidMac) {
  // "net0: virtio=" is 13 characters: the MAC starts at column 14.
  EXPECT_TRUE(FailsAt(parse_guest_config("name: vm\nnet0: virtio=BC:24:11:00:01,bridge=vmbr0\n",
                                         "q.conf", 100, Guest::Type::Vm),
                      2, 14, "BC:24:11:00:01", "q.conf"));
  EXPECT_TRUE(FailsAt(parse_guest_config("net1: bridge=vmbr0,e1000=GG:24:11:00:01:00\n", "q.conf",
                                         100, Guest::Type::Vm),
                      1, 26, "GG:24:11:00:01:00", "q.conf"));
  EXPECT_TRUE(FailsAt(parse_guest_config("net0: name=eth0,hwaddr=BC-24-11-00-02-00,bridge=vmbr0\n",
                                         "c.conf", 200, Guest::Type::Ct),
                      1, 24, "BC-24-11-00-02-00", "c.conf"));
}

TEST(ParserGuestConfigTest, RejectsVlanTagOutOfRange) {
  // "net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,tag=" is 48 characters.
  for (std::string tag : {"0", "5000", "4095", "ten"}) {
    auto g = parse_guest_config("net0: virtio=BC:24:11:00:01:00,bridge=vmbr0,tag=" + tag + "\n",
                                "q.conf", 100, Guest::Type::Vm);
    EXPECT_TRUE(FailsAt(g, 1, 49, "'" + tag + "'", "q.conf")) << tag;
  }
}

TEST(ParserGuestConfigTest, RejectsBadContainerAddressesAndNicIndex) {
  EXPECT_TRUE(FailsAt(
      parse_guest_config("net0: name=eth0,ip=300.1.1.1/24\n", "c.conf", 200, Guest::Type::Ct), 1,
      20, "300.1.1.1/24", "c.conf"));
  EXPECT_TRUE(FailsAt(
      parse_guest_config("net0: name=eth0,ip=2001:db8::1/64\n", "c.conf", 200, Guest::Type::Ct), 1,
      20, "2001:db8::1/64", "c.conf"));
  EXPECT_TRUE(FailsAt(parse_guest_config("cores: 1\nnet32: virtio=BC:24:11:00:01:00\n", "q.conf",
                                         100, Guest::Type::Vm),
                      2, 1, "net32", "q.conf"));
}

}  // namespace
}  // namespace moat::firewall
