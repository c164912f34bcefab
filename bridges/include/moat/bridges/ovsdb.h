// OvsdbClient: Moat's own OVSDB management-protocol client (RFC 7047, JSON-RPC over a unix
// socket), the base the OVS reconciler builds on. One persistent session per client: requests
// are matched to replies by id, the server's `echo` probes are answered, monitors deliver
// their initial rows and later updates, and when the socket drops the client reconnects with
// exponential backoff and re-registers its monitors (whose callbacks then see a fresh initial
// state). The ops helpers in `ovsdb_ops` build the common operations.
//
// Threading: the session runs on a private thread with its own Asio io_context. The public
// calls are synchronous (they block the caller until the reply or a timeout) and thread-safe.
// Monitor callbacks run on the private thread; they must not call back into the client's
// blocking functions (those fail with Internal there instead of deadlocking).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "moat/base/result.h"

namespace moat::bridges {

struct OvsdbOptions {
  std::chrono::milliseconds request_timeout{30000};  // default for transact and monitor
  std::chrono::milliseconds connect_timeout{5000};   // for connect()
  std::chrono::milliseconds backoff_initial{100};    // first reconnect delay after a drop
  std::chrono::milliseconds backoff_max{4000};       // delays double up to this
};

// Called with a <table-updates> object (RFC 7047 §4.1.6: table -> uuid -> {old, new}).
// `initial` is true for the rows present when the monitor was (re-)established.
using MonitorCallback = std::function<void(const boost::json::object& updates, bool initial)>;

struct MonitorRequest {
  std::string db = "Open_vSwitch";
  // table -> columns to watch; an empty list watches every column of the table.
  std::map<std::string, std::vector<std::string>> tables;
  MonitorCallback on_update;
};

struct OvsdbStats {
  std::uint64_t connects = 0;      // successful connections, the first included
  std::uint64_t disconnects = 0;   // sessions that dropped
  std::uint64_t echo_replies = 0;  // server `echo` requests answered
};

class OvsdbClient {
 public:
  explicit OvsdbClient(OvsdbOptions options = {});
  // Closes the session and joins the private thread; pending calls fail with Unavailable.
  ~OvsdbClient();
  OvsdbClient(const OvsdbClient&) = delete;
  OvsdbClient& operator=(const OvsdbClient&) = delete;

  // Opens the session to `target` ("unix:PATH"; a bare path is taken as unix too). Fails with
  // Unavailable when nothing listens there. Call once; after a later drop the client
  // reconnects by itself.
  Status connect(std::string_view target);

  // True while a session is up (false between a drop and the reconnect).
  bool connected() const;
  // Blocks until a session is up or `timeout` passes; Unavailable on timeout.
  Status wait_connected(std::chrono::milliseconds timeout);

  // Runs `ops` as one transaction on `db` and returns OVSDB's result array (one entry per
  // operation). When an operation fails the Error's message names its index and op (e.g.
  // "operation 1 (insert Bridge): constraint violation: ..."), and index == ops.size() means
  // the commit failed (e.g. a referential integrity violation). A session that drops while
  // the request is outstanding fails it with Unavailable: the transaction may or may not have
  // committed, and is not resent. Not connected -> Unavailable at once.
  Result<boost::json::array> transact(std::string_view db, const boost::json::array& ops);
  Result<boost::json::array> transact(std::string_view db, const boost::json::array& ops,
                                      std::chrono::milliseconds timeout);

  // Registers a monitor and returns after its callback has received the initial rows. The
  // monitor lives as long as the client and is re-established after every reconnect.
  Status monitor(MonitorRequest request);

  // Waits until Open_vSwitch.cur_cfg >= next_cfg, i.e. ovs-vswitchd has applied the database
  // as of that next_cfg (what `ovs-vsctl` does after bumping next_cfg; see
  // ovsdb_ops::bump_next_cfg). Registers an internal cur_cfg monitor on first use.
  // Unavailable on timeout, naming both values.
  Status wait_for_cur_cfg(std::int64_t next_cfg, std::chrono::milliseconds timeout);

  OvsdbStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// Builders for RFC 7047 operations and values. Pure.
namespace ovsdb_ops {

boost::json::array uuid(std::string_view uuid);        // ["uuid", U]
boost::json::array named_uuid(std::string_view name);  // ["named-uuid", N]
boost::json::array set(boost::json::array elements);   // ["set", [...]]
boost::json::array map(const std::vector<std::pair<std::string, std::string>>& entries);

// A condition [column, function, value], e.g. condition("name", "==", "br0").
boost::json::array condition(std::string_view column, std::string_view function,
                             boost::json::value value);

boost::json::object insert(std::string_view table, boost::json::object row,
                           std::string_view uuid_name = {});
boost::json::object select(std::string_view table, boost::json::array where,
                           std::vector<std::string> columns = {});
boost::json::object update(std::string_view table, boost::json::array where,
                           boost::json::object row);
boost::json::object remove(std::string_view table, boost::json::array where);
// mutate: adds `value` (a scalar, uuid or set) to the set column `column` of matching rows.
boost::json::object add_to_set(std::string_view table, boost::json::array where,
                               std::string_view column, boost::json::value value);

// The pair ovs-vsctl appends to a change: `next_cfg += 1` on the Open_vSwitch row, then a
// select of next_cfg. Append both; read the new value with next_cfg_from(results, index of
// the select).
std::vector<boost::json::object> bump_next_cfg();
Result<std::int64_t> next_cfg_from(const boost::json::array& results, std::size_t select_index);

}  // namespace ovsdb_ops

}  // namespace moat::bridges
