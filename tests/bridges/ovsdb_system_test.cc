// OvsdbClient against a real, private ovsdb-server (and, for the port test, ovs-vswitchd on the
// userspace datapath inside a private network namespace). Each test starts its own daemons in
// a fresh temporary directory and TearDown stops them by pid and removes everything, also
// after a failed assertion.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "bridges/ovs_fixture.h"
#include "moat/base/subprocess.h"
#include "moat/bridges/ovsdb.h"

namespace moat::bridges {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace ovsdb_ops;
using testing::eventually;

constexpr std::string_view kDb = "Open_vSwitch";

// `ovs-vsctl init`: the one Open_vSwitch row everything hangs from.
void init_root(OvsdbClient& client) {
  auto r = client.transact(kDb, json::array{insert("Open_vSwitch", {})});
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
}

// Ops that add bridge `name` (netdev datapath, with its own internal port) and attach it to
// the Open_vSwitch row, as `ovs-vsctl add-br` does.
json::array add_bridge_ops(const std::string& name) {
  json::array ops;
  ops.push_back(insert("Interface", {{"name", name}, {"type", "internal"}}, "i_" + name));
  ops.push_back(
      insert("Port", {{"name", name}, {"interfaces", named_uuid("i_" + name)}}, "p_" + name));
  ops.push_back(insert("Bridge",
                       {{"name", name},
                        {"datapath_type", "netdev"},
                        {"ports", named_uuid("p_" + name)},
                        {"external_ids", map({{"moat-test", "1"}})}},
                       "b_" + name));
  ops.push_back(add_to_set("Open_vSwitch", json::array{}, "bridges", named_uuid("b_" + name)));
  return ops;
}

class OvsdbSystemTest : public testing::OvsDaemonTest {};

TEST_F(OvsdbSystemTest, TransactInsertsBridgePortInterfaceAndSelectReadsThemBack) {
  OvsdbClient client;
  ASSERT_TRUE(client.connect(db_target()).has_value());
  init_root(client);
  json::array ops = add_bridge_ops("br0");
  ops.push_back(insert("Interface", {{"name", "tap100i0"}}, "i_tap"));
  ops.push_back(insert(
      "Port", {{"name", "tap100i0"}, {"tag", 100}, {"interfaces", named_uuid("i_tap")}}, "p_tap"));
  ops.push_back(add_to_set("Bridge", json::array{condition("name", "==", "br0")}, "ports",
                           named_uuid("p_tap")));
  Result<json::array> r = client.transact(kDb, ops);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ(r->size(), ops.size());
  std::string bridge_uuid(r->at(2).at("uuid").as_array().at(1).as_string());

  Result<json::array> sel =
      client.transact(kDb, json::array{select("Bridge", json::array{condition("name", "==", "br0")},
                                              {"_uuid", "name", "datapath_type", "ports"}),
                                       select("Port", json::array{}, {"name", "tag"}),
                                       select("Interface", json::array{}, {"name", "type"}),
                                       select("Open_vSwitch", json::array{}, {"bridges"})});
  ASSERT_TRUE(sel.has_value()) << sel.error().to_string();
  const json::array& bridges = sel->at(0).at("rows").as_array();
  ASSERT_EQ(bridges.size(), 1u);
  EXPECT_EQ(bridges[0].at("_uuid").as_array().at(1).as_string(), bridge_uuid);
  EXPECT_EQ(bridges[0].at("datapath_type").as_string(), "netdev");
  EXPECT_EQ(bridges[0].at("ports").as_array().at(0).as_string(), "set");
  EXPECT_EQ(bridges[0].at("ports").as_array().at(1).as_array().size(), 2u);
  std::set<std::string> ports;
  for (const json::value& row : sel->at(1).at("rows").as_array()) {
    std::string name(row.at("name").as_string());
    ports.insert(name);
    if (name == "tap100i0") {
      EXPECT_EQ(row.at("tag").as_int64(), 100);
    }
  }
  EXPECT_EQ(ports, (std::set<std::string>{"br0", "tap100i0"}));
  std::set<std::string> interfaces;
  for (const json::value& row : sel->at(2).at("rows").as_array()) {
    interfaces.insert(std::string(row.at("name").as_string()) + "/" +
                      std::string(row.at("type").as_string()));
  }
  EXPECT_EQ(interfaces, (std::set<std::string>{"br0/internal", "tap100i0/"}));
  EXPECT_EQ(sel->at(3).at("rows").as_array().at(0).at("bridges").as_array().at(1).as_string(),
            bridge_uuid);
}

TEST_F(OvsdbSystemTest, FailedOperationIsNamedInTheError) {
  OvsdbClient client;
  ASSERT_TRUE(client.connect(db_target()).has_value());
  init_root(client);
  Result<json::array> r = client.transact(
      kDb, json::array{select("Bridge", json::array{}), insert("NoSuchTable", {{"x", 1}})});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("operation 1 (insert NoSuchTable)"), std::string::npos)
      << r.error().to_string();
  EXPECT_NE(r.error().message().find("NoSuchTable"), std::string::npos);
  std::printf("error for a bad op: %s\n", r.error().to_string().c_str());

  // A dangling reference is caught at commit, after every operation succeeded.
  Result<json::array> commit = client.transact(
      kDb,
      json::array{insert(
          "Port", {{"name", "p0"}, {"interfaces", uuid("0b1c0b1c-0000-4000-8000-000000000000")}})});
  ASSERT_FALSE(commit.has_value());
  std::printf("error for a dangling reference: %s\n", commit.error().to_string().c_str());
  EXPECT_NE(commit.error().message().find("commit"), std::string::npos);
  EXPECT_NE(commit.error().message().find("referential integrity violation"), std::string::npos);
  EXPECT_EQ(commit.error().code(), ErrorCode::Conflict);

  // The session survives errors.
  EXPECT_TRUE(client.transact(kDb, json::array{select("Bridge", json::array{})}).has_value());
}

// Collects the names a Bridge monitor reports, with whether they came as initial rows.
struct BridgeNames {
  std::mutex mu;
  std::vector<std::pair<std::string, bool>> seen;
  int initial_deliveries = 0;

  MonitorCallback callback() {
    return [this](const json::object& updates, bool initial) {
      std::lock_guard lock(mu);
      if (initial) ++initial_deliveries;
      const json::value* table = updates.if_contains("Bridge");
      if (table == nullptr) return;
      for (const auto& row : table->as_object()) {
        const json::value* next = row.value().as_object().if_contains("new");
        if (next != nullptr) seen.emplace_back(next->at("name").as_string(), initial);
      }
    };
  }
  bool has(const std::string& name, bool initial) {
    std::lock_guard lock(mu);
    for (const auto& s : seen) {
      if (s.first == name && s.second == initial) return true;
    }
    return false;
  }
};

TEST_F(OvsdbSystemTest, MonitorDeliversInitialRowsThenLaterInserts) {
  OvsdbClient client;
  ASSERT_TRUE(client.connect(db_target()).has_value());
  init_root(client);
  ASSERT_TRUE(client.transact(kDb, add_bridge_ops("br0")).has_value());

  BridgeNames names;
  Status m = client.monitor({.tables = {{"Bridge", {"name"}}}, .on_update = names.callback()});
  ASSERT_TRUE(m.has_value()) << m.error().to_string();
  // monitor() returns only after the initial rows were delivered.
  EXPECT_TRUE(names.has("br0", true));

  ASSERT_TRUE(client.transact(kDb, add_bridge_ops("br1")).has_value());
  EXPECT_TRUE(eventually([&] { return names.has("br1", false); }, 5s));
  EXPECT_FALSE(names.has("br1", true));
}

TEST_F(OvsdbSystemTest, AnswersServerEchoAndKeepsTheSession) {
  // ovsdb-server does not probe unix sockets by default; a Manager row with a 1 s
  // inactivity_probe makes it send `echo` and drop sessions that do not answer.
  const std::string probed = dir_ + "/probed.sock";
  {
    OvsdbClient setup;
    ASSERT_TRUE(setup.connect(db_target()).has_value());
    init_root(setup);
    auto r = setup.transact(
        kDb,
        json::array{
            insert("Manager", {{"target", "punix:" + probed}, {"inactivity_probe", 1000}}, "mgr"),
            add_to_set("Open_vSwitch", json::array{}, "manager_options", named_uuid("mgr"))});
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
  ASSERT_TRUE(eventually([&] { return fs::exists(probed); }, 5s));
  OvsdbClient client;
  ASSERT_TRUE(client.connect("unix:" + probed).has_value());
  std::this_thread::sleep_for(4500ms);
  OvsdbStats stats = client.stats();
  std::printf("echo requests answered in 4.5 s: %llu\n",
              static_cast<unsigned long long>(stats.echo_replies));
  EXPECT_GE(stats.echo_replies, 2u);
  EXPECT_EQ(stats.disconnects, 0u);
  EXPECT_EQ(stats.connects, 1u);
  EXPECT_TRUE(client.transact(kDb, json::array{select("Bridge", json::array{})}).has_value());
}

TEST_F(OvsdbSystemTest, ReconnectsAfterServerRestartAndRenewsMonitors) {
  OvsdbClient client({.backoff_initial = 50ms, .backoff_max = 400ms});
  ASSERT_TRUE(client.connect(db_target()).has_value());
  init_root(client);
  ASSERT_TRUE(client.transact(kDb, add_bridge_ops("br0")).has_value());
  BridgeNames names;
  ASSERT_TRUE(client.monitor({.tables = {{"Bridge", {"name"}}}, .on_update = names.callback()})
                  .has_value());

  stop(dir_ + "/ovsdb-server.pid");
  ASSERT_TRUE(eventually([&] { return !client.connected(); }, 5s));
  Result<json::array> down = client.transact(kDb, json::array{select("Bridge", json::array{})});
  ASSERT_FALSE(down.has_value());
  EXPECT_EQ(down.error().code(), ErrorCode::Unavailable);
  std::this_thread::sleep_for(1s);  // a few failed attempts with growing backoff

  auto restarted = std::chrono::steady_clock::now();
  start_ovsdb_server();
  Status up = client.wait_connected(10s);
  ASSERT_TRUE(up.has_value()) << up.error().to_string();
  std::printf("reconnected %lld ms after the restart\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - restarted)
                                         .count()));
  EXPECT_GE(client.stats().connects, 2u);
  EXPECT_GE(client.stats().disconnects, 1u);
  // The monitor was re-established: a second initial delivery, then live updates again.
  EXPECT_TRUE(eventually(
      [&] {
        std::lock_guard lock(names.mu);
        return names.initial_deliveries == 2;
      },
      5s));
  ASSERT_TRUE(client.transact(kDb, add_bridge_ops("br1")).has_value());
  EXPECT_TRUE(eventually([&] { return names.has("br1", false); }, 5s));
}

TEST_F(OvsdbSystemTest, AddsThousandInternalPortsInOneTransactionAndWaitsForCurCfg) {
  OvsdbClient client;
  ASSERT_TRUE(client.connect(db_target()).has_value());
  init_root(client);
  start_vswitchd();
  if (HasFatalFailure()) return;

  json::array ops = add_bridge_ops("br0");
  for (json::object& op : bump_next_cfg()) ops.push_back(std::move(op));
  Result<json::array> r = client.transact(kDb, ops);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  Result<std::int64_t> cfg = next_cfg_from(*r, ops.size() - 1);
  ASSERT_TRUE(cfg.has_value()) << cfg.error().to_string();
  Status applied = client.wait_for_cur_cfg(*cfg, 30s);
  ASSERT_TRUE(applied.has_value()) << applied.error().to_string();

  constexpr int kPorts = 1000;
  ops.clear();
  json::array port_refs;
  for (int i = 0; i < kPorts; ++i) {
    std::string name = "ip" + std::to_string(i);
    ops.push_back(insert("Interface", {{"name", name}, {"type", "internal"}}, "i" + name));
    ops.push_back(insert("Port",
                         {{"name", name},
                          {"tag", 100},
                          {"interfaces", named_uuid("i" + name)},
                          {"external_ids", map({{"moat-test", "1"}})}},
                         "p" + name));
    port_refs.push_back(named_uuid("p" + name));
  }
  ops.push_back(add_to_set("Bridge", json::array{condition("name", "==", "br0")}, "ports",
                           set(std::move(port_refs))));
  for (json::object& op : bump_next_cfg()) ops.push_back(std::move(op));
  std::size_t bytes = json::serialize(ops).size();

  auto t0 = std::chrono::steady_clock::now();
  r = client.transact(kDb, ops);
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  cfg = next_cfg_from(*r, ops.size() - 1);
  ASSERT_TRUE(cfg.has_value()) << cfg.error().to_string();
  applied = client.wait_for_cur_cfg(*cfg, 120s);
  auto t2 = std::chrono::steady_clock::now();
  ASSERT_TRUE(applied.has_value()) << applied.error().to_string();
  auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::printf(
      "%d internal ports, %zu ops, %zu bytes: committed in %.1f ms, applied by "
      "ovs-vswitchd %.1f ms later, total %.1f ms\n",
      kPorts, ops.size(), bytes, ms(t1 - t0), ms(t2 - t1), ms(t2 - t0));

  // vswitchd realized every port: each Interface got an OpenFlow port number.
  Result<json::array> sel = client.transact(
      kDb, json::array{select("Interface", json::array{}, {"name", "ofport", "error"})});
  ASSERT_TRUE(sel.has_value()) << sel.error().to_string();
  int with_ofport = 0;
  for (const json::value& row : sel->at(0).at("rows").as_array()) {
    const json::value& ofport = row.at("ofport");
    if (ofport.is_int64() && ofport.as_int64() > 0) ++with_ofport;
  }
  EXPECT_EQ(with_ofport, kPorts + 1);
  Result<RunResult> links =
      run({.argv = {"ip", "netns", "exec", netns_, "ip", "-o", "link", "show"}});
  ASSERT_TRUE(links.has_value());
  EXPECT_NE(links->out.find(" ip999:"), std::string::npos);
}

}  // namespace
}  // namespace moat::bridges
