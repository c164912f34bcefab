#include <string>

#include "moat/bridges/ovsdb.h"

namespace moat::bridges::ovsdb_ops {

namespace json = boost::json;

json::array uuid(std::string_view uuid) { return json::array{"uuid", uuid}; }
json::array named_uuid(std::string_view name) { return json::array{"named-uuid", name}; }
json::array set(json::array elements) { return json::array{"set", std::move(elements)}; }

json::array map(const std::vector<std::pair<std::string, std::string>>& entries) {
  json::array pairs;
  for (const auto& [k, v] : entries) pairs.push_back(json::array{json::value(k), json::value(v)});
  return json::array{"map", std::move(pairs)};
}

json::array condition(std::string_view column, std::string_view function, json::value value) {
  return json::array{column, function, std::move(value)};
}

json::object insert(std::string_view table, json::object row, std::string_view uuid_name) {
  json::object op{{"op", "insert"}, {"table", table}, {"row", std::move(row)}};
  if (!uuid_name.empty()) op["uuid-name"] = uuid_name;
  return op;
}

json::object select(std::string_view table, json::array where, std::vector<std::string> columns) {
  json::object op{{"op", "select"}, {"table", table}, {"where", std::move(where)}};
  if (!columns.empty()) {
    json::array cols;
    for (std::string& c : columns) cols.emplace_back(std::move(c));
    op["columns"] = std::move(cols);
  }
  return op;
}

json::object update(std::string_view table, json::array where, json::object row) {
  return json::object{
      {"op", "update"}, {"table", table}, {"where", std::move(where)}, {"row", std::move(row)}};
}

json::object remove(std::string_view table, json::array where) {
  return json::object{{"op", "delete"}, {"table", table}, {"where", std::move(where)}};
}

json::object add_to_set(std::string_view table, json::array where, std::string_view column,
                        json::value value) {
  json::array mutation{column, "insert", std::move(value)};
  return json::object{{"op", "mutate"},
                      {"table", table},
                      {"where", std::move(where)},
                      {"mutations", json::array{std::move(mutation)}}};
}

std::vector<json::object> bump_next_cfg() {
  json::array mutation{"next_cfg", "+=", 1};
  return {json::object{{"op", "mutate"},
                       {"table", "Open_vSwitch"},
                       {"where", json::array{}},
                       {"mutations", json::array{std::move(mutation)}}},
          select("Open_vSwitch", json::array{}, {"next_cfg"})};
}

Result<std::int64_t> next_cfg_from(const json::array& results, std::size_t select_index) {
  auto bad = [&] {
    return fail(ErrorCode::Internal, "OVSDB: no next_cfg in result " +
                                         std::to_string(select_index) + " of the transaction");
  };
  if (select_index >= results.size() || !results[select_index].is_object()) return bad();
  const json::value* rows = results[select_index].as_object().if_contains("rows");
  if (rows == nullptr || !rows->is_array() || rows->as_array().size() != 1) return bad();
  const json::value& row = rows->as_array()[0];
  if (!row.is_object()) return bad();
  const json::value* cfg = row.as_object().if_contains("next_cfg");
  if (cfg == nullptr) return bad();
  boost::system::error_code ec;
  auto n = cfg->to_number<std::int64_t>(ec);
  if (ec) return bad();
  return n;
}

}  // namespace moat::bridges::ovsdb_ops
