// NftDriver against a real kernel: every test gets a private network namespace, applies plans
// built by hand, and observes the result with `nft list` (the nft CLI is only an observer; the
// driver never runs it).
#include "moat/firewall/nft_driver.h"

#include <arpa/inet.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "moat/base/subprocess.h"
#include "moat/firewall/diff.h"
#include "moat/firewall/ir_json.h"
#include "moat/firewall/nft_text.h"

namespace moat::firewall::nft {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// ---- IR builders ----

Bytes ip4(const char* text) {
  Bytes b(4);
  EXPECT_EQ(inet_pton(AF_INET, text, b.data()), 1) << text;
  return b;
}

Bytes ip6(const char* text) {
  Bytes b(16);
  EXPECT_EQ(inet_pton(AF_INET6, text, b.data()), 1) << text;
  return b;
}

Bytes mac(const char* text) {
  unsigned v[6] = {};
  EXPECT_EQ(std::sscanf(text, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]), 6);
  Bytes b(6);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(v[i]);
  return b;
}

Interval range(Bytes lo, Bytes hi) { return {std::move(lo), std::move(hi)}; }

Match eq(Field f, Bytes v) { return {.fields = {f}, .op = Match::Op::Eq, .values = {single(v)}}; }
Match neq(Field f, Bytes v) { return {.fields = {f}, .op = Match::Op::Neq, .values = {single(v)}}; }
Match in_range(Field f, Interval iv, bool negate = false) {
  return {.fields = {f}, .op = negate ? Match::Op::Neq : Match::Op::Eq, .values = {iv}};
}
Match in_set(std::vector<Field> fields, std::string set, bool negate = false) {
  return {.fields = std::move(fields),
          .op = negate ? Match::Op::NotIn : Match::Op::In,
          .set = std::move(set)};
}
Match in_values(Field f, std::vector<Interval> values, bool negate = false) {
  return {.fields = {f}, .op = negate ? Match::Op::NotIn : Match::Op::In, .values = values};
}
Match bits(Field f, uint32_t mask, bool any) {
  return {.fields = {f}, .op = any ? Match::Op::BitsAny : Match::Op::BitsNone, .mask = mask};
}

Match tcp() { return eq(Field::L4proto, u8(6)); }
Match ipv4() { return eq(Field::Nfproto, u8(2)); }
Match ipv6() { return eq(Field::Nfproto, u8(10)); }

Rule rule(std::vector<Match> matches, VerdictCode code, std::string origin,
          std::string chain = "") {
  Rule r;
  r.matches = std::move(matches);
  r.verdict = {code, std::move(chain)};
  r.origin = std::move(origin);
  return r;
}

SetElement elem(Interval key) { return {.key = {std::move(key)}}; }
SetElement elem(Bytes key) { return elem(single(std::move(key))); }

// ---- fixture ----

bool required_by_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

class NftDriverNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      if (required_by_ci()) GTEST_FAIL() << "needs root (network namespaces), CI=true";
      GTEST_SKIP() << "needs root (network namespaces)";
    }
    ns_ = "mtdrv" + std::to_string(getpid());
    auto added = run({.argv = {"ip", "netns", "add", ns_}});
    ASSERT_TRUE(added) << added.error().to_string();
    ASSERT_EQ(added->exit_code, 0) << added->err;
    created_ = true;
    auto driver = NftDriver::open(ns_);
    ASSERT_TRUE(driver) << driver.error().to_string();
    driver_.emplace(std::move(*driver));
  }

  void TearDown() override {
    driver_.reset();
    if (!created_) return;
    auto deleted = run({.argv = {"ip", "netns", "del", ns_}});
    EXPECT_TRUE(deleted && deleted->exit_code == 0) << "cannot delete namespace " << ns_;
  }

  NftDriver& driver() { return *driver_; }

  // Runs `nft ARGS...` inside the namespace and returns its stdout.
  std::string nft(std::vector<std::string> args) {
    std::vector<std::string> argv = {"ip", "netns", "exec", ns_, "nft"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run({.argv = argv});
    EXPECT_TRUE(r) << r.error().to_string();
    if (!r) return {};
    EXPECT_EQ(r->exit_code, 0) << r->err;
    return r->out;
  }
  std::string ruleset() { return nft({"list", "ruleset"}); }

  size_t apply_ok(const Plan& plan) {
    auto sent = driver().apply(plan);
    EXPECT_TRUE(sent) << sent.error().to_string();
    return sent.value_or(0);
  }

  std::string ns_;
  bool created_ = false;
  std::optional<NftDriver> driver_;
};

// Every line of `expected` must appear, trimmed, as a line of `listing`, in that order.
::testing::AssertionResult has_lines(const std::string& listing, const std::string& expected) {
  std::vector<std::string> lines;
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);) {
    size_t b = line.find_first_not_of(" \t");
    lines.push_back(b == std::string::npos ? "" : line.substr(b));
  }
  size_t at = 0;
  std::istringstream want(expected);
  for (std::string line; std::getline(want, line);) {
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    line = line.substr(b);
    while (at < lines.size() && lines[at] != line) ++at;
    if (at == lines.size())
      return ::testing::AssertionFailure() << "missing (or out of order): `" << line << "` in\n"
                                           << listing;
    ++at;
  }
  return ::testing::AssertionSuccess();
}

// Packets counted by each `counter` rule of an `nft list` listing, by the rule's comment.
std::map<std::string, int> counted_packets(const std::string& listing) {
  std::regex counter(R"(counter packets (\d+) bytes \d+ comment "([a-z:_]+)\")");
  std::map<std::string, int> packets;
  for (auto it = std::sregex_iterator(listing.begin(), listing.end(), counter);
       it != std::sregex_iterator(); ++it)
    packets[(*it)[2]] = std::stoi((*it)[1]);
  return packets;
}

// One inet table using every Field and Match kind the driver encodes, plus a bridge table for
// the link-layer and ARP fields.
Ruleset feature_ruleset() {
  Ruleset rs;
  Table& t = rs.table(Family::Inet, "moat");
  t.sets["s4"] = {
      .name = "s4",
      .key = {Field::Ip4Saddr},
      .interval = true,
      .elements = {elem(range(ip4("10.0.0.0"), ip4("10.255.255.255"))),
                   elem(range(ip4("192.168.1.5"), ip4("192.168.1.9"))), elem(ip4("203.0.113.7")),
                   elem(range(ip4("255.255.255.0"), ip4("255.255.255.255")))},
      .comment = "guest ipset"};
  t.sets["s6"] = {.name = "s6",
                  .key = {Field::Ip6Saddr},
                  .interval = true,
                  .elements = {elem(range(ip6("fd00::"), ip6("fd00::ffff:ffff:ffff:ffff")))}};
  t.sets["ports"] = {
      .name = "ports", .key = {Field::Dport}, .elements = {elem(be16(22)), elem(be16(80))}};
  t.sets["marks"] = {.name = "marks",
                     .key = {Field::Mark},
                     .interval = true,
                     .elements = {elem(range(host32(10), host32(20))), elem(host32(300))}};
  t.sets["marks_exact"] = {.name = "marks_exact",
                           .key = {Field::Mark},
                           .elements = {elem(host32(5)), elem(host32(0x10000))}};
  t.sets["guest_nets"] = {.name = "guest_nets",
                          .key = {Field::Iifname, Field::Ip4Saddr},
                          .interval = true,
                          .elements = {{.key = {single(ifname_bytes("tap1")),
                                                range(ip4("10.1.0.0"), ip4("10.1.0.255"))}}}};
  t.sets["vm"] = {
      .name = "vm",
      .kind = Set::Kind::Vmap,
      .key = {Field::Iifname},
      .elements = {
          {.key = {single(ifname_bytes("tap1"))}, .verdict = {VerdictCode::Jump, "from_tap1"}},
          {.key = {single(ifname_bytes("tap2"))}, .verdict = {VerdictCode::Goto, "from_tap2"}},
          {.key = {single(ifname_bytes("tap3"))}, .verdict = {VerdictCode::Drop, ""}}}};
  t.sets["mm"] = {.name = "mm",
                  .kind = Set::Kind::MarkMap,
                  .key = {Field::Iifname},
                  .elements = {{.key = {single(ifname_bytes("tap1"))}, .data = 0x10}}};
  t.chains["from_tap1"] = {.name = "from_tap1"};
  t.chains["from_tap1"].rules.push_back(rule({}, VerdictCode::Return, "vm.fw:1"));
  t.chains["from_tap2"] = {.name = "from_tap2"};
  t.chains["from_tap2"].rules.push_back(rule({}, VerdictCode::Accept, "vm.fw:2"));
  Chain& in = t.chains["input"] = {.name = "input", .base = BaseChain{Hook::Input, 10, true}};
  auto add = [&](std::vector<Match> m, VerdictCode code, std::string chain = "") {
    in.rules.push_back(rule(std::move(m), code, "cluster.fw:" + std::to_string(in.rules.size() + 1),
                            std::move(chain)));
    return &in.rules.back();
  };
  add({eq(Field::Iifname, ifname_bytes("lo"))}, VerdictCode::Accept);
  add({neq(Field::Iifname, ifname_bytes("eth9"))}, VerdictCode::Drop);
  add({bits(Field::CtState, kCtEstablished | kCtRelated, true)}, VerdictCode::Accept);
  add({bits(Field::CtState, kCtInvalid, true)}, VerdictCode::Drop);
  add({bits(Field::CtState, kCtNew, false)}, VerdictCode::Accept);
  add({tcp(), eq(Field::Dport, be16(22))}, VerdictCode::Accept)->counter = true;
  add({eq(Field::L4proto, u8(17)), in_range(Field::Dport, range(be16(1000), be16(2000)))},
      VerdictCode::Accept);
  add({tcp(), in_range(Field::Sport, range(be16(1000), be16(2000)), true)}, VerdictCode::Drop);
  add({ipv4(), in_set({Field::Ip4Saddr}, "s4")}, VerdictCode::Accept);
  add({ipv4(), in_set({Field::Ip4Daddr}, "s4", true)}, VerdictCode::Drop);
  add({ipv6(), in_set({Field::Ip6Saddr}, "s6")}, VerdictCode::Accept);
  add({ipv6(), eq(Field::Ip6Daddr, ip6("fd00::1"))}, VerdictCode::Accept);
  add({ipv4(), eq(Field::Ip4Daddr, ip4("192.0.2.1"))}, VerdictCode::Accept);
  add({tcp(), in_set({Field::Dport}, "ports")}, VerdictCode::Accept);
  add({tcp(),
       in_values(Field::Sport, {single(be16(22)), range(be16(80), be16(90)), single(be16(443))})},
      VerdictCode::Accept);
  add({tcp(), in_values(Field::Dport, {single(be16(8080)), single(be16(8443))}, true)},
      VerdictCode::Drop);
  add({ipv4(), eq(Field::L4proto, u8(1)), eq(Field::IcmpType, u8(8)), eq(Field::IcmpCode, u8(0))},
      VerdictCode::Accept);
  add({ipv6(), eq(Field::L4proto, u8(58)), eq(Field::Icmp6Type, u8(128)),
       eq(Field::Icmp6Code, u8(0))},
      VerdictCode::Accept);
  add({tcp(), bits(Field::TcpFlags, 0x02, true)}, VerdictCode::None)->counter = true;
  add({bits(Field::Mark, 0x3, false)}, VerdictCode::Accept);
  add({in_range(Field::Mark, range(host32(10), host32(20)))}, VerdictCode::Accept);
  add({in_set({Field::Mark}, "marks")}, VerdictCode::Accept);
  add({in_set({Field::Mark}, "marks_exact")}, VerdictCode::Accept);
  add({in_values(Field::Mark, {single(host32(7)), range(host32(100), host32(200))})},
      VerdictCode::Accept);
  add({eq(Field::Protocol, be16(0x0800))}, VerdictCode::Accept);
  add({ipv4(), in_set({Field::Iifname, Field::Ip4Saddr}, "guest_nets")}, VerdictCode::Accept);
  Rule* vmap = add({}, VerdictCode::None);
  vmap->vmap_fields = {Field::Iifname};
  vmap->vmap = "vm";
  Rule* logged = add({}, VerdictCode::Accept);
  logged->limit = Limit{.rate = 10, .unit = "second", .burst = 20};
  logged->log = Log{.prefix = "moat drop: ", .group = 2};
  add({}, VerdictCode::None)->mark = MarkSet{.and_mask = 0xffff0000, .xor_value = 0x5};
  add({}, VerdictCode::None)->mark = MarkSet{.and_mask = 0, .xor_value = 0x7};
  add({tcp()}, VerdictCode::RejectTcpReset);
  add({}, VerdictCode::RejectPortUnreach);
  add({}, VerdictCode::RejectAdminProhibited);
  add({}, VerdictCode::Jump, "from_tap1");
  add({}, VerdictCode::Goto, "from_tap2");
  add({ipv4(), eq(Field::FibSaddrType, host32(kRtnBroadcast))}, VerdictCode::Drop);
  t.helpers["ftp"] = CtHelper{"ftp", "ftp", 6, 4};
  add({tcp(), eq(Field::Dport, be16(21))}, VerdictCode::None)->ct_helper = "ftp";
  t.sets["flood"] = {
      .name = "flood", .key = {Field::Ip4Saddr}, .dynamic = true, .timeout_s = 60, .size = 65535};
  add({ipv4()}, VerdictCode::Drop)->update =
      SetUpdate{"flood", {Field::Ip4Saddr}, Limit{.rate = 5, .burst = 10, .over = true}};

  // The ip and ip6 families implement only ICMP(v6) rejects, not ICMPX.
  for (Family f : {Family::Ip, Family::Ip6}) {
    Table& ipt = rs.table(f, f == Family::Ip ? "moat4" : "moat6");
    Chain& c = ipt.chains["input"] = {.name = "input", .base = BaseChain{Hook::Input, 0, false}};
    c.rules.push_back(rule({}, VerdictCode::RejectPortUnreach, "ip.fw:1"));
    c.rules.push_back(rule({}, VerdictCode::RejectAdminProhibited, "ip.fw:2"));
  }

  Table& br = rs.table(Family::Bridge, "moatbr");
  br.sets["macs"] = {
      .name = "macs",
      .key = {Field::Iifname, Field::EtherSaddr},
      .elements = {{.key = {single(ifname_bytes("tap1")), single(mac("02:00:00:00:00:01"))}}}};
  Chain& fw =
      br.chains["brfilter"] = {.name = "brfilter", .base = BaseChain{Hook::Forward, -200, false}};
  fw.rules.push_back(
      rule({in_set({Field::Iifname, Field::EtherSaddr}, "macs")}, VerdictCode::Accept, "br:1"));
  fw.rules.push_back(rule(
      {eq(Field::Iifname, ifname_bytes("tap1")), neq(Field::EtherSaddr, mac("02:00:00:00:00:01"))},
      VerdictCode::Drop, "br:2"));
  // A wildcard name: every interface whose name starts with "fwbr".
  fw.rules.push_back(rule(
      {{.fields = {Field::Iifname}, .values = {ifname_wildcard("fwbr")}},
       {.fields = {Field::Oifname}, .op = Match::Op::Neq, .values = {ifname_wildcard("fwln")}}},
      VerdictCode::Accept, "br:5"));
  fw.rules.push_back(rule({eq(Field::Protocol, be16(0x0806)), eq(Field::ArpOp, be16(1)),
                           eq(Field::ArpSha, mac("02:00:00:00:00:01")),
                           eq(Field::ArpSip, ip4("10.1.0.5")), eq(Field::ArpTip, ip4("10.1.0.1"))},
                          VerdictCode::Accept, "br:3"));
  Rule& divert = fw.rules.emplace_back(rule({}, VerdictCode::Accept, "br:4"));
  divert.ether_daddr = mac("fe:ff:ff:ff:ff:fe");
  divert.notrack = true;
  return rs;
}

// What `nft list ruleset` (nftables 1.0.6) prints for feature_ruleset().
constexpr const char* kFeatureListing = R"(
table bridge moatbr {
	set macs {
		type ifname . ether_addr
		elements = { "tap1" . 02:00:00:00:00:01 }
	}
	chain brfilter {
		type filter hook forward priority filter; policy accept;
		iifname . ether saddr @macs accept comment "br:1"
		iifname "tap1" ether saddr != 02:00:00:00:00:01 drop comment "br:2"
		iifname "fwbr*" oifname != "fwln*" accept comment "br:5"
		arp operation request arp saddr ether 02:00:00:00:00:01 arp saddr ip 10.1.0.5 arp daddr ip 10.1.0.1 accept comment "br:3"
		ether daddr set fe:ff:ff:ff:ff:fe notrack accept comment "br:4"
	}
}
table inet moat {
	ct helper ftp {
		type "ftp" protocol tcp
		l3proto ip
	}
	set flood {
		type ipv4_addr
		size 65535
		flags dynamic,timeout
		timeout 1m
	}
	set guest_nets {
		type ifname . ipv4_addr
		flags interval
		elements = { "tap1" . 10.1.0.0/24 }
	}
	set marks {
		type mark
		flags interval
		elements = { 0x0000000a-0x00000014, 0x0000012c }
	}
	set marks_exact {
		type mark
		elements = { 0x00000005, 0x00010000 }
	}
	map mm {
		type ifname : mark
		elements = { "tap1" : 0x00000010 }
	}
	set ports {
		type inet_service
		elements = { 22, 80 }
	}
	set s4 {
		type ipv4_addr
		flags interval
		comment "guest ipset"
		elements = { 10.0.0.0/8, 192.168.1.5-192.168.1.9,
			     203.0.113.7, 255.255.255.0/24 }
	}
	set s6 {
		type ipv6_addr
		flags interval
		elements = { fd00::/64 }
	}
	map vm {
		type ifname : verdict
		elements = { "tap1" : jump from_tap1,
			     "tap2" : goto from_tap2,
			     "tap3" : drop }
	}
	chain from_tap1 {
		return comment "vm.fw:1"
	}
	chain from_tap2 {
		accept comment "vm.fw:2"
	}
	chain input {
		type filter hook input priority filter + 10; policy drop;
		iifname "lo" accept comment "cluster.fw:1"
		iifname != "eth9" drop comment "cluster.fw:2"
		ct state established,related accept comment "cluster.fw:3"
		ct state invalid drop comment "cluster.fw:4"
		ct state ! new accept comment "cluster.fw:5"
		tcp dport 22 counter packets 0 bytes 0 accept comment "cluster.fw:6"
		udp dport 1000-2000 accept comment "cluster.fw:7"
		tcp sport != 1000-2000 drop comment "cluster.fw:8"
		ip saddr @s4 accept comment "cluster.fw:9"
		ip daddr != @s4 drop comment "cluster.fw:10"
		ip6 saddr @s6 accept comment "cluster.fw:11"
		ip6 daddr fd00::1 accept comment "cluster.fw:12"
		ip daddr 192.0.2.1 accept comment "cluster.fw:13"
		tcp dport @ports accept comment "cluster.fw:14"
		tcp sport { 22, 80-90, 443 } accept comment "cluster.fw:15"
		tcp dport != { 8080, 8443 } drop comment "cluster.fw:16"
		icmp type echo-request icmp code net-unreachable accept comment "cluster.fw:17"
		icmpv6 type echo-request icmpv6 code no-route accept comment "cluster.fw:18"
		tcp flags syn counter packets 0 bytes 0 comment "cluster.fw:19"
		meta mark & 0x00000003 == 0x00000000 accept comment "cluster.fw:20"
		meta mark 0x0000000a-0x00000014 accept comment "cluster.fw:21"
		meta mark @marks accept comment "cluster.fw:22"
		meta mark @marks_exact accept comment "cluster.fw:23"
		meta mark { 0x00000007, 0x00000064-0x000000c8 } accept comment "cluster.fw:24"
		meta protocol ip accept comment "cluster.fw:25"
		iifname . ip saddr @guest_nets accept comment "cluster.fw:26"
		iifname vmap @vm comment "cluster.fw:27"
		limit rate 10/second burst 20 packets log prefix "moat drop: " group 2 accept comment "cluster.fw:28"
		meta mark set meta mark & 0xffff0005 | 0x00000005 comment "cluster.fw:29"
		meta mark set 0x00000007 comment "cluster.fw:30"
		meta l4proto tcp reject with tcp reset comment "cluster.fw:31"
		reject comment "cluster.fw:32"
		reject with icmpx admin-prohibited comment "cluster.fw:33"
		jump from_tap1 comment "cluster.fw:34"
		goto from_tap2 comment "cluster.fw:35"
		meta nfproto ipv4 fib saddr type broadcast drop comment "cluster.fw:36"
		tcp dport 21 ct helper set "ftp" comment "cluster.fw:37"
		update @flood { ip saddr limit rate over 5/second burst 10 packets } drop comment "cluster.fw:38"
	}
}
table ip moat4 {
	chain input {
		type filter hook input priority filter; policy accept;
		reject comment "ip.fw:1"
		reject with icmp admin-prohibited comment "ip.fw:2"
	}
}
table ip6 moat6 {
	chain input {
		type filter hook input priority filter; policy accept;
		reject comment "ip.fw:1"
		reject with icmpv6 admin-prohibited comment "ip.fw:2"
	}
}
)";

TEST_F(NftDriverNetnsTest, AppliesEveryFieldMatchAndStatementAsNftPrintsThem) {
  Ruleset rs = feature_ruleset();
  Plan plan = creation(rs);
  auto sent = driver().apply(plan);
  ASSERT_TRUE(sent) << sent.error().to_string();
  // One message per op, two per anonymous set (set + elements), BATCH_BEGIN and BATCH_END.
  EXPECT_EQ(*sent, plan.size() + 2 * 3 + 2);
  EXPECT_TRUE(has_lines(ruleset(), kFeatureListing));
  // The JSON form round-trips every statement.
  auto back = ruleset_from_json(to_json(rs));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, rs);
}

// A small ruleset for the lifecycle tests.
Ruleset small_ruleset() {
  Ruleset rs;
  Table& t = rs.table(Family::Inet, "moat");
  t.sets["s4"] = {.name = "s4",
                  .key = {Field::Ip4Saddr},
                  .interval = true,
                  .elements = {elem(range(ip4("10.0.0.0"), ip4("10.0.0.255"))),
                               elem(range(ip4("192.168.1.5"), ip4("192.168.1.9")))}};
  t.sets["ports"] = {.name = "ports", .key = {Field::Dport}, .elements = {elem(be16(22))}};
  t.sets["vm"] = {
      .name = "vm",
      .kind = Set::Kind::Vmap,
      .key = {Field::Iifname},
      .elements = {
          {.key = {single(ifname_bytes("tap1"))}, .verdict = {VerdictCode::Jump, "from_tap1"}},
          {.key = {single(ifname_bytes("tap2"))}, .verdict = {VerdictCode::Jump, "from_tap2"}}}};
  t.chains["from_tap1"] = {.name = "from_tap1"};
  t.chains["from_tap1"].rules.push_back(rule({}, VerdictCode::Accept, "vm.fw:1"));
  t.chains["from_tap2"] = {.name = "from_tap2"};
  t.chains["from_tap2"].rules.push_back(rule({}, VerdictCode::Drop, "vm.fw:2"));
  Chain& in = t.chains["input"] = {.name = "input", .base = BaseChain{Hook::Input, 0, true}};
  in.rules.push_back(
      rule({ipv4(), in_set({Field::Ip4Saddr}, "s4")}, VerdictCode::Accept, "cluster.fw:1"));
  in.rules.push_back(
      rule({tcp(), in_set({Field::Dport}, "ports")}, VerdictCode::Accept, "cluster.fw:2"));
  Rule vmap = rule({}, VerdictCode::None, "cluster.fw:3");
  vmap.vmap_fields = {Field::Iifname};
  vmap.vmap = "vm";
  in.rules.push_back(vmap);
  return rs;
}

Op op(Op::Kind kind, std::string name = "") {
  return {.kind = kind, .family = Family::Inet, .table = "moat", .name = std::move(name)};
}

// An AddRule op. A plan only points to its rules: these live as long as the test program.
Op add_rule(std::string chain, Rule r) {
  static std::deque<Rule> rules;
  rules.push_back(std::move(r));
  Op o = op(Op::Kind::AddRule, std::move(chain));
  o.rule = &rules.back();
  return o;
}

TEST_F(NftDriverNetnsTest, FailingBatchNamesTheRuleAndLeavesTheRulesetUntouched) {
  Ruleset rs = small_ruleset();
  apply_ok(creation(rs));
  const std::string before = ruleset();
  auto gen_before = driver().generation();
  ASSERT_TRUE(gen_before);

  Op add_set = op(Op::Kind::AddSet, "later");
  const Set later{.name = "later", .key = {Field::Ip4Daddr}};
  add_set.set = &later;
  Plan plan = {op(Op::Kind::AddChain, "extra"),
               add_rule("extra", rule({}, VerdictCode::Accept, "extra.fw:1")),
               add_rule("input", rule({tcp()}, VerdictCode::Jump, "cluster.fw:42", "missing")),
               add_set, add_rule("input", rule({}, VerdictCode::Accept, "extra.fw:3"))};
  auto sent = driver().apply(plan);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::NotFound) << sent.error().to_string();
  EXPECT_EQ(sent.error().sys_errno(), ENOENT);
  EXPECT_THAT(sent.error().message(), HasSubstr("AddRule inet moat input (rule cluster.fw:42)"));
  EXPECT_THAT(sent.error().message(), Not(HasSubstr("extra.fw")));

  EXPECT_EQ(ruleset(), before);
  auto gen_after = driver().generation();
  ASSERT_TRUE(gen_after);
  EXPECT_EQ(*gen_after, *gen_before);

  // Nothing of the failed batch is left in the socket: the driver keeps working.
  plan.erase(plan.begin() + 2);
  apply_ok(plan);
  EXPECT_THAT(ruleset(), HasSubstr("accept comment \"extra.fw:3\""));
}

TEST_F(NftDriverNetnsTest, FailureOfTheLastOpIsReportedWithoutWaiting) {
  Ruleset rs = small_ruleset();
  apply_ok(creation(rs));
  const std::string before = ruleset();
  Plan plan = {add_rule("input", rule({}, VerdictCode::Accept, "ok.fw:1")),
               add_rule("nosuchchain", rule({}, VerdictCode::Accept, "bad.fw:7"))};
  auto sent = driver().apply(plan);
  ASSERT_FALSE(sent);
  EXPECT_THAT(sent.error().message(), HasSubstr("AddRule inet moat nosuchchain (rule bad.fw:7)"));
  EXPECT_EQ(ruleset(), before);
}

TEST_F(NftDriverNetnsTest, JumpLoopIsRefusedWholeAndNamesTheClosingRule) {
  Ruleset rs = small_ruleset();
  apply_ok(creation(rs));
  const std::string before = ruleset();
  Plan plan = {op(Op::Kind::AddChain, "ping"), op(Op::Kind::AddChain, "pong"),
               add_rule("input", rule({}, VerdictCode::Jump, "in.fw:1", "ping")),
               add_rule("ping", rule({}, VerdictCode::Jump, "ping.fw:1", "pong")),
               add_rule("pong", rule({}, VerdictCode::Jump, "pong.fw:1", "ping"))};
  auto sent = driver().apply(plan);
  ASSERT_FALSE(sent);
  // Kernel 6.x validates jumps as each rule is added and calls a loop "too deep" (EMLINK),
  // naming the rule that closes it.
  EXPECT_EQ(sent.error().sys_errno(), EMLINK) << sent.error().to_string();
  EXPECT_THAT(sent.error().message(), HasSubstr("AddRule inet moat pong (rule pong.fw:1)"));
  EXPECT_EQ(ruleset(), before);
}

TEST_F(NftDriverNetnsTest, DeletesElementsFlushesAndDeletesChainsSetsAndTables) {
  Ruleset rs = small_ruleset();
  apply_ok(creation(rs));
  Table& t = rs.tables.at("inet moat");

  Op del_range = op(Op::Kind::DeleteElements, "s4");
  del_range.set = &t.sets.at("s4");
  del_range.elements = {elem(range(ip4("192.168.1.5"), ip4("192.168.1.9")))};
  Op del_vm = op(Op::Kind::DeleteElements, "vm");
  del_vm.set = &t.sets.at("vm");
  del_vm.elements = {{.key = {single(ifname_bytes("tap2"))}}};
  // The vmap element was the last reference to from_tap2, so the chain can go in the same batch.
  apply_ok({del_range, del_vm, op(Op::Kind::FlushChain, "input"),
            op(Op::Kind::DeleteChain, "from_tap2")});
  std::string listing = ruleset();
  EXPECT_THAT(listing, HasSubstr("elements = { 10.0.0.0/24 }"));
  EXPECT_THAT(listing, Not(HasSubstr("192.168.1.5")));
  EXPECT_THAT(listing, HasSubstr("elements = { \"tap1\" : jump from_tap1 }"));
  EXPECT_THAT(listing, Not(HasSubstr("from_tap2")));
  EXPECT_THAT(listing, Not(HasSubstr("cluster.fw")));
  EXPECT_TRUE(has_lines(listing, R"(
	chain input {
		type filter hook input priority filter; policy drop;
	}
  )"));

  apply_ok({op(Op::Kind::DeleteSet, "ports")});
  EXPECT_THAT(ruleset(), Not(HasSubstr("set ports")));

  apply_ok({{.kind = Op::Kind::DeleteTable, .family = Family::Inet, .table = "moat"}});
  EXPECT_EQ(ruleset(), "");
  auto exists = driver().table_exists(Family::Inet, "moat");
  ASSERT_TRUE(exists) << exists.error().to_string();
  EXPECT_FALSE(*exists);
}

// The comments of chain `inet moat c` in kernel order, each with its rule handle.
std::vector<std::pair<std::string, std::string>> comments_and_handles(const std::string& listing) {
  std::regex rule(R"re(comment "([a-z0-9]+)" # handle (\d+))re");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = std::sregex_iterator(listing.begin(), listing.end(), rule);
       it != std::sregex_iterator(); ++it)
    out.emplace_back((*it)[1], (*it)[2]);
  return out;
}

// Whether the handles the driver knows for `chain` ("inet moat c") are the kernel's, as
// comments_and_handles() listed them.
::testing::AssertionResult knows_handles(
    const NftDriver& driver, const std::string& chain,
    const std::vector<std::pair<std::string, std::string>>& listed) {
  std::vector<uint64_t> handles;
  for (const auto& [_, handle] : listed) handles.push_back(std::stoull(handle));
  auto known = driver.known_rule_handles().find(chain);
  if (known == driver.known_rule_handles().end())
    return ::testing::AssertionFailure() << "no handles known for " << chain;
  if (known->second != handles)
    return ::testing::AssertionFailure() << chain << ": the known handles are not the kernel's";
  return ::testing::AssertionSuccess();
}

TEST_F(NftDriverNetnsTest, ChangedChainIsEditedRuleByRuleKeepingItsCommonRules) {
  // Rule "<name>" matches tcp dport <port>; equal names are equal rules.
  auto chain_of = [](std::vector<std::pair<std::string, uint16_t>> rules) {
    Ruleset rs;
    Chain& c = rs.table(Family::Inet, "moat").chains["c"];
    c.name = "c";
    c.base = BaseChain{Hook::Input, 0, false};
    for (auto& [name, port] : rules)
      c.rules.push_back(rule({tcp(), eq(Field::Dport, be16(port))}, VerdictCode::Accept, name));
    return rs;
  };
  Ruleset applied = chain_of({{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}, {"e", 5}});
  apply_ok(creation(applied));
  struct Step {
    const char* what;
    std::vector<std::pair<std::string, uint16_t>> rules;
    bool flushed;  // nothing in common: flushed and re-added
  };
  std::vector<Step> steps = {
      {"one rule in the middle replaced",
       {{"a", 1}, {"b", 2}, {"x", 33}, {"d", 4}, {"e", 5}},
       false},
      {"one appended", {{"a", 1}, {"b", 2}, {"x", 33}, {"d", 4}, {"e", 5}, {"f", 6}}, false},
      {"one inserted first",
       {{"z", 9}, {"a", 1}, {"b", 2}, {"x", 33}, {"d", 4}, {"e", 5}, {"f", 6}},
       false},
      {"several deleted", {{"z", 9}, {"e", 5}, {"f", 6}}, false},
      {"last one changed", {{"z", 9}, {"e", 5}, {"g", 7}}, false},
      {"nothing in common", {{"y", 8}, {"w", 10}}, true},
      {"all gone", {}, true},
  };
  for (const auto& step : steps) {
    SCOPED_TRACE(step.what);
    auto before = comments_and_handles(nft({"-a", "list", "chain", "inet", "moat", "c"}));
    Ruleset desired = chain_of(step.rules);
    Plan plan = diff(applied, desired);
    bool flushes = std::any_of(plan.begin(), plan.end(),
                               [](const Op& o) { return o.kind == Op::Kind::FlushChain; });
    EXPECT_EQ(flushes, step.flushed) << to_string(plan);
    apply_ok(plan);
    auto after = comments_and_handles(nft({"-a", "list", "chain", "inet", "moat", "c"}));
    std::vector<std::string> names;
    for (const auto& [name, _] : after) names.push_back(name);
    std::vector<std::string> want;
    for (const auto& [name, _] : step.rules) want.push_back(name);
    EXPECT_EQ(names, want);
    // The driver learned the chain's handles from the kernel's echo of the added rules.
    EXPECT_TRUE(knows_handles(driver(), "inet moat c", after));
    // Rules on both sides kept their kernel handle: they were not re-added.
    if (!step.flushed) {
      for (const auto& [name, handle] : after)
        for (const auto& [old_name, old_handle] : before)
          if (name == old_name) {
            EXPECT_EQ(handle, old_handle) << name;
          }
    }
    applied = desired;
  }
}

TEST_F(NftDriverNetnsTest, ManyEditedChainsTakeTheirHandlesFromOneListingOfTheTable) {
  // Twelve chains, each with its middle rule replaced: more than the driver lists one by one.
  auto ruleset = [](uint16_t middle) {
    Ruleset rs;
    Table& t = rs.table(Family::Inet, "moat");
    for (int i = 0; i < 12; ++i) {
      std::string name = "c" + std::to_string(i);
      Chain& c = t.chains[name];
      c.name = name;
      for (uint16_t port : {uint16_t{1}, middle, uint16_t{3}})
        c.rules.push_back(rule({tcp(), eq(Field::Dport, be16(port))}, VerdictCode::Accept,
                               "p" + std::to_string(port)));
    }
    return rs;
  };
  Ruleset applied = ruleset(2), desired = ruleset(22);
  apply_ok(creation(applied));
  Plan plan = diff(applied, desired);
  EXPECT_EQ(std::count_if(plan.begin(), plan.end(),
                          [](const Op& o) { return o.kind == Op::Kind::DeleteRule; }),
            12);
  apply_ok(plan);
  for (int i = 0; i < 12; ++i) {
    auto listed =
        comments_and_handles(nft({"-a", "list", "chain", "inet", "moat", "c" + std::to_string(i)}));
    std::vector<std::string> names;
    for (const auto& [name, _] : listed) names.push_back(name);
    EXPECT_EQ(names, (std::vector<std::string>{"p1", "p22", "p3"})) << "chain c" << i;
    EXPECT_TRUE(knows_handles(driver(), "inet moat c" + std::to_string(i), listed));
  }
}

// The kernel echoes the handles of at most kEchoedRules added rules per batch (they must fit
// the receive buffer): a chain with more added is listed the next time it is edited.
TEST_F(NftDriverNetnsTest, AChainWithMoreAddedRulesThanEchoedIsListedNextTime) {
  auto ports = [](uint16_t first, uint16_t count) {
    Ruleset rs;
    Chain& c = rs.table(Family::Inet, "moat").chains["c"];
    c.name = "c";
    for (uint16_t p = first; p < first + count; ++p)
      c.rules.push_back(
          rule({tcp(), eq(Field::Dport, be16(p))}, VerdictCode::Accept, "p" + std::to_string(p)));
    return rs;
  };
  Ruleset applied = ports(1, 1);
  apply_ok(creation(applied));
  Ruleset many = ports(1, 100);
  apply_ok(diff(applied, many));
  EXPECT_FALSE(driver().known_rule_handles().contains("inet moat c"));
  Ruleset fewer = ports(1, 50);
  apply_ok(diff(many, fewer));
  auto listed = comments_and_handles(nft({"-a", "list", "chain", "inet", "moat", "c"}));
  ASSERT_EQ(listed.size(), 50u);
  EXPECT_EQ(listed.back().first, "p50");
}

// The driver does not list the chains of tables it created: it knows the handles the kernel
// gave their rules from the batch itself (anonymous sets, helpers, chains and sets take
// handles from the same counter). What it knows must be what the kernel says.
TEST_F(NftDriverNetnsTest, KnowsTheRuleHandlesOfTheTablesItCreated) {
  Ruleset rs = feature_ruleset();
  for (auto& [key, t] : small_ruleset().tables)
    if (!rs.tables.contains(key)) rs.tables[key] = t;
  apply_ok(creation(rs));
  size_t chains = 0;
  for (const auto& [_, t] : rs.tables) {
    auto listed = driver().rule_handles(t.family, t.name);
    ASSERT_TRUE(listed) << listed.error().to_string();
    for (const auto& [chain, handles] : *listed) {
      auto known = driver().known_rule_handles().find(table_key(t.family, t.name) + " " + chain);
      ASSERT_NE(known, driver().known_rule_handles().end()) << t.name << " " << chain;
      EXPECT_EQ(known->second, handles) << t.name << " " << chain;
      ++chains;
    }
  }
  EXPECT_GT(chains, 3u);
  EXPECT_EQ(driver().known_rule_handles().size(), chains);
}

// A commit by another process between two of the driver's batches: the kernel refuses the
// batch built on what the driver knew (its generation is stale), and the driver builds it
// again from a listing; the handles of the chain it edited are then the kernel's echo.
TEST_F(NftDriverNetnsTest, ACommitByAnotherProcessMakesTheDriverListAgain) {
  auto chain_of = [](uint16_t middle) {
    Ruleset rs;
    Chain& c = rs.table(Family::Inet, "moat").chains["c"];
    c.name = "c";
    c.base = BaseChain{Hook::Input, 0, false};
    for (uint16_t port : {uint16_t{1}, middle, uint16_t{3}})
      c.rules.push_back(rule({tcp(), eq(Field::Dport, be16(port))}, VerdictCode::Accept,
                             "p" + std::to_string(port)));
    return rs;
  };
  Ruleset applied = chain_of(2);
  apply_ok(creation(applied));
  EXPECT_TRUE(driver().known_rule_handles().contains("inet moat c"));
  nft({"add", "table", "inet", "someone-else"});
  for (uint16_t middle : {22, 222}) {
    Ruleset desired = chain_of(middle);
    apply_ok(diff(applied, desired));
    auto listed = comments_and_handles(nft({"-a", "list", "chain", "inet", "moat", "c"}));
    std::vector<std::string> names;
    for (const auto& [name, _] : listed) names.push_back(name);
    EXPECT_EQ(names, (std::vector<std::string>{"p1", "p" + std::to_string(middle), "p3"}));
    EXPECT_TRUE(knows_handles(driver(), "inet moat c", listed));
    applied = desired;
  }
  EXPECT_TRUE(nft({"list", "tables"}).find("someone-else") != std::string::npos);
}

TEST_F(NftDriverNetnsTest, CheckValidatesWithoutCommitting) {
  Ruleset rs;
  Chain& c = rs.table(Family::Inet, "moat").chains["input"];
  c.name = "input";
  c.base = BaseChain{Hook::Input, 0, false};
  c.rules.push_back(rule({tcp(), eq(Field::Dport, be16(22))}, VerdictCode::Accept, "ssh"));
  auto g0 = driver().generation();
  ASSERT_TRUE(g0) << g0.error().to_string();

  auto valid = driver().check(creation(rs));
  ASSERT_TRUE(valid) << valid.error().to_string();
  EXPECT_EQ(driver().generation().value_or(0), *g0);
  EXPECT_EQ(driver().table_exists(Family::Inet, "moat").value_or(true), false);

  // The kernel refuses what it would refuse in a commit, naming the op: a jump to no chain.
  c.rules.push_back(rule({tcp()}, VerdictCode::Jump, "to-nowhere", "nowhere"));
  auto invalid = driver().check(creation(rs));
  ASSERT_FALSE(invalid);
  EXPECT_THAT(invalid.error().to_string(), HasSubstr("to-nowhere"));
  EXPECT_EQ(driver().generation().value_or(0), *g0);
  EXPECT_EQ(ruleset(), "");
}

TEST_F(NftDriverNetnsTest, APlanMadeAtAnOlderGenerationIsRefusedNotRetried) {
  const Plan table = {{.kind = Op::Kind::AddTable, .family = Family::Inet, .table = "moat"}};
  auto g0 = driver().generation();
  ASSERT_TRUE(g0) << g0.error().to_string();
  nft({"add", "table", "inet", "someone-else"});
  auto sent = driver().apply(table, *g0);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::Conflict) << sent.error().to_string();
  EXPECT_EQ(driver().table_exists(Family::Inet, "moat").value_or(true), false);
  EXPECT_FALSE(driver().committed_generation());

  // Made at the generation the kernel is at, it commits and the driver knows the next one.
  auto g1 = driver().generation();
  ASSERT_TRUE(g1);
  ASSERT_TRUE(driver().apply(table, *g1));
  EXPECT_EQ(driver().committed_generation(), driver().generation().value_or(0));
}

// Another driver edits chain d; this one, told the generation that edit made (as the applier
// reads it from its state file), edits chain c and then d: what it knew of d from before
// the other's commit must not be used.
TEST_F(NftDriverNetnsTest, WhatTheDriverKnewBeforeAnotherDriversCommitIsDropped) {
  auto chains = [](uint16_t c_middle, uint16_t d_middle) {
    Ruleset rs;
    for (auto [name, middle] : {std::pair{"c", c_middle}, {"d", d_middle}}) {
      Chain& c = rs.table(Family::Inet, "moat").chains[name];
      c.name = name;
      for (uint16_t port : {uint16_t{1}, middle, uint16_t{3}})
        c.rules.push_back(rule({tcp(), eq(Field::Dport, be16(port))}, VerdictCode::Accept,
                               "p" + std::to_string(port)));
    }
    return rs;
  };
  Ruleset v1 = chains(2, 2), v2 = chains(2, 22), v3 = chains(4, 22), v4 = chains(4, 222);
  apply_ok(creation(v1));
  auto other = NftDriver::open(ns_);
  ASSERT_TRUE(other) << other.error().to_string();
  ASSERT_TRUE(other->apply(diff(v1, v2)));
  for (auto [from, to] : {std::pair{&v2, &v3}, {&v3, &v4}}) {
    auto at = driver().generation();
    ASSERT_TRUE(at);
    auto sent = driver().apply(diff(*from, *to), *at);
    ASSERT_TRUE(sent) << sent.error().to_string();
  }
  auto listed = comments_and_handles(nft({"-a", "list", "chain", "inet", "moat", "d"}));
  std::vector<std::string> names;
  for (const auto& [name, _] : listed) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"p1", "p222", "p3"}));
}

TEST_F(NftDriverNetnsTest, GenerationChangesOnCommitAndTableExistsReportsTables) {
  auto g0 = driver().generation();
  ASSERT_TRUE(g0) << g0.error().to_string();
  auto before = driver().table_exists(Family::Inet, "moat");
  ASSERT_TRUE(before) << before.error().to_string();
  EXPECT_FALSE(*before);

  apply_ok({{.kind = Op::Kind::AddTable, .family = Family::Inet, .table = "moat"}});
  auto g1 = driver().generation();
  ASSERT_TRUE(g1);
  EXPECT_NE(*g1, *g0);
  EXPECT_EQ(driver().table_exists(Family::Inet, "moat").value_or(false), true);
  EXPECT_EQ(driver().table_exists(Family::Bridge, "moat").value_or(true), false);
  EXPECT_EQ(driver().table_exists(Family::Inet, "other").value_or(true), false);

  // A commit by someone else changes it too.
  nft({"add", "table", "ip", "other"});
  auto g2 = driver().generation();
  ASSERT_TRUE(g2);
  EXPECT_NE(*g2, *g1);
  EXPECT_EQ(driver().table_exists(Family::Ip, "other").value_or(false), true);
}

TEST_F(NftDriverNetnsTest, EmptyPlanSendsNothing) {
  auto g0 = driver().generation();
  ASSERT_TRUE(g0);
  auto sent = driver().apply({});
  ASSERT_TRUE(sent) << sent.error().to_string();
  EXPECT_EQ(*sent, 0u);
  // An op list whose ops produce no message is empty too.
  Op nothing = op(Op::Kind::AddElements, "s4");
  const Set s4{.name = "s4", .key = {Field::Ip4Saddr}};
  nothing.set = &s4;
  sent = driver().apply({nothing});
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, 0u);
  EXPECT_EQ(driver().generation().value_or(0), *g0);
}

TEST_F(NftDriverNetnsTest, MalformedOpFailsBeforeAnythingIsSent) {
  auto g0 = driver().generation();
  ASSERT_TRUE(g0);
  Plan plan = {{.kind = Op::Kind::AddTable, .family = Family::Inet, .table = "moat"},
               op(Op::Kind::AddChain, "input"),
               add_rule("input", rule({eq(Field::Dport, u8(22))}, VerdictCode::Accept, "x.fw:9"))};
  auto sent = driver().apply(plan);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), ErrorCode::InvalidArgument);
  EXPECT_THAT(sent.error().to_string(), HasSubstr("AddRule inet moat input (rule x.fw:9)"));
  EXPECT_THAT(sent.error().to_string(), HasSubstr("th dport"));
  EXPECT_EQ(driver().generation().value_or(0), *g0);
}

// The kernel semantics of the host-order encodings (meta mark is stored big endian in sets
// and ranges), of verdict maps and of concatenated interval sets, checked with real packets:
// pings over lo pass the output hook and bump counters.
TEST_F(NftDriverNetnsTest, LookupsMatchRealPackets) {
  auto up = run({.argv = {"ip", "netns", "exec", ns_, "ip", "link", "set", "lo", "up"}});
  ASSERT_TRUE(up && up->exit_code == 0);
  Ruleset rs;
  Table& t = rs.table(Family::Inet, "moat");
  t.sets["marks"] = {.name = "marks",
                     .key = {Field::Mark},
                     .interval = true,
                     .elements = {elem(range(host32(10), host32(20))), elem(host32(0x10000))}};
  t.sets["marks_miss"] = {
      .name = "marks_miss",
      .key = {Field::Mark},
      .interval = true,
      .elements = {elem(range(host32(16), host32(0x0f00))), elem(host32(0x0f000000))}};
  t.sets["marks_exact"] = {
      .name = "marks_exact", .key = {Field::Mark}, .elements = {elem(host32(5)), elem(host32(15))}};
  t.sets["nets"] = {.name = "nets",
                    .key = {Field::Ip4Daddr},
                    .interval = true,
                    .elements = {elem(range(ip4("127.0.0.0"), ip4("127.255.255.255"))),
                                 elem(range(ip4("255.255.255.0"), ip4("255.255.255.255")))}};
  t.sets["pairs"] = {.name = "pairs",
                     .key = {Field::Oifname, Field::Ip4Daddr},
                     .interval = true,
                     .elements = {{.key = {single(ifname_bytes("lo")),
                                           range(ip4("127.0.0.0"), ip4("127.0.0.255"))}}}};
  t.sets["vm"] = {.name = "vm",
                  .kind = Set::Kind::Vmap,
                  .key = {Field::Oifname},
                  .elements = {{.key = {single(ifname_bytes("lo"))},
                                .verdict = {VerdictCode::Jump, "via_vmap"}}}};
  t.chains["via_vmap"] = {.name = "via_vmap"};
  t.chains["via_vmap"].rules.push_back(rule({}, VerdictCode::None, "hit:vmap"));
  t.chains["via_vmap"].rules.back().counter = true;
  Chain& out = t.chains["output"] = {.name = "output", .base = BaseChain{Hook::Output, 0, false}};
  auto counted = [&](std::vector<Match> m, std::string name) {
    m.insert(m.begin(), {ipv4(), eq(Field::L4proto, u8(1))});
    out.rules.push_back(rule(std::move(m), VerdictCode::None, std::move(name)));
    out.rules.back().counter = true;
  };
  out.rules.push_back(rule({}, VerdictCode::None, "set-mark"));
  out.rules.back().mark = MarkSet{.and_mask = 0, .xor_value = 15};
  counted({in_set({Field::Mark}, "marks")}, "hit:marks");
  counted({in_set({Field::Mark}, "marks_exact")}, "hit:marks_exact");
  counted({in_range(Field::Mark, range(host32(10), host32(20)))}, "hit:range");
  counted({in_values(Field::Mark, {single(host32(7)), range(host32(12), host32(16))})}, "hit:anon");
  counted({in_set({Field::Ip4Daddr}, "nets")}, "hit:nets");
  counted({in_set({Field::Oifname, Field::Ip4Daddr}, "pairs")}, "hit:pairs");
  counted({in_set({Field::Mark}, "marks_miss")}, "miss:marks");
  counted({in_range(Field::Mark, range(host32(10), host32(20)), true)}, "miss:range");
  counted({in_values(Field::Mark, {range(host32(16), host32(0x0f00))})}, "miss:anon");
  Rule vmap = rule({ipv4(), eq(Field::L4proto, u8(1))}, VerdictCode::None, "vmap");
  vmap.vmap_fields = {Field::Oifname};
  vmap.vmap = "vm";
  out.rules.push_back(vmap);
  apply_ok(creation(rs));

  auto ping =
      run({.argv = {"ip", "netns", "exec", ns_, "ping", "-c", "1", "-W", "1", "127.0.0.1"}});
  ASSERT_TRUE(ping && ping->exit_code == 0) << (ping ? ping->out + ping->err : "");

  std::string listing = ruleset();
  std::map<std::string, int> packets = counted_packets(listing);
  ASSERT_EQ(packets.size(), 10u) << listing;
  for (const auto& [name, n] : packets) {
    // Echo request and reply both leave through lo's output hook.
    if (name.starts_with("hit:")) {
      EXPECT_EQ(n, 2) << name << "\n" << listing;
    } else {
      EXPECT_EQ(n, 0) << name << "\n" << listing;
    }
  }
}

// Netdev base chains run only for the devices they are bound to, one (NFTA_HOOK_DEV) or several
// (NFTA_HOOK_DEVS), and may name a device that does not exist yet. A ping over lo leaves
// (egress) and enters (ingress) lo twice: request and reply.
TEST_F(NftDriverNetnsTest, NetdevChainsCountOnlyTheirDevices) {
  auto up = run({.argv = {"ip", "netns", "exec", ns_, "ip", "link", "set", "lo", "up"}});
  ASSERT_TRUE(up && up->exit_code == 0);
  Ruleset rs;
  Table& t = rs.table(Family::Netdev, "moat-ports");
  auto counting = [&](std::string name, Hook hook, std::vector<std::string> devices) {
    Chain& c = t.chains[name] = {.name = name, .base = BaseChain{hook, 0, false, devices}};
    // The netdev family has no `meta nfproto` of its own: the ethertype says IPv4.
    c.rules.push_back(rule({eq(Field::Protocol, be16(0x0800)), eq(Field::L4proto, u8(1))},
                           VerdictCode::None, "n:" + name));
    c.rules.back().counter = true;
  };
  counting("in_lo", Hook::Ingress, {"lo"});
  counting("out_lo", Hook::Egress, {"lo"});
  counting("in_both", Hook::Ingress, {"absent0", "lo"});
  counting("in_absent", Hook::Ingress, {"absent0"});
  apply_ok(creation(rs));

  auto ping =
      run({.argv = {"ip", "netns", "exec", ns_, "ping", "-c", "1", "-W", "1", "127.0.0.1"}});
  ASSERT_TRUE(ping && ping->exit_code == 0) << (ping ? ping->out + ping->err : "");
  std::string listing = ruleset();
  EXPECT_EQ(counted_packets(listing),
            (std::map<std::string, int>{
                {"n:in_absent", 0}, {"n:in_both", 2}, {"n:in_lo", 2}, {"n:out_lo", 2}}))
      << listing;

  // The text form loads as it is, and the JSON form round-trips the device lists.
  auto check =
      run({.argv = {"ip", "netns", "exec", ns_, "nft", "-c", "-f", "-"}, .input = to_nft_text(rs)});
  ASSERT_TRUE(check);
  EXPECT_EQ(check->exit_code, 0) << check->err << to_nft_text(rs);
  auto back = ruleset_from_json(to_json(rs));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, rs);
  // Rebinding a chain to other devices is a change diff() sees.
  Ruleset moved = rs;
  moved.table(Family::Netdev, "moat-ports").chains["in_lo"].base->devices = {"absent1"};
  EXPECT_FALSE(diff(rs, moved).empty());
}

// Element lists are split into NEWSETELEM messages below 64 KiB, all in the one batch.
TEST_F(NftDriverNetnsTest, LargeSetIsSplitAcrossMessagesOfOneBatch) {
  constexpr int kCount = 5000;
  Set big{.name = "big", .key = {Field::Ip4Saddr}, .interval = true};
  for (int i = 0; i < kCount; ++i) {
    uint32_t addr = htonl((10u << 24) + 2u * static_cast<uint32_t>(i));
    Bytes b(4);
    std::memcpy(b.data(), &addr, 4);
    big.elements.push_back(elem(b));
  }
  Ruleset rs;
  rs.table(Family::Inet, "moat").sets["big"] = big;
  auto start = std::chrono::steady_clock::now();
  size_t sent = apply_ok(creation(rs));
  auto took = std::chrono::steady_clock::now() - start;
  // 10,000 kernel elements (start and end of each address) at most ~430 per message.
  EXPECT_GT(sent, 20u);
  std::string listing = nft({"list", "set", "inet", "moat", "big"});
  EXPECT_THAT(listing, HasSubstr("10.0.0.0, 10.0.0.2,"));
  EXPECT_THAT(listing, HasSubstr("10.0.39.14 }"));
  size_t n = 0;
  for (size_t at = listing.find("10.0."); at != std::string::npos;
       at = listing.find("10.0.", at + 1))
    ++n;
  EXPECT_EQ(n, static_cast<size_t>(kCount));
  std::cout << "[ timing ] " << kCount << " interval elements in " << sent
            << " messages: " << std::chrono::duration_cast<std::chrono::microseconds>(took).count()
            << " us\n";
}

TEST_F(NftDriverNetnsTest, AppliesThousandsOfRulesInOneBatch) {
  constexpr int kChains = 100;
  constexpr int kRules = 20;
  Ruleset rs;
  Table& t = rs.table(Family::Inet, "moat");
  Chain& in = t.chains["input"] = {.name = "input", .base = BaseChain{Hook::Input, 0, false}};
  for (int c = 0; c < kChains; ++c) {
    std::string name = "guest" + std::to_string(c);
    Chain& chain = t.chains[name] = {.name = name};
    for (int r = 0; r < kRules; ++r) {
      chain.rules.push_back(rule({ipv4(), eq(Field::Ip4Saddr, ip4("10.1.2.3")), tcp(),
                                  eq(Field::Dport, be16(static_cast<uint16_t>(1000 + r)))},
                                 VerdictCode::Accept, name + ".fw:" + std::to_string(r)));
      chain.rules.back().counter = true;
    }
    in.rules.push_back(rule({eq(Field::Iifname, ifname_bytes("tap" + std::to_string(c)))},
                            VerdictCode::Jump, "cluster.fw:" + std::to_string(c), name));
  }
  Plan plan = creation(rs);
  auto start = std::chrono::steady_clock::now();
  size_t sent = apply_ok(plan);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(sent, plan.size() + 2);
  std::string listing = ruleset();
  size_t n = 0;
  for (size_t at = listing.find(".fw:"); at != std::string::npos; at = listing.find(".fw:", at + 1))
    ++n;
  EXPECT_EQ(n, static_cast<size_t>(kChains * kRules + kChains));
  std::cout << "[ timing ] " << kChains * kRules + kChains << " rules, " << kChains + 1
            << " chains (" << sent
            << " messages): " << std::chrono::duration_cast<std::chrono::microseconds>(took).count()
            << " us\n";
}

}  // namespace
}  // namespace moat::firewall::nft
