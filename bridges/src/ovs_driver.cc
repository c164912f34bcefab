// observe_ovs(), OvsMonitor and apply_ovs(): the OVSDB side of ovs.h, through OvsdbClient. The
// transaction builder ovs_transaction() is pure.
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include <boost/json.hpp>

#include "moat/bridges/names.h"
#include "moat/bridges/ovs.h"
#include "moat/bridges/ovsdb.h"

namespace moat::bridges {
namespace {

namespace json = boost::json;
using namespace ovsdb_ops;

// ---------------------------------------------------------------------------------------------
// Decoding OVSDB values (RFC 7047 §5.1): a set of one element may be the bare atom; an empty
// optional is ["set", []]; maps are ["map", [[k, v], ...]].
// ---------------------------------------------------------------------------------------------

std::vector<const json::value*> elements(const json::value* v) {
  std::vector<const json::value*> out;
  if (!v) return out;
  if (v->is_array() && v->as_array().size() == 2 && v->as_array()[0] == "set") {
    for (const json::value& e : v->as_array()[1].as_array()) out.push_back(&e);
  } else {
    out.push_back(v);
  }
  return out;
}

std::string uuid_of(const json::value& v) {
  if (v.is_array() && v.as_array().size() == 2 && v.as_array()[1].is_string())
    return std::string(v.as_array()[1].as_string());
  return {};
}

std::string string_of(const json::object& row, std::string_view column) {
  auto e = elements(row.if_contains(column));
  return e.size() == 1 && e[0]->is_string() ? std::string(e[0]->as_string()) : std::string();
}

std::optional<int64_t> int_of(const json::object& row, std::string_view column) {
  auto e = elements(row.if_contains(column));
  if (e.size() == 1 && e[0]->is_int64()) return e[0]->as_int64();
  return std::nullopt;
}

std::optional<uint32_t> uint_of(const json::object& row, std::string_view column) {
  auto v = int_of(row, column);
  if (!v || *v < 0) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

std::vector<std::string> uuids_of(const json::object& row, std::string_view column) {
  std::vector<std::string> out;
  for (const json::value* e : elements(row.if_contains(column))) out.push_back(uuid_of(*e));
  return out;
}

std::map<std::string, std::string> map_of(const json::object& row, std::string_view column) {
  std::map<std::string, std::string> out;
  const json::value* v = row.if_contains(column);
  if (!v || !v->is_array() || v->as_array().size() != 2) return out;
  for (const json::value& pair : v->as_array()[1].as_array()) {
    const json::array& kv = pair.as_array();
    if (kv.size() == 2 && kv[0].is_string() && kv[1].is_string())
      out.emplace(kv[0].as_string(), kv[1].as_string());
  }
  return out;
}

bool owned(const json::object& row) {
  auto ids = map_of(row, "external_ids");
  auto it = ids.find(std::string(names::kOvsOwnedKey));
  return it != ids.end() && it->second == names::kOvsOwnedValue;
}

const json::array& rows_of(const json::array& results, size_t i) {
  return results.at(i).at("rows").as_array();
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

const json::array kEmpty{"set", json::array{}};

json::value optional_value(const std::optional<uint32_t>& v) {
  return v ? json::value(*v) : json::value(kEmpty);
}
json::value optional_value(const std::string& v) {
  return v.empty() ? json::value(kEmpty) : json::value(v);
}

json::array owned_ids() {
  return map({{std::string(names::kOvsOwnedKey), std::string(names::kOvsOwnedValue)}});
}

json::array where_uuid(const std::string& u) {
  return json::array{condition("_uuid", "==", uuid(u))};
}

json::array where_name(const std::string& name) {
  return json::array{condition("name", "==", json::string(name))};
}

json::object mutate(std::string_view table, json::array where, std::string_view column,
                    std::string_view mutator, json::value value) {
  json::array mutation{column, mutator, std::move(value)};
  return json::object{{"op", "mutate"},
                      {"table", table},
                      {"where", std::move(where)},
                      {"mutations", json::array{std::move(mutation)}}};
}

// Marks an existing row as Moat's, keeping its other external_ids. A map insert keeps an
// existing key's value, so the key is deleted first (both mutations run in order).
json::object adopt(std::string_view table, const std::string& row_uuid) {
  json::object op = mutate(table, where_uuid(row_uuid), "external_ids", "delete",
                           set(json::array{json::string(names::kOvsOwnedKey)}));
  op["mutations"].as_array().push_back(json::array{"external_ids", "insert", owned_ids()});
  return op;
}

// An Interface row for an insert (`for_insert`: with its name and Moat's external_ids), or the
// columns an update sets: "name" is immutable in the schema, and ovsdb-server refuses an
// update that names it even with the row's own value.
json::object interface_row(const OvsInterfaceSpec& i, bool for_insert) {
  json::object row{{"type", i.type}, {"mtu_request", optional_value(i.mtu_request)}};
  if (for_insert) {
    row["name"] = i.name;
    row["external_ids"] = owned_ids();
  }
  return row;
}

// The Port columns Moat manages (all of them, so that an update also repairs drift).
json::object port_row(const OvsPortSpec& p) {
  json::array trunks;
  for (uint32_t t : p.trunks) trunks.push_back(t);
  std::vector<std::pair<std::string, std::string>> other(p.other_config.begin(),
                                                         p.other_config.end());
  return json::object{{"tag", optional_value(p.tag)},
                      {"trunks", set(std::move(trunks))},
                      {"vlan_mode", optional_value(p.vlan_mode)},
                      {"bond_mode", optional_value(p.bond_mode)},
                      {"lacp", optional_value(p.lacp)},
                      {"bond_updelay", p.bond_updelay.value_or(0)},
                      {"bond_downdelay", p.bond_downdelay.value_or(0)},
                      {"other_config", map(other)}};
}

// Appends the JSON operations of one plan op; `row_names` numbers named-uuids.
void append(const OvsOp& op, json::array& ops, int& row_names) {
  auto fresh = [&](std::string_view kind) {
    return std::string(kind) + std::to_string(++row_names);
  };
  // Inserts the interfaces of `p` not in `kept`; returns the set for the Port's column.
  auto member_set = [&](const OvsPortSpec& p, const std::map<std::string, std::string>& kept) {
    json::array refs;
    for (const OvsInterfaceSpec& i : p.interfaces) {
      if (auto k = kept.find(i.name); k != kept.end()) {
        refs.push_back(uuid(k->second));
        continue;
      }
      std::string n = fresh("iface");
      ops.push_back(insert("Interface", interface_row(i, true), n));
      refs.push_back(named_uuid(n));
    }
    return set(std::move(refs));
  };
  switch (op.type) {
    case OvsOp::Type::InitRoot:
      ops.push_back(insert("Open_vSwitch", {}));
      break;
    case OvsOp::Type::DeleteBridge:
      ops.push_back(mutate("Open_vSwitch", {}, "bridges", "delete", uuid(op.uuid)));
      break;
    case OvsOp::Type::DeletePort:
      ops.push_back(mutate("Bridge", where_uuid(op.bridge_uuid), "ports", "delete", uuid(op.uuid)));
      break;
    case OvsOp::Type::CreateBridge: {
      OvsPortSpec own = op.port_spec;
      if (own.interfaces.empty()) own.interfaces.push_back({.name = op.name, .type = "internal"});
      json::array interfaces = member_set(own, {});
      json::object port = port_row(own);
      port["name"] = op.name;
      port["interfaces"] = std::move(interfaces);
      port["external_ids"] = owned_ids();
      std::string p = fresh("port"), b = fresh("bridge");
      ops.push_back(insert("Port", std::move(port), p));
      ops.push_back(insert("Bridge",
                           {{"name", op.name},
                            {"datapath_type", to_string(op.bridge_spec.datapath)},
                            {"ports", named_uuid(p)},
                            {"external_ids", owned_ids()}},
                           b));
      ops.push_back(mutate("Open_vSwitch", {}, "bridges", "insert", named_uuid(b)));
      break;
    }
    case OvsOp::Type::CreatePort: {
      json::array interfaces = member_set(op.port_spec, {});
      json::object port = port_row(op.port_spec);
      port["name"] = op.name;
      port["interfaces"] = std::move(interfaces);
      port["external_ids"] = owned_ids();
      std::string p = fresh("port");
      ops.push_back(insert("Port", std::move(port), p));
      ops.push_back(mutate("Bridge", where_name(op.bridge), "ports", "insert", named_uuid(p)));
      break;
    }
    case OvsOp::Type::UpdateBridge:
      ops.push_back(update("Bridge", where_uuid(op.uuid),
                           {{"datapath_type", to_string(op.bridge_spec.datapath)}}));
      ops.push_back(adopt("Bridge", op.uuid));
      break;
    case OvsOp::Type::UpdatePort: {
      json::object row = port_row(op.port_spec);
      row["interfaces"] = member_set(op.port_spec, op.kept_interfaces);
      ops.push_back(update("Port", where_uuid(op.uuid), std::move(row)));
      ops.push_back(adopt("Port", op.uuid));
      if (!op.bridge_uuid.empty()) {
        ops.push_back(
            mutate("Bridge", where_uuid(op.bridge_uuid), "ports", "delete", uuid(op.uuid)));
      }
      // Inserting into a set that has it already is a no-op: this also covers a port found on
      // no bridge at all.
      ops.push_back(mutate("Bridge", where_name(op.bridge), "ports", "insert", uuid(op.uuid)));
      break;
    }
    case OvsOp::Type::UpdateInterface:
      ops.push_back(
          update("Interface", where_uuid(op.uuid), interface_row(op.interface_spec, false)));
      ops.push_back(adopt("Interface", op.uuid));
      break;
  }
}

// The index N of "operation N (" in an OVSDB transaction error, if there is one.
std::optional<size_t> failed_operation(const Error& e) {
  const std::string& m = e.message();
  size_t at = m.find("operation ");
  if (at == std::string::npos) return std::nullopt;
  size_t n = 0;
  const char* begin = m.data() + at + 10;
  auto [end, ec] = std::from_chars(begin, m.data() + m.size(), n);
  if (ec != std::errc() || end == begin) return std::nullopt;
  return n;
}

}  // namespace

namespace {

// The tables and columns plan_ovs() needs, in the order decode() takes them.
struct TableColumns {
  const char* table;
  std::vector<std::string> columns;
};
const std::array<TableColumns, 4>& observed_tables() {
  static const std::array<TableColumns, 4> tables{{
      {"Open_vSwitch", {"next_cfg", "cur_cfg"}},
      {"Bridge", {"name", "datapath_type", "ports", "external_ids"}},
      {"Port",
       {"name", "interfaces", "tag", "trunks", "vlan_mode", "bond_mode", "lacp", "bond_updelay",
        "bond_downdelay", "other_config", "external_ids"}},
      {"Interface", {"name", "type", "mtu_request", "external_ids", "error", "ofport"}},
  }};
  return tables;
}

// Rows of each table of observed_tables(), each with its "_uuid".
using TableRows = std::array<std::vector<const json::object*>, 4>;

OvsObserved decode(const TableRows& tables) {
  OvsObserved out;
  for (const json::object* row : tables[0]) {
    out.root_uuid = uuid_of(row->at("_uuid"));
    out.next_cfg = int_of(*row, "next_cfg").value_or(0);
    out.cur_cfg = int_of(*row, "cur_cfg").value_or(0);
  }
  std::map<std::string, std::string> bridge_of_port;
  for (const json::object* row : tables[1]) {
    ObservedOvsBridge b{.uuid = uuid_of(row->at("_uuid")),
                        .name = string_of(*row, "name"),
                        .datapath_type = string_of(*row, "datapath_type"),
                        .ports = uuids_of(*row, "ports"),
                        .owned = owned(*row)};
    for (const std::string& p : b.ports) bridge_of_port[p] = b.name;
    out.bridges.push_back(std::move(b));
  }
  for (const json::object* row : tables[2]) {
    ObservedOvsPort p{.uuid = uuid_of(row->at("_uuid")),
                      .name = string_of(*row, "name"),
                      .interfaces = uuids_of(*row, "interfaces"),
                      .tag = uint_of(*row, "tag"),
                      .vlan_mode = string_of(*row, "vlan_mode"),
                      .bond_mode = string_of(*row, "bond_mode"),
                      .lacp = string_of(*row, "lacp"),
                      .bond_updelay = uint_of(*row, "bond_updelay"),
                      .bond_downdelay = uint_of(*row, "bond_downdelay"),
                      .other_config = map_of(*row, "other_config"),
                      .owned = owned(*row)};
    if (auto it = bridge_of_port.find(p.uuid); it != bridge_of_port.end()) p.bridge = it->second;
    for (const json::value* t : elements(row->if_contains("trunks"))) {
      if (t->is_int64()) p.trunks.push_back(static_cast<uint32_t>(t->as_int64()));
    }
    std::sort(p.trunks.begin(), p.trunks.end());
    if (p.bond_updelay == 0u) p.bond_updelay.reset();
    if (p.bond_downdelay == 0u) p.bond_downdelay.reset();
    out.ports.push_back(std::move(p));
  }
  for (const json::object* row : tables[3]) {
    out.interfaces.push_back({.uuid = uuid_of(row->at("_uuid")),
                              .name = string_of(*row, "name"),
                              .type = string_of(*row, "type"),
                              .mtu_request = uint_of(*row, "mtu_request"),
                              .owned = owned(*row),
                              .error = string_of(*row, "error"),
                              .ofport = int_of(*row, "ofport")});
  }
  auto by_name = [](const auto& a, const auto& b) { return a.name < b.name; };
  std::sort(out.bridges.begin(), out.bridges.end(), by_name);
  std::sort(out.ports.begin(), out.ports.end(), by_name);
  std::sort(out.interfaces.begin(), out.interfaces.end(), by_name);
  return out;
}

}  // namespace

Result<OvsObserved> observe_ovs(OvsdbClient& client) {
  json::array ops;
  for (const TableColumns& t : observed_tables()) {
    std::vector<std::string> columns = t.columns;
    columns.push_back("_uuid");
    ops.push_back(select(t.table, {}, std::move(columns)));
  }
  json::array results = MOAT_TRY(client.transact(names::kOvsDatabase, ops));
  TableRows tables;
  for (size_t t = 0; t < tables.size(); ++t) {
    for (const json::value& v : rows_of(results, t)) tables[t].push_back(&v.as_object());
  }
  return decode(tables);
}

// The monitor's copy: table index -> uuid -> row (with "_uuid" added).
struct OvsMonitor::State {
  mutable std::mutex mu;
  std::array<std::map<std::string, json::object>, 4> rows;

  void apply(const json::object& updates, bool initial) {
    std::lock_guard lock(mu);
    if (initial) {
      for (auto& table : rows) table.clear();
    }
    for (size_t t = 0; t < rows.size(); ++t) {
      const json::value* table = updates.if_contains(observed_tables()[t].table);
      if (!table) continue;
      for (const auto& [uuid, change] : table->as_object()) {
        const json::value* next = change.as_object().if_contains("new");
        if (!next) {
          rows[t].erase(std::string(uuid));
          continue;
        }
        json::object row = next->as_object();
        row["_uuid"] = ovsdb_ops::uuid(uuid);
        rows[t][std::string(uuid)] = std::move(row);
      }
    }
  }
};

Result<std::unique_ptr<OvsMonitor>> OvsMonitor::start(OvsdbClient& client) {
  auto state = std::make_shared<State>();
  MonitorRequest request{.db = std::string(names::kOvsDatabase)};
  for (const TableColumns& t : observed_tables()) request.tables[t.table] = t.columns;
  request.on_update = [state](const json::object& updates, bool initial) {
    state->apply(updates, initial);
  };
  MOAT_RETURN_IF_ERROR(client.monitor(std::move(request)));
  return std::unique_ptr<OvsMonitor>(new OvsMonitor(std::move(state)));
}

OvsMonitor::OvsMonitor(std::shared_ptr<State> state) : state_(std::move(state)) {}
OvsMonitor::~OvsMonitor() = default;

OvsObserved OvsMonitor::snapshot() const {
  std::lock_guard lock(state_->mu);
  TableRows tables;
  for (size_t t = 0; t < tables.size(); ++t) {
    for (const auto& [uuid, row] : state_->rows[t]) tables[t].push_back(&row);
  }
  return decode(tables);
}

json::array ovs_transaction(const std::vector<OvsOp>& plan) {
  json::array ops;
  int row_names = 0;
  for (const OvsOp& op : plan) append(op, ops, row_names);
  return ops;
}

Result<OvsApplyReport> apply_ovs(const OvsApplyRequest& request) {
  OvsApplyReport report;
  if (request.plan.empty()) return report;
  json::array ops;
  std::vector<size_t> plan_index;  // plan op behind each JSON operation
  int row_names = 0;
  for (size_t i = 0; i < request.plan.size(); ++i) {
    append(request.plan[i], ops, row_names);
    plan_index.resize(ops.size(), i);
  }
  const size_t select_at = ops.size() + 1;
  for (json::object& op : bump_next_cfg()) ops.push_back(std::move(op));

  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  auto start = Clock::now();
  Result<json::array> results = request.client->transact(names::kOvsDatabase, ops);
  auto committed = Clock::now();
  if (!results) {
    Error e = std::move(results).error();
    if (e.message().find("for index on column") != std::string::npos) {
      // A name clash with a row Moat does not own (ovsdb-server calls it a constraint
      // violation).
      Error clash(ErrorCode::AlreadyExists, e.message());
      for (const std::string& c : e.context()) clash.add_context(c);
      e = std::move(clash);
    }
    std::optional<size_t> failed = failed_operation(e);
    if (!failed || *failed >= plan_index.size()) {
      // A commit failure (e.g. a name already taken by a row Moat does not own) quotes the
      // offending value: the first plan operation about that name is the one to blame.
      for (size_t i = 0; i < request.plan.size() && !failed; ++i) {
        const OvsOp& op = request.plan[i];
        std::vector<std::string> names = {op.name};
        for (const auto& member : op.port_spec.interfaces) names.push_back(member.name);
        for (const std::string& n : names) {
          if (!n.empty() && (e.message().find("\"" + n + "\"") != std::string::npos ||
                             e.message().find("(" + n + ")") != std::string::npos)) {
            failed = std::find(plan_index.begin(), plan_index.end(), i) - plan_index.begin();
            break;
          }
        }
      }
    }
    if (failed && *failed < plan_index.size()) {
      const OvsOp& op = request.plan[plan_index[*failed]];
      e.add_context("plan operation " + std::to_string(plan_index[*failed] + 1) + " (" +
                    to_string(op) + ")");
      if (op.line > 0) e.at({.file = request.file, .line = op.line});
    } else {
      e.add_context("applying " + std::to_string(request.plan.size()) + " OVS operations");
    }
    return fail(std::move(e));
  }
  report.applied = request.plan.size();
  report.commit_ms = ms(committed - start);
  report.next_cfg = MOAT_TRY(next_cfg_from(*results, select_at));
  if (request.wait.count() > 0) {
    MOAT_RETURN_IF_ERROR(request.client->wait_for_cur_cfg(report.next_cfg, request.wait));
    report.realized_ms = ms(Clock::now() - committed);
  }
  return report;
}

}  // namespace moat::bridges
