#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "moat/bridges/json_stream.h"
#include "moat/bridges/ovsdb.h"

namespace moat::bridges {
namespace {

namespace json = boost::json;
using Texts = std::vector<std::string>;

Texts feed(JsonStreamSplitter& s, std::string_view bytes) {
  Result<Texts> r = s.feed(bytes);
  EXPECT_TRUE(r.has_value()) << r.error().to_string();
  return r ? *r : Texts{"<error>"};
}

TEST(JsonStreamSplitter, SplitsSeveralMessagesInOneRead) {
  JsonStreamSplitter s;
  EXPECT_EQ(feed(s, R"({"id":1,"result":[]}{"id":2,"result":{}}[1,[2]])"),
            (Texts{R"({"id":1,"result":[]})", R"({"id":2,"result":{}})", "[1,[2]]"}));
  EXPECT_EQ(s.pending(), 0u);
}

TEST(JsonStreamSplitter, JoinsAMessageSplitAcrossReads) {
  const std::string msg = R"({"method":"update","params":["m1",{"Bridge":{"a":{"new":{}}}}]})";
  for (std::size_t cut = 1; cut < msg.size(); ++cut) {
    JsonStreamSplitter s;
    EXPECT_EQ(feed(s, msg.substr(0, cut)), Texts{}) << "cut at " << cut;
    EXPECT_EQ(s.pending(), cut);
    EXPECT_EQ(feed(s, msg.substr(cut)), Texts{msg}) << "cut at " << cut;
  }
}

TEST(JsonStreamSplitter, OneByteAtATime) {
  const std::string stream = R"({"a":"}"} {"b":[{}]})";
  JsonStreamSplitter s;
  Texts got;
  for (char c : stream) {
    for (std::string& t : feed(s, std::string_view(&c, 1))) got.push_back(std::move(t));
  }
  EXPECT_EQ(got, (Texts{R"({"a":"}"})", R"({"b":[{}]})"}));
}

TEST(JsonStreamSplitter, IgnoresBracesAndEscapedQuotesInsideStrings) {
  JsonStreamSplitter s;
  const std::string a = R"({"details":"no row \"{br0}\" [x]","e":"\\"})";
  const std::string b = R"({"k":"\\\"}{"})";
  EXPECT_EQ(feed(s, a + b), (Texts{a, b}));
  // An escape split exactly after the backslash.
  const std::string c = R"({"q":"a\"}b"})";
  std::size_t slash = c.find('\\');
  EXPECT_EQ(feed(s, c.substr(0, slash + 1)), Texts{});
  EXPECT_EQ(feed(s, c.substr(slash + 1)), Texts{c});
  for (const std::string& t : {a, b, c}) {
    boost::system::error_code ec;
    json::parse(t, ec);
    EXPECT_FALSE(ec) << t;
  }
}

TEST(JsonStreamSplitter, SkipsWhitespaceBetweenMessages) {
  JsonStreamSplitter s;
  EXPECT_EQ(feed(s, " \n{\"a\":1}\r\n\t{\"b\":2}\n"), (Texts{R"({"a":1})", R"({"b":2})"}));
}

TEST(JsonStreamSplitter, RejectsGarbageBetweenMessages) {
  JsonStreamSplitter s;
  Result<Texts> r = s.feed(R"({"a":1}x{"b":2})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  s.reset();
  EXPECT_EQ(feed(s, R"({"b":2})"), Texts{R"({"b":2})"});
}

TEST(JsonStreamSplitter, RejectsAnOversizedMessage) {
  JsonStreamSplitter s(16);
  EXPECT_FALSE(s.feed(R"({"a":"0123456789abcdef"})").has_value());
}

TEST(OvsdbOps, BuildsInsertWithNamedUuidAndSetMutation) {
  using namespace ovsdb_ops;
  json::object port = insert("Port",
                             {{"name", "p0"},
                              {"interfaces", named_uuid("i0")},
                              {"external_ids", map({{"moat-owner", "test"}})}},
                             "p0");
  EXPECT_EQ(json::serialize(port),
            R"({"op":"insert","table":"Port","row":{"name":"p0","interfaces":["named-uuid","i0"],)"
            R"("external_ids":["map",[["moat-owner","test"]]]},"uuid-name":"p0"})");
  json::object m = add_to_set("Bridge", json::array{condition("name", "==", "br0")}, "ports",
                              set(json::array{named_uuid("p0")}));
  EXPECT_EQ(json::serialize(m),
            R"({"op":"mutate","table":"Bridge","where":[["name","==","br0"]],)"
            R"("mutations":[["ports","insert",["set",[["named-uuid","p0"]]]]]})");
}

TEST(OvsdbOps, BumpsAndReadsNextCfg) {
  std::vector<json::object> ops = ovsdb_ops::bump_next_cfg();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(json::serialize(ops[0]), R"({"op":"mutate","table":"Open_vSwitch","where":[],)"
                                     R"("mutations":[["next_cfg","+=",1]]})");
  json::array results = json::parse(R"([{"count":1},{"rows":[{"next_cfg":7}]}])").as_array();
  Result<std::int64_t> n = ovsdb_ops::next_cfg_from(results, 1);
  ASSERT_TRUE(n.has_value()) << n.error().to_string();
  EXPECT_EQ(*n, 7);
  EXPECT_FALSE(ovsdb_ops::next_cfg_from(results, 0).has_value());
  EXPECT_FALSE(ovsdb_ops::next_cfg_from(results, 2).has_value());
}

TEST(OvsdbClient, ConnectToAMissingSocketIsUnavailable) {
  OvsdbClient client;
  Status s = client.connect("unix:/nonexistent/moat-test/db.sock");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), ErrorCode::Unavailable);
  EXPECT_FALSE(client.connected());
}

TEST(OvsdbClient, RejectsNonUnixTargets) {
  OvsdbClient client;
  Status s = client.connect("tcp:127.0.0.1:6640");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), ErrorCode::InvalidArgument);
}

TEST(OvsdbClient, TransactWithoutSessionIsUnavailable) {
  OvsdbClient client;
  Result<json::array> r = client.transact("Open_vSwitch", json::array{});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::Unavailable);
}

// A scripted OVSDB server on a unix socket in a temporary directory: accepts one client and
// hands the test its fd. Reads and writes are blocking and whole-message.
class FakeServer {
 public:
  FakeServer() {
    char tmpl[] = "/tmp/moat-ovsdb-unit-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) dir_ = tmpl;
    path_ = dir_ + "/db.sock";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_fd_, 4), 0);
  }
  ~FakeServer() { close(); }
  // Closes the client's connection and stops listening (the socket file goes too).
  void close() {
    if (fd_ >= 0) ::close(fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    fd_ = listen_fd_ = -1;
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string target() const { return "unix:" + path_; }
  void accept() { fd_ = ::accept(listen_fd_, nullptr, nullptr); }
  void write(std::string_view bytes) {
    EXPECT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // The next `n` JSON messages the client sent.
  std::vector<json::object> read(std::size_t n) {
    std::vector<json::object> out;
    char buf[4096];
    while (out.size() < n) {
      ssize_t got = ::read(fd_, buf, sizeof(buf));
      if (got <= 0) break;
      auto texts = splitter_.feed(std::string_view(buf, static_cast<std::size_t>(got)));
      if (!texts) break;
      for (const std::string& t : *texts) out.push_back(json::parse(t).as_object());
    }
    EXPECT_EQ(out.size(), n);
    return out;
  }

 private:
  std::string dir_, path_;
  int listen_fd_ = -1;
  int fd_ = -1;
  JsonStreamSplitter splitter_;
};

TEST(OvsdbClient, MatchesRepliesToRequestsByIdAndAnswersEcho) {
  FakeServer server;
  OvsdbClient client;
  std::thread accepter([&] { server.accept(); });
  ASSERT_TRUE(client.connect(server.target()).has_value());
  accepter.join();

  // Two transactions in flight at once.
  auto first = std::async(std::launch::async, [&] {
    return client.transact("db", json::array{ovsdb_ops::select("A", json::array{})});
  });
  std::vector<json::object> req1 = server.read(1);
  auto second = std::async(std::launch::async, [&] {
    return client.transact("db", json::array{ovsdb_ops::select("B", json::array{})});
  });
  std::vector<json::object> req2 = server.read(1);
  ASSERT_EQ(req1.size(), 1u);
  ASSERT_EQ(req2.size(), 1u);
  EXPECT_EQ(req1[0].at("method").as_string(), "transact");
  EXPECT_EQ(req1[0].at("params").as_array().at(0).as_string(), "db");
  EXPECT_NE(req1[0].at("id"), req2[0].at("id"));

  // An echo request, then the replies in reverse order, all in one write and with the first
  // reply's text split over two writes; strings carry braces and escaped quotes.
  std::string echo = R"({"method":"echo","params":["ping {\"x\"}"],"id":"e1"})";
  std::string reply2 = R"({"id":)" + json::serialize(req2[0].at("id")) +
                       R"(,"result":[{"rows":[{"name":"B}\"{"}]}],"error":null})";
  std::string reply1 = R"({"id":)" + json::serialize(req1[0].at("id")) +
                       R"(,"result":[{"rows":[{"name":"A"}]}],"error":null})";
  std::string all = echo + reply2 + reply1;
  server.write(all.substr(0, all.size() - 10));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  server.write(all.substr(all.size() - 10));

  Result<json::array> r1 = first.get();
  Result<json::array> r2 = second.get();
  ASSERT_TRUE(r1.has_value()) << r1.error().to_string();
  ASSERT_TRUE(r2.has_value()) << r2.error().to_string();
  EXPECT_EQ(r1->at(0).at("rows").at(0).at("name").as_string(), "A");
  EXPECT_EQ(r2->at(0).at("rows").at(0).at("name").as_string(), "B}\"{");

  std::vector<json::object> echo_reply = server.read(1);
  ASSERT_EQ(echo_reply.size(), 1u);
  EXPECT_EQ(json::serialize(echo_reply[0].at("id")), R"("e1")");
  EXPECT_EQ(echo_reply[0].at("result").at(0).as_string(), "ping {\"x\"}");
  EXPECT_TRUE(echo_reply[0].at("error").is_null());
  EXPECT_EQ(client.stats().echo_replies, 1u);
}

TEST(OvsdbClient, NamesTheFailedOperationAndFailsPendingRequestsOnDrop) {
  FakeServer server;
  OvsdbClient client({.backoff_initial = std::chrono::milliseconds(10)});
  std::thread accepter([&] { server.accept(); });
  ASSERT_TRUE(client.connect(server.target()).has_value());
  accepter.join();

  json::array ops{ovsdb_ops::select("Bridge", json::array{}),
                  ovsdb_ops::insert("Port", {{"name", "p0"}})};
  auto pending = std::async(std::launch::async, [&] { return client.transact("db", ops); });
  std::vector<json::object> req = server.read(1);
  ASSERT_EQ(req.size(), 1u);
  server.write(R"({"id":)" + json::serialize(req[0].at("id")) +
               R"(,"result":[{"rows":[]},{"error":"constraint violation","details":"bad"}],)"
               R"("error":null})");
  Result<json::array> r = pending.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
  EXPECT_EQ(r.error().message(),
            "OVSDB transaction on db: operation 1 (insert Port): constraint violation: bad");

  // A request outstanding when the server goes away fails instead of hanging.
  pending = std::async(std::launch::async, [&] { return client.transact("db", ops); });
  ASSERT_EQ(server.read(1).size(), 1u);
  server.close();
  r = pending.get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::Unavailable);
  EXPECT_FALSE(client.connected());
}

}  // namespace
}  // namespace moat::bridges
