// The session lives on one private io_context thread: every member below the "io thread"
// marker is touched only there. Callers reach it through asio::post and wait on a promise;
// only `connected_`, the stats and the cur_cfg value are shared, under `mu_`.
#include "moat/bridges/ovsdb.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio.hpp>

#include "moat/base/log.h"
#include "moat/bridges/json_stream.h"

namespace moat::bridges {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Socket = asio::local::stream_protocol::socket;
using Reply = Result<json::value>;
using Handler = std::function<void(Reply)>;

// OVSDB's error strings (RFC 7047 §3.1 and §4.1.3) mapped onto Moat's codes.
ErrorCode code_for(std::string_view ovsdb_error) {
  if (ovsdb_error == "referential integrity violation" || ovsdb_error == "timed out" ||
      ovsdb_error == "aborted" || ovsdb_error == "not owner") {
    return ErrorCode::Conflict;
  }
  if (ovsdb_error == "resources exhausted" || ovsdb_error == "I/O error") {
    return ErrorCode::Unavailable;
  }
  if (ovsdb_error == "unknown database") return ErrorCode::NotFound;
  return ErrorCode::InvalidArgument;
}

std::string string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return {};
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

// "error: details" from an OVSDB error object, or the whole value when it has another shape.
Error error_from(const json::value& err, std::string_view what) {
  if (!err.is_object()) {
    return Error(ErrorCode::InvalidArgument, std::string(what) + ": " + json::serialize(err));
  }
  const json::object& o = err.as_object();
  std::string name = string_field(o, "error");
  std::string details = string_field(o, "details");
  std::string message = std::string(what) + ": " + name;
  if (!details.empty()) message += ": " + details;
  return Error(code_for(name), std::move(message));
}

std::optional<std::int64_t> as_int(const json::value& v) {
  boost::system::error_code ec;
  auto n = v.to_number<std::int64_t>(ec);
  if (ec) return std::nullopt;
  return n;
}

}  // namespace

class OvsdbClient::Impl {
 public:
  explicit Impl(OvsdbOptions options)
      : options_(options),
        work_(asio::make_work_guard(io_)),
        socket_(io_),
        reconnect_timer_(io_),
        backoff_(options.backoff_initial) {
    thread_ = std::thread([this] { run(); });
  }

  ~Impl() {
    asio::post(io_, [this] {
      stopping_ = true;
      reconnect_timer_.cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);
      fail_pending("OVSDB client closed");
      io_.stop();
    });
    thread_.join();
  }

  Status connect(std::string_view target) {
    std::string path(target);
    if (path.starts_with("unix:")) {
      path.erase(0, 5);
    } else if (path.find(':') != std::string::npos && !path.starts_with("/")) {
      return fail(ErrorCode::InvalidArgument,
                  "OVSDB target " + path + ": only unix:PATH is supported");
    }
    if (connect_called_.exchange(true)) {
      return fail(ErrorCode::InvalidArgument, "OvsdbClient::connect called twice");
    }
    auto done = std::make_shared<std::promise<boost::system::error_code>>();
    std::future<boost::system::error_code> result = done->get_future();
    asio::post(io_, [this, path, done] {
      path_ = path;
      try_connect([done](boost::system::error_code ec) { done->set_value(ec); });
    });
    if (result.wait_for(options_.connect_timeout) != std::future_status::ready) {
      return fail(ErrorCode::Unavailable, "OVSDB connect to unix:" + path + " timed out");
    }
    boost::system::error_code ec = result.get();
    if (ec) {
      return fail(ErrorCode::Unavailable,
                  "cannot connect to OVSDB at unix:" + path + ": " + ec.message());
    }
    return {};
  }

  bool connected() const {
    std::lock_guard lock(mu_);
    return connected_;
  }

  Status wait_connected(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [this] { return connected_; })) {
      return fail(ErrorCode::Unavailable, "OVSDB session not re-established within " +
                                              std::to_string(timeout.count()) + " ms");
    }
    return {};
  }

  // Sends one request and blocks for its reply. `on_reply`, when given, runs on the io thread
  // with the reply before the caller wakes (monitors use it to deliver the initial rows).
  Reply call(std::string method, json::array params, std::chrono::milliseconds timeout,
             Handler on_reply = {}) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      return fail(ErrorCode::Internal,
                  "OvsdbClient: blocking call from a monitor callback (would deadlock)");
    }
    std::int64_t id = next_id_++;
    auto done = std::make_shared<std::promise<Reply>>();
    std::future<Reply> result = done->get_future();
    asio::post(io_, [this, id, method = std::move(method), params = std::move(params), done,
                     on_reply = std::move(on_reply)]() mutable {
      if (!connected_io_) {
        done->set_value(fail(ErrorCode::Unavailable, "OVSDB session is not connected"));
        return;
      }
      pending_[id] = [done, on_reply = std::move(on_reply)](Reply reply) {
        if (on_reply) on_reply(reply);
        done->set_value(std::move(reply));
      };
      send_request(id, method, std::move(params));
    });
    if (result.wait_for(timeout) != std::future_status::ready) {
      asio::post(io_, [this, id] { pending_.erase(id); });
      return fail(ErrorCode::Unavailable,
                  "OVSDB request timed out after " + std::to_string(timeout.count()) + " ms");
    }
    return result.get();
  }

  Result<json::array> transact(std::string_view db, const json::array& ops,
                               std::chrono::milliseconds timeout) {
    json::array params;
    params.reserve(ops.size() + 1);
    params.emplace_back(db);
    for (const json::value& op : ops) params.push_back(op);
    Reply reply = call("transact", std::move(params), timeout);
    if (!reply) {
      return fail(std::move(reply.error()).add_context("OVSDB transact on " + std::string(db)));
    }
    if (!reply->is_array()) {
      return fail(ErrorCode::Internal,
                  "OVSDB transact: result is not an array: " + json::serialize(*reply));
    }
    json::array& results = reply->as_array();
    for (std::size_t i = 0; i < results.size(); ++i) {
      const json::value& r = results[i];
      if (!r.is_object() || !r.as_object().contains("error")) continue;
      std::string what;
      if (i < ops.size()) {
        std::string op, table;
        if (ops[i].is_object()) {
          op = string_field(ops[i].as_object(), "op");
          table = string_field(ops[i].as_object(), "table");
        }
        what =
            "operation " + std::to_string(i) + " (" + op + (table.empty() ? "" : " ") + table + ")";
      } else {
        what = "commit (after all " + std::to_string(ops.size()) + " operations)";
      }
      return fail(error_from(r, "OVSDB transaction on " + std::string(db) + ": " + what));
    }
    return std::move(results);
  }

  Status monitor(MonitorRequest request) {
    auto m = std::make_shared<Monitor>();
    m->id = "moat" + std::to_string(next_id_++);
    m->db = request.db;
    for (const auto& [table, columns] : request.tables) {
      json::object spec;
      if (!columns.empty()) {
        json::array cols;
        for (const std::string& c : columns) cols.emplace_back(c);
        spec["columns"] = std::move(cols);
      }
      m->requests[table] = std::move(spec);
    }
    m->callback = std::move(request.on_update);
    Reply reply =
        call("monitor", monitor_params(*m), options_.request_timeout, [this, m](const Reply& r) {
          if (!r || !r->is_object()) return;
          // Registered only once the server accepted it, so a reconnect does
          // not replay a monitor that failed.
          monitors_.push_back(m);
          if (m->callback) m->callback(r->as_object(), true);
        });
    if (!reply) {
      return fail(std::move(reply.error()).add_context("OVSDB monitor on " + m->db));
    }
    if (!reply->is_object()) {
      return fail(ErrorCode::Internal, "OVSDB monitor: result is not an object");
    }
    return {};
  }

  Status wait_for_cur_cfg(std::int64_t next_cfg, std::chrono::milliseconds timeout) {
    {
      std::lock_guard setup(cur_cfg_setup_mu_);
      if (!cur_cfg_monitored_) {
        MonitorRequest request{
            .db = "Open_vSwitch",
            .tables = {{"Open_vSwitch", {"cur_cfg"}}},
            .on_update = [this](const json::object& updates, bool) { note_cur_cfg(updates); }};
        MOAT_RETURN_IF_ERROR(monitor(std::move(request)));
        cur_cfg_monitored_ = true;
      }
    }
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return cur_cfg_ && *cur_cfg_ >= next_cfg; })) {
      return fail(ErrorCode::Unavailable,
                  "ovs-vswitchd did not apply the configuration within " +
                      std::to_string(timeout.count()) + " ms: cur_cfg " +
                      (cur_cfg_ ? std::to_string(*cur_cfg_) : std::string("unknown")) +
                      " < next_cfg " + std::to_string(next_cfg));
    }
    return {};
  }

  OvsdbStats stats() const {
    std::lock_guard lock(mu_);
    return stats_;
  }

  const OvsdbOptions& options() const { return options_; }

 private:
  struct Monitor {
    std::string id;
    std::string db;
    json::object requests;
    MonitorCallback callback;
  };

  static json::array monitor_params(const Monitor& m) {
    return json::array{json::value(m.db), json::value(m.id), m.requests};
  }

  void run() {
    // A throwing monitor callback must not end the session thread.
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        log::error("OVSDB client: exception on the session thread: {}", e.what());
      } catch (...) {
        log::error("OVSDB client: unknown exception on the session thread");
      }
    }
  }

  void note_cur_cfg(const json::object& updates) {
    const json::value* table = updates.if_contains("Open_vSwitch");
    if (table == nullptr || !table->is_object()) return;
    for (const auto& row : table->as_object()) {
      if (!row.value().is_object()) continue;
      const json::value* next = row.value().as_object().if_contains("new");
      if (next == nullptr || !next->is_object()) continue;
      const json::value* cfg = next->as_object().if_contains("cur_cfg");
      if (cfg == nullptr) continue;
      if (auto n = as_int(*cfg)) {
        {
          std::lock_guard lock(mu_);
          cur_cfg_ = *n;
        }
        cv_.notify_all();
      }
    }
  }

  // ---- io thread ----

  void try_connect(std::function<void(boost::system::error_code)> done) {
    socket_.async_connect(asio::local::stream_protocol::endpoint(path_),
                          [this, done = std::move(done)](boost::system::error_code ec) {
                            if (stopping_) return;
                            if (ec) {
                              boost::system::error_code ignored;
                              socket_.close(ignored);
                              if (done) {
                                done(ec);
                              } else {
                                log::debug("OVSDB reconnect to unix:{} failed: {}", path_,
                                           ec.message());
                                schedule_reconnect();
                              }
                              return;
                            }
                            on_connected();
                            if (done) done(ec);
                          });
  }

  void on_connected() {
    ++generation_;
    backoff_ = options_.backoff_initial;
    splitter_.reset();
    write_queue_.clear();
    connected_io_ = true;
    std::uint64_t connects;
    {
      std::lock_guard lock(mu_);
      connected_ = true;
      connects = ++stats_.connects;
    }
    cv_.notify_all();
    if (connects > 1) log::info("OVSDB session to unix:{} re-established", path_);
    start_read(generation_);
    // Re-register every monitor; each callback gets the current rows as a fresh initial state.
    for (const std::shared_ptr<Monitor>& m : monitors_) {
      std::int64_t id = next_id_++;
      pending_[id] = [m](Reply r) {
        if (!r || !r->is_object()) {
          log::warn("OVSDB monitor {} could not be re-established: {}", m->id,
                    r ? json::serialize(*r) : r.error().to_string());
          return;
        }
        if (m->callback) m->callback(r->as_object(), true);
      };
      send_request(id, "monitor", monitor_params(*m));
    }
  }

  void on_drop(std::uint64_t gen, const std::string& why) {
    if (gen != generation_ || stopping_) return;
    ++generation_;
    boost::system::error_code ignored;
    socket_.close(ignored);
    write_queue_.clear();
    splitter_.reset();
    connected_io_ = false;
    {
      std::lock_guard lock(mu_);
      connected_ = false;
      ++stats_.disconnects;
    }
    cv_.notify_all();
    log::warn("OVSDB session to unix:{} dropped ({}); reconnecting", path_, why);
    fail_pending("OVSDB session dropped (" + why + "); the request may or may not have applied");
    schedule_reconnect();
  }

  void fail_pending(const std::string& why) {
    std::map<std::int64_t, Handler> pending = std::move(pending_);
    pending_.clear();
    for (auto& [id, handler] : pending) handler(fail(ErrorCode::Unavailable, why));
  }

  void schedule_reconnect() {
    reconnect_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, options_.backoff_max);
    reconnect_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping_) return;
      try_connect({});
    });
  }

  void start_read(std::uint64_t gen) {
    socket_.async_read_some(
        asio::buffer(read_buf_), [this, gen](boost::system::error_code ec, std::size_t n) {
          if (gen != generation_) return;
          if (ec) {
            on_drop(gen, ec == asio::error::eof ? "server closed the connection" : ec.message());
            return;
          }
          Result<std::vector<std::string>> messages =
              splitter_.feed(std::string_view(read_buf_.data(), n));
          if (!messages) {
            on_drop(gen, messages.error().message());
            return;
          }
          for (const std::string& m : *messages) {
            dispatch(m);
            if (gen != generation_) return;
          }
          start_read(gen);
        });
  }

  void dispatch(const std::string& text) {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) {
      log::warn("OVSDB: ignoring a message that is not a JSON object: {}", text.substr(0, 200));
      return;
    }
    json::object& o = v.as_object();
    if (const json::value* method = o.if_contains("method")) {
      handle_request(o, method->is_string() ? std::string_view(method->as_string()) : "");
      return;
    }
    const json::value* idv = o.if_contains("id");
    std::optional<std::int64_t> id = idv != nullptr ? as_int(*idv) : std::nullopt;
    if (!id) return;
    auto it = pending_.find(*id);
    if (it == pending_.end()) return;  // the caller timed out
    Handler handler = std::move(it->second);
    pending_.erase(it);
    const json::value* err = o.if_contains("error");
    if (err != nullptr && !err->is_null()) {
      handler(fail(error_from(*err, "OVSDB request failed")));
      return;
    }
    const json::value* result = o.if_contains("result");
    handler(result != nullptr ? *result : json::value());
  }

  void handle_request(json::object& o, std::string_view method) {
    if (method == "echo") {
      json::object reply;
      reply["id"] = o.contains("id") ? o["id"] : json::value();
      reply["result"] = o.contains("params") ? o["params"] : json::array();
      reply["error"] = nullptr;
      send(std::move(reply));
      std::lock_guard lock(mu_);
      ++stats_.echo_replies;
      return;
    }
    if (method == "update") {
      const json::value* params = o.if_contains("params");
      if (params == nullptr || !params->is_array() || params->as_array().size() != 2) return;
      const json::array& p = params->as_array();
      if (!p[0].is_string() || !p[1].is_object()) return;
      for (const std::shared_ptr<Monitor>& m : monitors_) {
        if (m->id == p[0].as_string() && m->callback) m->callback(p[1].as_object(), false);
      }
      return;
    }
    log::debug("OVSDB: ignoring server request {}", method);
  }

  void send_request(std::int64_t id, std::string_view method, json::array params) {
    json::object msg;
    msg["method"] = method;
    msg["params"] = std::move(params);
    msg["id"] = id;
    send(std::move(msg));
  }

  void send(json::object msg) {
    write_queue_.push_back(std::make_shared<std::string>(json::serialize(msg)));
    if (write_queue_.size() == 1) write_next(generation_);
  }

  void write_next(std::uint64_t gen) {
    std::shared_ptr<std::string> data = write_queue_.front();
    asio::async_write(socket_, asio::buffer(*data),
                      [this, gen, data](boost::system::error_code ec, std::size_t) {
                        if (gen != generation_) return;
                        if (ec) {
                          on_drop(gen, ec.message());
                          return;
                        }
                        write_queue_.pop_front();
                        if (!write_queue_.empty()) write_next(gen);
                      });
  }

  OvsdbOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  Socket socket_;
  asio::steady_timer reconnect_timer_;
  std::thread thread_;
  std::atomic<std::int64_t> next_id_{1};
  std::atomic<bool> connect_called_{false};

  // io thread
  std::string path_;
  bool stopping_ = false;
  bool connected_io_ = false;
  std::uint64_t generation_ = 0;
  std::chrono::milliseconds backoff_;
  std::array<char, 65536> read_buf_{};
  JsonStreamSplitter splitter_;
  std::deque<std::shared_ptr<std::string>> write_queue_;
  std::map<std::int64_t, Handler> pending_;
  std::vector<std::shared_ptr<Monitor>> monitors_;

  // shared, under mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool connected_ = false;
  OvsdbStats stats_;
  std::optional<std::int64_t> cur_cfg_;

  std::mutex cur_cfg_setup_mu_;
  bool cur_cfg_monitored_ = false;  // under cur_cfg_setup_mu_
};

OvsdbClient::OvsdbClient(OvsdbOptions options) : impl_(std::make_unique<Impl>(options)) {}
OvsdbClient::~OvsdbClient() = default;

Status OvsdbClient::connect(std::string_view target) { return impl_->connect(target); }
bool OvsdbClient::connected() const { return impl_->connected(); }
Status OvsdbClient::wait_connected(std::chrono::milliseconds timeout) {
  return impl_->wait_connected(timeout);
}
Result<json::array> OvsdbClient::transact(std::string_view db, const json::array& ops) {
  return impl_->transact(db, ops, impl_->options().request_timeout);
}
Result<json::array> OvsdbClient::transact(std::string_view db, const json::array& ops,
                                          std::chrono::milliseconds timeout) {
  return impl_->transact(db, ops, timeout);
}
Status OvsdbClient::monitor(MonitorRequest request) { return impl_->monitor(std::move(request)); }
Status OvsdbClient::wait_for_cur_cfg(std::int64_t next_cfg, std::chrono::milliseconds timeout) {
  return impl_->wait_for_cur_cfg(next_cfg, timeout);
}
OvsdbStats OvsdbClient::stats() const { return impl_->stats(); }

}  // namespace moat::bridges
