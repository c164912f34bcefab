#include "moat/bridges/validate.h"

#include <algorithm>
#include <map>
#include <string>

namespace moat::bridges {

namespace {

bool is_ovs_member(InterfaceKind k) {
  return k == InterfaceKind::OvsBond || k == InterfaceKind::OvsIntPort ||
         k == InterfaceKind::OvsPort;
}

std::string describe(const Interface& i) { return std::string(to_string(i.kind)) + " " + i.name; }

std::string line_of(Position p) { return "line " + std::to_string(p.line); }

std::string show(const Address& a) {
  std::string s = a.ip.to_string();
  if (a.prefix) s += "/" + std::to_string(*a.prefix);
  return s;
}

class Checker {
 public:
  explicit Checker(const InterfacesFile& file) : file_(file) {
    for (const Interface& i : file.interfaces()) by_name_.emplace(i.name, &i);
  }

  std::vector<Error> run() {
    for (const Interface& i : file_.interfaces()) collect_enslavements(i);
    for (const Interface& i : file_.interfaces()) {
      check_bond_slaves(i);
      check_mtu(i);
      check_vlan_ids(i);
      check_ovs(i);
      check_linux_bridge_ports(i);
    }
    check_port_addresses();
    std::stable_sort(findings_.begin(), findings_.end(), [](const Finding& a, const Finding& b) {
      return std::pair(a.at.line, a.at.column) < std::pair(b.at.line, b.at.column);
    });
    std::vector<Error> errors;
    for (Finding& f : findings_) {
      errors.push_back(Error(ErrorCode::InvalidConfig, std::move(f.message))
                           .at({file_.file(), f.at.line, f.at.column}));
    }
    return errors;
  }

 private:
  struct Finding {
    Position at;
    std::string message;
  };
  struct Enslavement {
    const Interface* upper;
    Word port;
    const char* role;  // "port", "slave", "member"
  };

  const Interface* find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  void report(Position at, std::string message) { findings_.push_back({at, std::move(message)}); }

  // The position of the mtu value, whichever spelling set it.
  static Position mtu_at(const Interface& i) {
    return i.option_at.contains("mtu") ? i.position_of("mtu") : i.position_of("ovs-mtu");
  }

  void enslave(const Interface& upper, const Word& port, const char* role) {
    auto [it, inserted] = used_.emplace(port.text, Enslavement{&upper, port, role});
    if (inserted) {
      enslavements_.push_back(it->second);
      return;
    }
    const Enslavement& first = it->second;
    if (first.upper == &upper) {
      report(port.at, describe(upper) + " lists " + role + " " + port.text + " twice (first at " +
                          line_of(first.port.at) + ")");
      return;
    }
    report(port.at, std::string(role) + " " + port.text + " of " + describe(upper) +
                        " is already a " + first.role + " of " + describe(*first.upper) + " (" +
                        line_of(first.port.at) + ")");
  }

  void collect_enslavements(const Interface& i) {
    if (i.kind == InterfaceKind::Bridge && i.bridge) {
      for (const Word& p : i.bridge->ports) {
        const Interface* port = find(p.text);
        // A Linux bridge cannot take an OVS port at all; check_linux_bridge_ports says so.
        if (port && (is_ovs_member(port->kind) || port->kind == InterfaceKind::OvsBridge) &&
            port->kind != InterfaceKind::OvsIntPort) {
          continue;
        }
        enslave(i, p, "port");
      }
    }
    if (i.kind == InterfaceKind::Bond && i.bond) {
      for (const Word& s : i.bond->slaves) enslave(i, s, "slave");
    }
    if (i.kind == InterfaceKind::OvsBond && i.ovs) {
      for (const Word& m : i.ovs->bonds) enslave(i, m, "member");
    }
    if (i.kind == InterfaceKind::OvsBridge && i.ovs) {
      for (const Word& p : i.ovs->ports) {
        const Interface* port = find(p.text);
        if (port && port->kind == InterfaceKind::OvsIntPort) continue;
        enslave(i, p, "port");
      }
    }
  }

  void check_bond_slaves(const Interface& i) {
    if (i.kind != InterfaceKind::Bond || !i.bond) return;
    for (const Word& s : i.bond->slaves) {
      const Interface* slave = find(s.text);
      if (!slave) {
        if (!is_physical_nic_name(s.text) && !is_bond_name(s.text)) {
          report(s.at, "slave " + s.text + " of " + describe(i) +
                           " is not a physical NIC name or a bond");
        }
        continue;
      }
      if (slave->kind != InterfaceKind::Physical && slave->kind != InterfaceKind::Bond) {
        report(s.at, "slave " + s.text + " of " + describe(i) + " is a " + to_string(slave->kind) +
                         " (" + line_of(slave->at) + "), not a physical NIC or a bond");
      }
    }
  }

  void check_mtu(const Interface& i) {
    if (i.kind == InterfaceKind::Vlan && i.vlan && i.mtu) {
      const Interface* raw = find(i.vlan->raw_device.text);
      if (raw && raw->mtu && *i.mtu > *raw->mtu) {
        report(mtu_at(i), "mtu " + std::to_string(*i.mtu) + " of " + describe(i) +
                              " is above the mtu " + std::to_string(*raw->mtu) +
                              " of its raw device " + raw->name + " (" + line_of(mtu_at(*raw)) +
                              ")");
      }
    }
    auto check_lower = [&](const std::vector<Word>& lowers, const char* role) {
      if (!i.mtu) return;
      for (const Word& w : lowers) {
        const Interface* lower = find(w.text);
        if (lower && lower->mtu && *lower->mtu < *i.mtu) {
          report(mtu_at(*lower), "mtu " + std::to_string(*lower->mtu) + " of " + lower->name +
                                     " is below the mtu " + std::to_string(*i.mtu) + " of " +
                                     describe(i) + " (" + line_of(mtu_at(i)) + "), whose " + role +
                                     " it is");
        }
      }
    };
    if (i.kind == InterfaceKind::Bridge && i.bridge) check_lower(i.bridge->ports, "port");
    if (i.kind == InterfaceKind::Bond && i.bond) check_lower(i.bond->slaves, "slave");
  }

  void check_port_addresses() {
    for (const Enslavement& e : enslavements_) {
      const Interface* port = find(e.port.text);
      if (!port || port->addresses.empty()) continue;
      const Address& a = port->addresses.front();
      report(a.at, port->name + " has address " + show(a) + " but is a " + e.role + " of " +
                       describe(*e.upper) + " (" + line_of(e.port.at) + ")");
    }
  }

  void check_vlan_ids(const Interface& i) {
    auto outside = [](uint64_t id) { return id < 1 || id > 4094; };
    if (i.kind == InterfaceKind::Vlan && i.vlan) {
      if (!i.vlan->id) {
        report(i.at, describe(i) + " has no VLAN id: name it <device>.<id> or set vlan-id");
      } else if (outside(*i.vlan->id)) {
        report(i.position_of("vlan-id"),
               "VLAN id " + std::to_string(*i.vlan->id) + " of " + i.name + " is outside 1-4094");
      }
      if (i.vlan->raw_device.text.empty()) {
        report(i.at, describe(i) + " has no raw device: name it <device>.<id> or set " +
                         "vlan-raw-device");
      }
    }
    if (i.bridge) {
      for (const VlanRange& r : i.bridge->vids) {
        if (outside(r.first) || outside(r.last)) {
          std::string text = std::to_string(r.first);
          if (r.last != r.first) text += "-" + std::to_string(r.last);
          report(r.at, "bridge-vids entry " + text + " of " + describe(i) + " is outside 1-4094");
        }
      }
    }
    if (i.ovs && i.ovs->tag && outside(*i.ovs->tag)) {
      report(i.position_of("ovs-options"), "ovs_options tag=" + std::to_string(*i.ovs->tag) +
                                               " of " + describe(i) + " is outside 1-4094");
    }
  }

  void check_ovs(const Interface& i) {
    if (is_ovs_member(i.kind) && i.ovs) {
      const Word& b = i.ovs->bridge;
      const Interface* bridge = b.text.empty() ? nullptr : find(b.text);
      if (b.text.empty()) {
        report(i.at, describe(i) + " has no ovs_bridge");
      } else if (!bridge) {
        report(b.at, "ovs_bridge " + b.text + " of " + describe(i) + " does not exist");
      } else if (bridge->kind != InterfaceKind::OvsBridge) {
        report(b.at, "ovs_bridge " + b.text + " of " + describe(i) + " is a " +
                         to_string(bridge->kind) + " (" + line_of(bridge->at) +
                         "), not an OVSBridge");
      } else if (!bridge->ovs || std::none_of(bridge->ovs->ports.begin(), bridge->ovs->ports.end(),
                                              [&](const Word& p) { return p.text == i.name; })) {
        report(b.at, describe(*bridge) + " (" + line_of(bridge->at) + ") does not list " +
                         describe(i) + " in ovs_ports");
      }
    }
    if (i.kind == InterfaceKind::OvsBridge && i.ovs) {
      for (const Word& p : i.ovs->ports) {
        const Interface* port = find(p.text);
        if (port && is_ovs_member(port->kind) && port->ovs && !port->ovs->bridge.text.empty() &&
            port->ovs->bridge.text != i.name) {
          report(p.at, describe(i) + " lists " + p.text + " in ovs_ports, but the ovs_bridge of " +
                           describe(*port) + " is " + port->ovs->bridge.text + " (" +
                           line_of(port->ovs->bridge.at) + ")");
        }
      }
    }
  }

  void check_linux_bridge_ports(const Interface& i) {
    if (i.kind != InterfaceKind::Bridge || !i.bridge) return;
    for (const Word& p : i.bridge->ports) {
      const Interface* port = find(p.text);
      if (!port) continue;
      if (port->kind == InterfaceKind::OvsPort || port->kind == InterfaceKind::OvsBond ||
          port->kind == InterfaceKind::OvsBridge) {
        report(p.at, describe(i) + " lists " + describe(*port) + " (" + line_of(port->at) +
                         ") as a port; only an OVSIntPort can join a Linux bridge");
      }
    }
  }

  const InterfacesFile& file_;
  std::map<std::string, const Interface*, std::less<>> by_name_;
  std::map<std::string, Enslavement, std::less<>> used_;
  std::vector<Enslavement> enslavements_;
  std::vector<Finding> findings_;
};

}  // namespace

std::vector<Error> validate(const InterfacesFile& file) { return Checker(file).run(); }

}  // namespace moat::bridges
