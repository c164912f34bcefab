// plan_ovs() and the plan printer. Pure.
#include <algorithm>
#include <map>
#include <set>

#include "moat/bridges/links.h"
#include "moat/bridges/ovs.h"
#include "plan_text.h"

namespace moat::bridges {
namespace {

template <class T>
const T* find_named(const std::vector<T>& rows, std::string_view name) {
  auto it = std::find_if(rows.begin(), rows.end(), [&](const T& row) { return row.name == name; });
  return it != rows.end() ? &*it : nullptr;
}

std::string join(const std::vector<uint32_t>& ids) {
  std::string out;
  for (uint32_t id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out.empty() ? "[]" : out;
}

std::string show(const std::optional<uint32_t>& v) { return v ? std::to_string(*v) : "[]"; }
std::string show(const std::string& v) { return v.empty() ? "[]" : v; }
std::string show(const std::map<std::string, std::string>& m) {
  std::string out;
  for (const auto& [k, v] : m) out += (out.empty() ? "" : ",") + k + "=" + v;
  return "{" + out + "}";
}

// Adds "COLUMN HAVE -> WANT" to `changes` when the two differ.
template <class T>
void diff(std::vector<std::string>& changes, std::string_view column, const T& have,
          const T& want) {
  if (have == want) return;
  changes.push_back(std::string(column) + " " + show(have) + " -> " + show(want));
}
void diff_trunks(std::vector<std::string>& changes, const std::vector<uint32_t>& have,
                 const std::vector<uint32_t>& want) {
  if (have != want) changes.push_back("trunks " + join(have) + " -> " + join(want));
}

std::string names(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& n : v) out += (out.empty() ? "" : ",") + n;
  return out;
}

// "type internal tag 10 trunks 10,20 ..." for a create.
std::string describe(const OvsPortSpec& p) {
  std::string out;
  if (p.interfaces.size() > 1) {
    std::vector<std::string> members;
    for (const auto& i : p.interfaces) members.push_back(i.name);
    out += " bond " + names(members);
  } else if (!p.interfaces.empty() && !p.interfaces[0].type.empty()) {
    out += " type " + p.interfaces[0].type;
  }
  if (p.tag) out += " tag " + std::to_string(*p.tag);
  if (!p.trunks.empty()) out += " trunks " + join(p.trunks);
  if (!p.vlan_mode.empty()) out += " vlan_mode " + p.vlan_mode;
  if (!p.bond_mode.empty()) out += " bond_mode " + p.bond_mode;
  if (!p.lacp.empty()) out += " lacp " + p.lacp;
  if (p.bond_updelay) out += " bond_updelay " + std::to_string(*p.bond_updelay);
  if (p.bond_downdelay) out += " bond_downdelay " + std::to_string(*p.bond_downdelay);
  for (const auto& [k, v] : p.other_config) out += " other_config:" + k + "=" + v;
  if (!p.interfaces.empty() && p.interfaces[0].mtu_request)
    out += " mtu " + std::to_string(*p.interfaces[0].mtu_request);
  return out;
}

// An op about `name` (the port or one of its interfaces) on the port's bridge, at its stanza.
OvsOp port_op(OvsOp::Type type, const std::string& name, const OvsPortSpec& port,
              const std::string& uuid = {}) {
  return {.type = type, .name = name, .bridge = port.bridge, .uuid = uuid, .line = port.line};
}

}  // namespace

const ObservedOvsBridge* OvsObserved::find_bridge(std::string_view name) const {
  return find_named(bridges, name);
}
const ObservedOvsPort* OvsObserved::find_port(std::string_view name) const {
  return find_named(ports, name);
}
const ObservedOvsInterface* OvsObserved::find_interface(std::string_view name) const {
  return find_named(interfaces, name);
}
const ObservedOvsInterface* OvsObserved::interface_by_uuid(std::string_view uuid) const {
  for (const auto& i : interfaces) {
    if (i.uuid == uuid) return &i;
  }
  return nullptr;
}

std::vector<OvsOp> plan_ovs(const OvsObserved& observed, const OvsDesired& desired) {
  std::vector<OvsOp> plan;
  if (observed.root_uuid.empty() && !desired.empty()) {
    plan.push_back({.type = OvsOp::Type::InitRoot});
  }
  std::map<std::string_view, const ObservedOvsPort*> port_by_uuid;
  for (const auto& p : observed.ports) port_by_uuid.emplace(p.uuid, &p);
  auto desired_port = [&](std::string_view name) { return find_named(desired.ports, name); };
  auto desired_bridge = [&](std::string_view name) { return find_named(desired.bridges, name); };

  // An owned bridge goes when it is not desired and holds nothing Moat does not own (a guest
  // port or a port someone else added would be detached with it). A port desired elsewhere
  // moves to its bridge in the same transaction, so it does not hold the bridge back.
  std::set<std::string_view> deleted_bridges;
  for (const auto& b : observed.bridges) {
    if (!b.owned || desired_bridge(b.name)) continue;
    bool keep = false;
    for (const std::string& uuid : b.ports) {
      auto it = port_by_uuid.find(uuid);
      if (it == port_by_uuid.end()) continue;
      const ObservedOvsPort& p = *it->second;
      if (desired_port(p.name)) continue;
      if (!p.owned || is_guest_port(p.name)) keep = true;
    }
    if (!keep) deleted_bridges.insert(b.name);
  }
  for (const auto& p : observed.ports) {
    if (!p.owned || is_guest_port(p.name) || desired_port(p.name)) continue;
    if (p.bridge.empty() || deleted_bridges.contains(p.bridge)) continue;
    if (p.name == p.bridge) continue;  // a kept bridge keeps its own port
    const ObservedOvsBridge* b = observed.find_bridge(p.bridge);
    plan.push_back({.type = OvsOp::Type::DeletePort,
                    .name = p.name,
                    .bridge = p.bridge,
                    .uuid = p.uuid,
                    .bridge_uuid = b ? b->uuid : ""});
  }
  for (const auto& b : observed.bridges) {
    if (!deleted_bridges.contains(b.name)) continue;
    plan.push_back({.type = OvsOp::Type::DeleteBridge, .name = b.name, .uuid = b.uuid});
  }

  std::set<std::string_view> created_bridges;
  for (const OvsBridgeSpec& want : desired.bridges) {
    const ObservedOvsBridge* have = observed.find_bridge(want.name);
    if (!have) {
      created_bridges.insert(want.name);
      const OvsPortSpec* own = desired_port(want.name);
      plan.push_back({.type = OvsOp::Type::CreateBridge,
                      .name = want.name,
                      .bridge_spec = want,
                      .port_spec = own ? *own : OvsPortSpec{.name = want.name},
                      .line = want.line});
      continue;
    }
    OvsOp op{.type = OvsOp::Type::UpdateBridge,
             .name = want.name,
             .uuid = have->uuid,
             .bridge_spec = want,
             .line = want.line};
    std::string dp = have->datapath_type.empty() ? "system" : have->datapath_type;
    diff(op.changes, "datapath_type", dp, std::string(to_string(want.datapath)));
    if (!have->owned) op.changes.push_back("adopt");
    if (!op.changes.empty()) plan.push_back(std::move(op));
  }

  std::vector<OvsOp> interface_ops;
  for (const OvsPortSpec& want : desired.ports) {
    const ObservedOvsPort* have = observed.find_port(want.name);
    if (!have) {
      // A new bridge brings its own port.
      if (want.name == want.bridge && created_bridges.contains(want.bridge)) continue;
      plan.push_back(port_op(OvsOp::Type::CreatePort, want.name, want));
      plan.back().port_spec = want;
      continue;
    }
    OvsOp op = port_op(OvsOp::Type::UpdatePort, want.name, want, have->uuid);
    op.port_spec = want;
    if (have->bridge != want.bridge) {
      op.changes.push_back("bridge " + show(have->bridge) + " -> " + want.bridge);
      if (const ObservedOvsBridge* b = observed.find_bridge(have->bridge)) op.bridge_uuid = b->uuid;
    }
    std::vector<std::string> have_members, want_members;
    for (const std::string& uuid : have->interfaces) {
      if (const ObservedOvsInterface* i = observed.interface_by_uuid(uuid)) {
        have_members.push_back(i->name);
        op.kept_interfaces.emplace(i->name, i->uuid);
      }
    }
    std::sort(have_members.begin(), have_members.end());
    for (const OvsInterfaceSpec& i : want.interfaces) want_members.push_back(i.name);
    if (have_members != want_members)
      op.changes.push_back("interfaces " + names(have_members) + " -> " + names(want_members));
    diff(op.changes, "tag", have->tag, want.tag);
    diff_trunks(op.changes, have->trunks, want.trunks);
    diff(op.changes, "vlan_mode", have->vlan_mode, want.vlan_mode);
    diff(op.changes, "bond_mode", have->bond_mode, want.bond_mode);
    diff(op.changes, "lacp", have->lacp, want.lacp);
    diff(op.changes, "bond_updelay", std::optional(have->bond_updelay.value_or(0)),
         std::optional(want.bond_updelay.value_or(0)));
    diff(op.changes, "bond_downdelay", std::optional(have->bond_downdelay.value_or(0)),
         std::optional(want.bond_downdelay.value_or(0)));
    diff(op.changes, "other_config", have->other_config, want.other_config);
    if (!have->owned) op.changes.push_back("adopt");

    // Members that stay are updated in place; new ones are inserted by the port update.
    for (const OvsInterfaceSpec& wi : want.interfaces) {
      auto kept = op.kept_interfaces.find(wi.name);
      if (kept == op.kept_interfaces.end()) continue;
      const ObservedOvsInterface* hi = observed.interface_by_uuid(kept->second);
      OvsOp iop = port_op(OvsOp::Type::UpdateInterface, wi.name, want, hi->uuid);
      iop.interface_spec = wi;
      diff(iop.changes, "type", hi->type, wi.type);
      diff(iop.changes, "mtu_request", hi->mtu_request, wi.mtu_request);
      if (!hi->owned) iop.changes.push_back("adopt");
      if (!iop.changes.empty()) interface_ops.push_back(std::move(iop));
    }
    for (auto it = op.kept_interfaces.begin(); it != op.kept_interfaces.end();) {
      it = std::binary_search(want_members.begin(), want_members.end(), it->first)
               ? std::next(it)
               : op.kept_interfaces.erase(it);
    }
    if (!op.changes.empty()) plan.push_back(std::move(op));
  }
  for (OvsOp& op : interface_ops) plan.push_back(std::move(op));
  return plan;
}

std::string to_string(const OvsOp& op) {
  auto changes = [&] {
    std::string out;
    for (const std::string& c : op.changes) out += (out.empty() ? ": " : "; ") + c;
    return out;
  };
  switch (op.type) {
    case OvsOp::Type::InitRoot:
      return "initialize the Open_vSwitch table";
    case OvsOp::Type::DeleteBridge:
      return "delete bridge " + op.name;
    case OvsOp::Type::DeletePort:
      return "delete port " + op.name + " from " + op.bridge;
    case OvsOp::Type::CreateBridge:
      return "create bridge " + op.name + " datapath " + to_string(op.bridge_spec.datapath);
    case OvsOp::Type::CreatePort:
      return "create port " + op.name + " on " + op.bridge + describe(op.port_spec);
    case OvsOp::Type::UpdateBridge:
      return "update bridge " + op.name + changes();
    case OvsOp::Type::UpdatePort:
      return "update port " + op.name + changes();
    case OvsOp::Type::UpdateInterface:
      return "update interface " + op.name + changes();
  }
  return "?";
}

std::string to_string(const std::vector<OvsOp>& plan) { return numbered_plan(plan); }

}  // namespace moat::bridges
