// IR -> libnftnl. Each op becomes one or more nfnetlink messages appended to one growing
// buffer. The encodings copy `nft --debug=netlink` (nftables 1.0.6) wherever the IR allows,
// because `nft list ruleset` only prints sensibly what it recognises:
// - a field is loaded into register 1 (16-byte register numbering); the fields of a
//   concatenation go into consecutive 32-bit registers, each rounded up to 4 bytes, and nft's
//   register numbering (NFT_REG_n when 16-byte aligned, NFT_REG32_nn otherwise) is kept;
// - host-order integers (meta mark, ct state) are turned to big endian (byteorder hton)
//   before a range or a set lookup, and set keys of those fields are stored big endian, so
//   the kernel's memcmp ordering of interval sets is numeric;
// - set key types are nft's datatype ids (concatenations: 6 bits per field), with the key
//   byte order in the set's userdata.
#include "nft_encode.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

namespace moat::firewall::nft::detail {

namespace {

// NF_INET_* and NF_BR_* hooks share the numbers of enum Hook's first five; the netdev hooks
// have their own.
uint32_t hook_number(Hook h) {
  if (h == Hook::Ingress) return NF_NETDEV_INGRESS;
  if (h == Hook::Egress) return NF_NETDEV_EGRESS;
  return static_cast<uint32_t>(h);
}

// ---- libnftnl ownership ----

struct NftnlDeleter {
  void operator()(nftnl_table* p) const { nftnl_table_free(p); }
  void operator()(nftnl_chain* p) const { nftnl_chain_free(p); }
  void operator()(nftnl_rule* p) const { nftnl_rule_free(p); }
  void operator()(nftnl_expr* p) const { nftnl_expr_free(p); }
  void operator()(nftnl_set* p) const { nftnl_set_free(p); }
  void operator()(nftnl_obj* p) const { nftnl_obj_free(p); }
  void operator()(nftnl_set_elem* p) const { nftnl_set_elem_free(p); }
  void operator()(nftnl_udata_buf* p) const { nftnl_udata_buf_free(p); }
};
template <class T>
using Owned = std::unique_ptr<T, NftnlDeleter>;

// ---- what nft calls each field ----

// nft's `enum datatypes` (src/datatype.h); they decide how `nft list` prints set keys.
enum NftType : uint32_t {
  kTypeNfproto = 2,
  kTypeIpaddr = 7,
  kTypeIp6addr = 8,
  kTypeEtheraddr = 9,
  kTypeEthertype = 10,
  kTypeArpop = 11,
  kTypeInetProtocol = 12,
  kTypeInetService = 13,
  kTypeIcmpType = 14,
  kTypeTcpFlag = 15,
  kTypeMark = 19,
  kTypeCtState = 26,
  kTypeIcmp6Type = 29,
  kTypeIcmpCode = 32,
  kTypeIcmpv6Code = 33,
  kTypeIfname = 41,
  kTypeFibAddrtype = 38,
};
constexpr uint32_t kTypeBits = 6;  // nft's TYPE_BITS, for concatenated key types

// nft's `enum byteorder`, stored in set userdata.
constexpr uint32_t kByteorderInvalid = 0;
constexpr uint32_t kByteorderHost = 1;
constexpr uint32_t kByteorderBig = 2;

struct FieldInfo {
  enum class Source { Meta, Ct, Payload, Fib };
  Source source = Source::Meta;
  uint32_t key = 0;  // NFT_META_*, NFT_CT_*, NFT_PAYLOAD_*_HEADER or NFTA_FIB_F_* flags
  uint32_t offset = 0;
  uint32_t type = 0;
  uint32_t byteorder = kByteorderInvalid;
  // A host-order integer: converted to big endian for ranges and set keys.
  bool host_integer = false;
  bool is_string = false;  // interface names
};

FieldInfo info(Field f) {
  using S = FieldInfo::Source;
  switch (f) {
    case Field::Iifname:
      return {S::Meta, NFT_META_IIFNAME, 0, kTypeIfname, kByteorderHost, false, true};
    case Field::Oifname:
      return {S::Meta, NFT_META_OIFNAME, 0, kTypeIfname, kByteorderHost, false, true};
    case Field::L4proto:
      return {S::Meta, NFT_META_L4PROTO, 0, kTypeInetProtocol};
    case Field::Nfproto:
      return {S::Meta, NFT_META_NFPROTO, 0, kTypeNfproto, kByteorderHost};
    case Field::Protocol:
      return {S::Meta, NFT_META_PROTOCOL, 0, kTypeEthertype, kByteorderBig};
    case Field::Mark:
      return {S::Meta, NFT_META_MARK, 0, kTypeMark, kByteorderHost, true};
    case Field::CtState:
      return {S::Ct, NFT_CT_STATE, 0, kTypeCtState, kByteorderHost, true};
    case Field::Ip4Saddr:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 12, kTypeIpaddr, kByteorderBig};
    case Field::Ip4Daddr:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 16, kTypeIpaddr, kByteorderBig};
    case Field::Ip6Saddr:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 8, kTypeIp6addr, kByteorderBig};
    case Field::Ip6Daddr:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 24, kTypeIp6addr, kByteorderBig};
    case Field::Sport:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 0, kTypeInetService, kByteorderBig};
    case Field::Dport:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 2, kTypeInetService, kByteorderBig};
    case Field::IcmpType:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 0, kTypeIcmpType, kByteorderBig};
    case Field::IcmpCode:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 1, kTypeIcmpCode, kByteorderBig};
    case Field::Icmp6Type:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 0, kTypeIcmp6Type, kByteorderBig};
    case Field::Icmp6Code:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 1, kTypeIcmpv6Code, kByteorderBig};
    case Field::EtherSaddr:
      return {S::Payload, NFT_PAYLOAD_LL_HEADER, 6, kTypeEtheraddr, kByteorderBig};
    case Field::EtherDaddr:
      return {S::Payload, NFT_PAYLOAD_LL_HEADER, 0, kTypeEtheraddr, kByteorderBig};
    case Field::EtherType:
      return {S::Payload, NFT_PAYLOAD_LL_HEADER, 12, kTypeEthertype, kByteorderBig};
    case Field::ArpOp:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 6, kTypeArpop, kByteorderBig};
    case Field::ArpSha:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 8, kTypeEtheraddr, kByteorderBig};
    case Field::ArpSip:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 14, kTypeIpaddr, kByteorderBig};
    case Field::ArpTip:
      return {S::Payload, NFT_PAYLOAD_NETWORK_HEADER, 24, kTypeIpaddr, kByteorderBig};
    case Field::TcpFlags:
      return {S::Payload, NFT_PAYLOAD_TRANSPORT_HEADER, 13, kTypeTcpFlag, kByteorderBig};
    case Field::FibSaddrType:
      return {S::Fib, NFTA_FIB_F_SADDR, 0, kTypeFibAddrtype, kByteorderHost, true};
  }
  return {};
}

size_t round4(size_t n) { return (n + 3) & ~size_t{3}; }

// nft's netlink_put_register(): word `w` of the 64-byte register file as a register number.
uint32_t reg_for_word(size_t w) {
  if (w % 4 == 0) return NFT_REG_1 + static_cast<uint32_t>(w / 4);
  return NFT_REG32_00 + static_cast<uint32_t>(w);
}

constexpr size_t kRegisterBytes = 64;  // NFT_REG32_00 .. NFT_REG32_15

const char* kind_name(Op::Kind kind) {
  switch (kind) {
    case Op::Kind::AddTable:
      return "AddTable";
    case Op::Kind::DeleteTable:
      return "DeleteTable";
    case Op::Kind::AddChain:
      return "AddChain";
    case Op::Kind::DeleteChain:
      return "DeleteChain";
    case Op::Kind::FlushChain:
      return "FlushChain";
    case Op::Kind::AddRule:
      return "AddRule";
    case Op::Kind::DeleteRule:
      return "DeleteRule";
    case Op::Kind::AddSet:
      return "AddSet";
    case Op::Kind::DeleteSet:
      return "DeleteSet";
    case Op::Kind::AddElements:
      return "AddElements";
    case Op::Kind::DeleteElements:
      return "DeleteElements";
    case Op::Kind::AddHelper:
      return "AddHelper";
  }
  return "?";
}

// ---- values ----

std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::InvalidArgument, std::move(message));
}

Status check_size(Field f, const Bytes& value) {
  if (value.size() != field_size(f))
    return invalid(std::string("value of ") + field_expr(f) + " has " +
                   std::to_string(value.size()) + " bytes, expected " +
                   std::to_string(field_size(f)));
  return {};
}

// A host-order integer value as the big-endian bytes it becomes after `byteorder hton`.
Bytes to_big_endian(const Bytes& host) {
  uint32_t v = 0;
  std::memcpy(&v, host.data(), sizeof(v));
  v = htonl(v);
  Bytes out(4);
  std::memcpy(out.data(), &v, sizeof(v));
  return out;
}

// The bytes a set key or range bound holds for `f` (see the file comment on host integers).
Bytes key_bytes(Field f, const Bytes& value) {
  return info(f).host_integer ? to_big_endian(value) : value;
}

// What a cmp compares an interface name with: the name and its NUL, as nft does for an exact
// (non-wildcard) name, so that `nft list` prints `iifname "tap100i0"`.
Bytes ifname_cmp_bytes(const Bytes& padded) {
  size_t n = 0;
  while (n < padded.size() && padded[n] != 0) ++n;
  Bytes out(padded.begin(), padded.begin() + static_cast<std::ptrdiff_t>(n));
  out.push_back(0);
  return out;
}

// ---- expressions ----

class RuleBuilder {
 public:
  explicit RuleBuilder(nftnl_rule* rule) : rule_(rule) {}

  nftnl_expr* add(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    nftnl_rule_add_expr(rule_, e);  // the rule owns it from here
    ++count_;
    return e;
  }
  size_t count() const { return count_; }

  void load(Field f, uint32_t reg) {
    FieldInfo fi = info(f);
    nftnl_expr* e = nullptr;
    switch (fi.source) {
      case FieldInfo::Source::Meta:
        e = add("meta");
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, fi.key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, reg);
        break;
      case FieldInfo::Source::Ct:
        e = add("ct");
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, fi.key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, reg);
        break;
      case FieldInfo::Source::Payload:
        e = add("payload");
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, fi.key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, fi.offset);
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, static_cast<uint32_t>(field_size(f)));
        nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, reg);
        break;
      case FieldInfo::Source::Fib:
        e = add("fib");
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, fi.key);
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, reg);
        break;
    }
  }

  void hton(uint32_t reg, uint32_t len) {
    nftnl_expr* e = add("byteorder");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_DREG, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_LEN, len);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BYTEORDER_SIZE, len);
  }

  // Loads `fields` the way a set of that key expects them: consecutive registers, host
  // integers turned big endian. Returns the first register.
  Result<uint32_t> load_key(const std::vector<Field>& fields) {
    if (fields.empty()) return invalid("set lookup without key fields");
    size_t word = 0;
    for (Field f : fields) {
      size_t words = round4(field_size(f)) / 4;
      if ((word + words) * 4 > kRegisterBytes)
        return invalid("concatenation longer than the 64-byte register file");
      uint32_t reg = reg_for_word(word);
      load(f, reg);
      if (info(f).host_integer) hton(reg, 4);
      word += words;
    }
    return reg_for_word(0);
  }

  void cmp(uint32_t op, const Bytes& data) {
    nftnl_expr* e = add("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data.data(), static_cast<uint32_t>(data.size()));
  }

  void range(uint32_t op, const Bytes& from, const Bytes& to) {
    nftnl_expr* e = add("range");
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_RANGE_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_FROM_DATA, from.data(), static_cast<uint32_t>(from.size()));
    nftnl_expr_set(e, NFTNL_EXPR_RANGE_TO_DATA, to.data(), static_cast<uint32_t>(to.size()));
  }

  void bitwise(const Bytes& mask, const Bytes& xor_value) {
    nftnl_expr* e = add("bitwise");
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, static_cast<uint32_t>(mask.size()));
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask.data(), static_cast<uint32_t>(mask.size()));
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, xor_value.data(),
                   static_cast<uint32_t>(xor_value.size()));
  }

  void lookup(uint32_t sreg, const std::string& set, uint32_t set_id, bool invert,
              std::optional<uint32_t> dreg) {
    nftnl_expr* e = add("lookup");
    nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, sreg);
    nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.c_str());
    if (set_id != 0) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
    if (dreg) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_DREG, *dreg);
    if (invert) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  }

  void immediate_verdict(int code, const std::string& chain) {
    nftnl_expr* e = add("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(code));
    if (!chain.empty()) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain.c_str());
  }

 private:
  nftnl_rule* rule_;
  size_t count_ = 0;
};

// The kernel verdict code of an accept/drop/return/jump/goto verdict; nullopt for others.
std::optional<int> verdict_code(VerdictCode code) {
  switch (code) {
    case VerdictCode::Accept:
      return NF_ACCEPT;
    case VerdictCode::Drop:
      return NF_DROP;
    case VerdictCode::Return:
      return NFT_RETURN;
    case VerdictCode::Jump:
      return NFT_JUMP;
    case VerdictCode::Goto:
      return NFT_GOTO;
    default:
      return std::nullopt;
  }
}

Result<uint64_t> limit_unit_seconds(const std::string& unit) {
  if (unit == "second") return 1;
  if (unit == "minute") return 60;
  if (unit == "hour") return 3600;
  if (unit == "day") return 86400;
  if (unit == "week") return 604800;
  return invalid("unknown limit unit '" + unit + "'");
}

// ---- sets ----

// What a set looks like to the encoder, from a named Set or an anonymous match.
struct SetShape {
  std::vector<Field> key;
  Set::Kind kind = Set::Kind::Set;
  bool interval = false;
};

size_t key_len(const SetShape& shape) {
  if (shape.key.size() == 1) return field_size(shape.key[0]);
  size_t len = 0;
  for (Field f : shape.key) len += round4(field_size(f));
  return len;
}

Status check_shape(const SetShape& shape) {
  if (shape.key.empty()) return invalid("set without a key");
  if (key_len(shape) > kRegisterBytes) return invalid("set key longer than 64 bytes");
  return {};
}

Owned<nftnl_set> set_ref(Family family, const std::string& table, const std::string& name,
                         uint32_t id) {
  Owned<nftnl_set> s(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, name.c_str());
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, static_cast<uint32_t>(family));
  if (id != 0) nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
  return s;
}

Owned<nftnl_set> set_definition(Family family, const std::string& table, const std::string& name,
                                const SetShape& shape, uint32_t id, uint32_t extra_flags,
                                const std::string& comment) {
  Owned<nftnl_set> s = set_ref(family, table, name, id);
  bool concat = shape.key.size() > 1;
  uint32_t flags = extra_flags;
  if (shape.interval) flags |= NFT_SET_INTERVAL;
  if (shape.interval && concat) flags |= NFT_SET_CONCAT;
  uint32_t key_type = 0;
  for (Field f : shape.key) key_type = (key_type << kTypeBits) | info(f).type;
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key_type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, static_cast<uint32_t>(key_len(shape)));
  if (shape.interval && concat) {
    // Field lengths for the pipapo backend, as nft sends them for interval concatenations.
    uint8_t lens[NFT_REG32_COUNT] = {};
    for (size_t i = 0; i < shape.key.size(); ++i)
      lens[i] = static_cast<uint8_t>(field_size(shape.key[i]));
    nftnl_set_set_data(s.get(), NFTNL_SET_DESC_CONCAT, lens,
                       static_cast<uint32_t>(shape.key.size()));
  }
  Owned<nftnl_udata_buf> ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  // A concatenation mixes byte orders; nft then records "invalid" and uses the key type.
  uint32_t key_order = concat ? kByteorderInvalid : info(shape.key[0]).byteorder;
  // Host integers are stored big endian (file comment); nft's listing expects that only of
  // interval sets, so say so for the others.
  if (!concat && info(shape.key[0]).host_integer && !shape.interval) key_order = kByteorderBig;
  nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, key_order);
  switch (shape.kind) {
    case Set::Kind::Set:
      break;
    case Set::Kind::Vmap:
      flags |= NFT_SET_MAP;
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 0);
      break;
    case Set::Kind::MarkMap:
      flags |= NFT_SET_MAP;
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, kTypeMark);
      nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 4);
      nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, kByteorderHost);
      break;
  }
  if (!comment.empty()) {
    std::string c = comment.substr(0, NFTNL_UDATA_COMMENT_MAXLEN - 1);
    nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_SET_COMMENT, c.c_str());
  }
  nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()),
                     nftnl_udata_buf_len(ud.get()));
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
  return s;
}

// One kernel element, before it becomes an nftnl_set_elem.
struct ElemSpec {
  std::vector<uint8_t> key;      // up to 64 bytes for concatenations
  std::vector<uint8_t> key_end;  // concatenated intervals: the inclusive upper bound
  uint32_t flags = 0;
  const SetElement* source = nullptr;  // carries verdict/data; null for interval ends
};

// Kernel elements for `elements` of a set shaped `shape`: interval sets get a start element
// and, unless the interval reaches the field's maximum, an end element at hi+1; concatenated
// interval sets carry the upper bound in KEY_END instead.
Result<std::vector<ElemSpec>> element_specs(const SetShape& shape,
                                            const std::vector<SetElement>& elements) {
  std::vector<ElemSpec> out;
  out.reserve(elements.size() * (shape.interval ? 2 : 1));
  for (const SetElement& e : elements) {
    if (e.key.size() != shape.key.size())
      return invalid("element has " + std::to_string(e.key.size()) + " key fields, the set " +
                     std::to_string(shape.key.size()));
    ElemSpec spec;
    spec.source = &e;
    if (shape.key.size() == 1) {
      Field f = shape.key[0];
      MOAT_RETURN_IF_ERROR(check_size(f, e.key[0].lo));
      MOAT_RETURN_IF_ERROR(check_size(f, e.key[0].hi));
      if (!shape.interval && e.key[0].lo != e.key[0].hi)
        return invalid("range element in a set without the interval flag");
      Bytes lo = key_bytes(f, e.key[0].lo);
      Bytes hi = key_bytes(f, e.key[0].hi);
      if (hi < lo) return invalid("element range with lo > hi");
      spec.key.assign(lo.begin(), lo.end());
      out.push_back(std::move(spec));
      if (shape.interval && !is_max(hi)) {
        Bytes end = successor(hi);
        out.push_back(
            {std::vector<uint8_t>(end.begin(), end.end()), {}, NFT_SET_ELEM_INTERVAL_END, nullptr});
      }
      continue;
    }
    bool ranged = false;
    for (size_t i = 0; i < shape.key.size(); ++i) {
      Field f = shape.key[i];
      MOAT_RETURN_IF_ERROR(check_size(f, e.key[i].lo));
      MOAT_RETURN_IF_ERROR(check_size(f, e.key[i].hi));
      Bytes lo = key_bytes(f, e.key[i].lo);
      Bytes hi = key_bytes(f, e.key[i].hi);
      if (hi < lo) return invalid("element range with lo > hi");
      ranged = ranged || lo != hi;
      lo.resize(round4(lo.size()), 0);
      hi.resize(round4(hi.size()), 0);
      spec.key.insert(spec.key.end(), lo.begin(), lo.end());
      spec.key_end.insert(spec.key_end.end(), hi.begin(), hi.end());
    }
    if (!shape.interval) {
      if (ranged) return invalid("range element in a set without the interval flag");
      spec.key_end.clear();
    }
    out.push_back(std::move(spec));
  }
  return out;
}

Result<Owned<nftnl_set_elem>> make_elem(const SetShape& shape, const ElemSpec& spec,
                                        bool with_data) {
  Owned<nftnl_set_elem> e(nftnl_set_elem_alloc());
  nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, spec.key.data(),
                     static_cast<uint32_t>(spec.key.size()));
  if (!spec.key_end.empty())
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY_END, spec.key_end.data(),
                       static_cast<uint32_t>(spec.key_end.size()));
  if (spec.flags != 0) nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_FLAGS, spec.flags);
  if (!with_data || spec.source == nullptr) return e;
  switch (shape.kind) {
    case Set::Kind::Set:
      break;
    case Set::Kind::Vmap: {
      std::optional<int> code = verdict_code(spec.source->verdict.code);
      if (!code) return invalid("verdict map element without accept/drop/return/jump/goto");
      nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(*code));
      if (*code == NFT_JUMP || *code == NFT_GOTO) {
        if (spec.source->verdict.chain.empty()) return invalid("jump/goto without a chain");
        nftnl_set_elem_set_str(e.get(), NFTNL_SET_ELEM_CHAIN, spec.source->verdict.chain.c_str());
      }
      break;
    }
    case Set::Kind::MarkMap: {
      Bytes data = host32(spec.source->data);
      nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_DATA, data.data(),
                         static_cast<uint32_t>(data.size()));
      break;
    }
  }
  return e;
}

// Upper bound of what one element adds to a NEWSETELEM message (nests, key, key end, flags,
// verdict with chain name, data), used to keep each message well below the 64 KiB limit of
// the u16-sized element list attribute.
size_t elem_budget(const ElemSpec& spec) {
  size_t chain = spec.source != nullptr ? spec.source->verdict.chain.size() : 0;
  return 64 + 2 * round4(spec.key.size()) + round4(spec.key_end.size()) + round4(chain + 1);
}
constexpr size_t kElementChunkBytes = 32 * 1024;

// ---- the batch ----

}  // namespace

void BatchBytes::reserve_more(size_t n) {
  if (capacity_ - size_ >= n) return;
  size_t capacity = std::max(capacity_ * 2, size_ + n);
  auto bigger = std::make_unique_for_overwrite<uint8_t[]>(capacity);
  if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
  data_ = std::move(bigger);
  capacity_ = capacity;
}

namespace {

class BatchWriter {
 public:
  BatchWriter(uint32_t first_seq, const KernelRefs& refs) : refs_(refs), next_seq_(first_seq) {
    out_.first_seq = first_seq;
  }

  const std::map<std::string, uint32_t>& ifindexes() const { return refs_.ifindexes; }
  // The kernel's handle of the rule at `op.index` of the op's chain.
  Result<uint64_t> rule_handle(const Op& op) const {
    std::string chain = chain_ref(op.family, op.table, op.name);
    auto it = refs_.rule_handles.find(chain);
    size_t have = it == refs_.rule_handles.end() ? 0 : it->second.size();
    if (op.index < 0 || static_cast<size_t>(op.index) >= have)
      return fail(ErrorCode::Kernel, "chain " + chain + " has " + std::to_string(have) +
                                         " rules in the kernel, not the " +
                                         std::to_string(op.index + 1) +
                                         " or more the applied state says");
    return it->second[static_cast<size_t>(op.index)];
  }

  void begin_batch(size_t expected_bytes) {
    out_.bytes.reserve_more(expected_bytes);
    finish(nftnl_batch_begin(tail(), next_seq_++), false);
  }

  // Appends BATCH_END and returns the batch, or an empty batch when no op wrote anything.
  EncodedBatch end_batch() && {
    if (last_command_ == kNone) return EncodedBatch{.first_seq = out_.first_seq};
    auto* last = reinterpret_cast<nlmsghdr*>(out_.bytes.data() + last_command_);
    last->nlmsg_flags |= NLM_F_ACK;
    out_.ack_seq = last->nlmsg_seq;
    out_.bytes.reserve_more(256);
    current_op_ = kNoOp;
    finish(nftnl_batch_end(tail(), next_seq_++), false);
    return std::move(out_);
  }

  void set_op(size_t index) { current_op_ = index; }

  // Starts a message of `type` with room for `payload` bytes; finish() it after building.
  nlmsghdr* start(uint16_t type, Family family, uint16_t flags, size_t payload) {
    out_.bytes.reserve_more(payload + 1024);
    return nftnl_nlmsg_build_hdr(tail(), type, static_cast<uint16_t>(family), flags, next_seq_++);
  }
  void finish(nlmsghdr* nlh, bool command = true) {
    if (command) last_command_ = out_.bytes.size();
    out_.bytes.grow(NLMSG_ALIGN(nlh->nlmsg_len));
    out_.op_index.push_back(current_op_);
  }

  // Per-batch set ids: sets created in this batch are found by id as well as by name (the
  // only way for anonymous sets, whose kernel name is chosen at creation).
  uint32_t new_set_id(Family family, const std::string& table, const std::string& name) {
    uint32_t id = ++last_set_id_;
    if (!name.empty()) set_ids_[{family, table, name}] = id;
    return id;
  }
  uint32_t set_id(Family family, const std::string& table, const std::string& name) const {
    auto it = set_ids_.find({family, table, name});
    return it == set_ids_.end() ? 0 : it->second;
  }

 private:
  const KernelRefs& refs_;
  static constexpr size_t kNone = static_cast<size_t>(-1);

  char* tail() { return reinterpret_cast<char*>(out_.bytes.data() + out_.bytes.size()); }

  size_t last_command_ = kNone;
  uint32_t next_seq_;
  size_t current_op_ = kNoOp;
  uint32_t last_set_id_ = 0;
  std::map<std::tuple<Family, std::string, std::string>, uint32_t> set_ids_;
  EncodedBatch out_;
};

// NEWSETELEM/DELSETELEM messages for `elements`, split so each stays below the chunk size.
Status put_elements(BatchWriter& w, uint16_t type, Family family, const std::string& table,
                    const std::string& set_name, uint32_t set_id, const SetShape& shape,
                    const std::vector<SetElement>& elements, bool with_data) {
  std::vector<ElemSpec> specs = MOAT_TRY(element_specs(shape, elements));
  size_t i = 0;
  while (i < specs.size()) {
    Owned<nftnl_set> chunk = set_ref(family, table, set_name, set_id);
    size_t bytes = 0;
    for (; i < specs.size() && (bytes == 0 || bytes + elem_budget(specs[i]) <= kElementChunkBytes);
         ++i) {
      bytes += elem_budget(specs[i]);
      Owned<nftnl_set_elem> e = MOAT_TRY(make_elem(shape, specs[i], with_data));
      nftnl_set_elem_add(chunk.get(), e.release());  // the set owns it from here
    }
    uint16_t flags = type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0;
    nlmsghdr* nlh = w.start(type, family, flags, bytes + 1024);
    nftnl_set_elems_nlmsg_build_payload(nlh, chunk.get());
    w.finish(nlh);
  }
  return {};
}

// ---- rules ----

struct RuleContext {
  BatchWriter& w;
  Family family;
  const std::string& table;
};

// An anonymous constant set for `m.values`, sent before the rule that looks it up (elements of
// a constant set can only be added before the set is bound to a rule). Returns its set id.
Result<uint32_t> put_anonymous_set(RuleContext& ctx, const Match& m) {
  if (m.fields.size() != 1) return invalid("anonymous set with a concatenated key");
  if (m.values.empty()) return invalid("anonymous set without values");
  Field f = m.fields[0];
  SetShape shape{.key = m.fields};
  std::vector<Interval> values = m.values;
  for (const Interval& v : values) {
    MOAT_RETURN_IF_ERROR(check_size(f, v.lo));
    MOAT_RETURN_IF_ERROR(check_size(f, v.hi));
    shape.interval = shape.interval || v.lo != v.hi;
  }
  // Overlapping or duplicate values would make the kernel refuse the set (EEXIST); merge them
  // as nft does. Host integers are compared as the big-endian keys they become.
  if (info(f).host_integer) {
    for (Interval& v : values) v = {to_big_endian(v.lo), to_big_endian(v.hi)};
  }
  if (shape.interval) {
    merge_intervals(values);
  } else {
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
  }
  std::vector<SetElement> elements;
  elements.reserve(values.size());
  for (Interval& v : values) {
    if (info(f).host_integer) v = {to_big_endian(v.lo), to_big_endian(v.hi)};  // back to host
    elements.push_back(SetElement{.key = {std::move(v)}});
  }
  std::vector<ElemSpec> specs = MOAT_TRY(element_specs(shape, elements));

  const std::string name = "__set%d";
  uint32_t id = ctx.w.new_set_id(ctx.family, ctx.table, "");
  Owned<nftnl_set> s = set_definition(ctx.family, ctx.table, name, shape, id,
                                      NFT_SET_ANONYMOUS | NFT_SET_CONSTANT, "");
  nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, static_cast<uint32_t>(specs.size()));
  nlmsghdr* nlh = ctx.w.start(NFT_MSG_NEWSET, ctx.family, NLM_F_CREATE, 1024);
  nftnl_set_nlmsg_build_payload(nlh, s.get());
  ctx.w.finish(nlh);
  MOAT_RETURN_IF_ERROR(put_elements(ctx.w, NFT_MSG_NEWSETELEM, ctx.family, ctx.table, name, id,
                                    shape, elements, false));
  return id;
}

Status encode_match(RuleContext& ctx, RuleBuilder& b, const Match& m) {
  using Op = Match::Op;
  switch (m.op) {
    case Op::Eq:
    case Op::Neq: {
      if (m.fields.size() != 1 || m.values.size() != 1)
        return invalid("==/!= needs one field and one value");
      Field f = m.fields[0];
      const Interval& v = m.values[0];
      MOAT_RETURN_IF_ERROR(check_size(f, v.lo));
      MOAT_RETURN_IF_ERROR(check_size(f, v.hi));
      b.load(f, NFT_REG_1);
      if (v.lo == v.hi) {
        b.cmp(m.op == Op::Eq ? NFT_CMP_EQ : NFT_CMP_NEQ,
              info(f).is_string ? ifname_cmp_bytes(v.lo) : v.lo);
        return {};
      }
      if (info(f).host_integer) b.hton(NFT_REG_1, 4);
      b.range(m.op == Op::Eq ? NFT_RANGE_EQ : NFT_RANGE_NEQ, key_bytes(f, v.lo),
              key_bytes(f, v.hi));
      return {};
    }
    case Op::In:
    case Op::NotIn: {
      bool invert = m.op == Op::NotIn;
      if (!m.set.empty()) {
        uint32_t reg = MOAT_TRY(b.load_key(m.fields));
        b.lookup(reg, m.set, ctx.w.set_id(ctx.family, ctx.table, m.set), invert, std::nullopt);
        return {};
      }
      uint32_t id = MOAT_TRY(put_anonymous_set(ctx, m));
      uint32_t reg = MOAT_TRY(b.load_key(m.fields));
      b.lookup(reg, "__set%d", id, invert, std::nullopt);
      return {};
    }
    case Op::BitsAny:
    case Op::BitsNone:
    case Op::MaskEq: {
      if (m.fields.size() != 1) return invalid("bit test needs one field");
      Field f = m.fields[0];
      // A number in the field's encoding (the same one the mask uses).
      auto encode = [&](uint32_t v) -> Result<Bytes> {
        switch (field_size(f)) {
          case 1:
            return u8(static_cast<uint8_t>(v));
          case 2:
            return be16(static_cast<uint16_t>(v));
          case 4:
            return info(f).host_integer ? host32(v) : to_big_endian(host32(v));
          default:
            return invalid(std::string("bit test on ") + field_expr(f));
        }
      };
      Bytes mask = MOAT_TRY(encode(m.mask));
      b.load(f, NFT_REG_1);
      Bytes zero(mask.size(), 0);
      b.bitwise(mask, zero);
      if (m.op == Op::MaskEq)
        b.cmp(NFT_CMP_EQ, MOAT_TRY(encode(m.value)));
      else
        b.cmp(m.op == Op::BitsAny ? NFT_CMP_NEQ : NFT_CMP_EQ, zero);
      return {};
    }
  }
  return invalid("unknown match operator");
}

Status encode_verdict(const RuleContext& ctx, RuleBuilder& b, const Verdict& v) {
  auto reject = [&](uint32_t type, uint8_t code) {
    nftnl_expr* e = b.add("reject");
    nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, type);
    nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, code);
  };
  // The ip and ip6 families only implement ICMP(v6) rejects, not the family-independent
  // ICMPX ones (the kernel would silently just drop), so those get the matching codes.
  bool is_ip = ctx.family == Family::Ip;
  bool is_ip6 = ctx.family == Family::Ip6;
  switch (v.code) {
    case VerdictCode::None:
      return {};
    case VerdictCode::RejectTcpReset:
      reject(NFT_REJECT_TCP_RST, 0);
      return {};
    case VerdictCode::RejectPortUnreach:
      if (is_ip)
        reject(NFT_REJECT_ICMP_UNREACH, 3);  // ICMP_PORT_UNREACH
      else if (is_ip6)
        reject(NFT_REJECT_ICMP_UNREACH, 4);  // ICMPV6_PORT_UNREACH
      else
        reject(NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_PORT_UNREACH);
      return {};
    case VerdictCode::RejectAdminProhibited:
      if (is_ip)
        reject(NFT_REJECT_ICMP_UNREACH, 13);  // ICMP_PKT_FILTERED
      else if (is_ip6)
        reject(NFT_REJECT_ICMP_UNREACH, 1);  // ICMPV6_ADM_PROHIBITED
      else
        reject(NFT_REJECT_ICMPX_UNREACH, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
      return {};
    default:
      break;
  }
  int code = *verdict_code(v.code);
  if ((code == NFT_JUMP || code == NFT_GOTO) && v.chain.empty())
    return invalid("jump/goto without a chain");
  b.immediate_verdict(code, code == NFT_JUMP || code == NFT_GOTO ? v.chain : "");
  return {};
}

Status encode_rule(BatchWriter& w, const Op& op) {
  if (!op.rule) return invalid("a rule op without its rule");
  const Rule& rule = *op.rule;
  RuleContext ctx{w, op.family, op.table};
  Owned<nftnl_rule> r(nftnl_rule_alloc());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, op.table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, op.name.c_str());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, static_cast<uint32_t>(op.family));
  RuleBuilder b(r.get());

  for (const Match& m : rule.matches) MOAT_RETURN_IF_ERROR(encode_match(ctx, b, m));
  if (rule.counter) b.add("counter");
  auto set_limit = [](nftnl_expr* e, const Limit& limit) -> Status {
    uint64_t unit = MOAT_TRY(limit_unit_seconds(limit.unit));
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_RATE, limit.rate);
    nftnl_expr_set_u64(e, NFTNL_EXPR_LIMIT_UNIT, unit);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_BURST, limit.burst);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
    nftnl_expr_set_u32(e, NFTNL_EXPR_LIMIT_FLAGS, limit.over ? NFT_LIMIT_F_INV : 0);
    return {};
  };
  if (rule.limit) MOAT_RETURN_IF_ERROR(set_limit(b.add("limit"), *rule.limit));
  if (rule.update) {
    uint32_t reg = MOAT_TRY(b.load_key(rule.update->key));
    Owned<nftnl_expr> limit(nftnl_expr_alloc("limit"));
    MOAT_RETURN_IF_ERROR(set_limit(limit.get(), rule.update->limit));
    nftnl_expr* e = b.add("dynset");
    nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, reg);
    nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
    nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, rule.update->set.c_str());
    if (uint32_t id = w.set_id(op.family, op.table, rule.update->set); id != 0)
      nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, id);
    nftnl_expr_set(e, NFTNL_EXPR_DYNSET_EXPR, limit.release(), 0);  // e owns it from here
  }
  if (!rule.ct_helper.empty()) {
    nftnl_expr* e = b.add("objref");
    nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_CT_HELPER);
    nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, rule.ct_helper.c_str());
  }
  if (rule.log) {
    nftnl_expr* e = b.add("log");
    nftnl_expr_set_u16(e, NFTNL_EXPR_LOG_GROUP, rule.log->group);
    if (!rule.log->prefix.empty())
      nftnl_expr_set_str(e, NFTNL_EXPR_LOG_PREFIX, rule.log->prefix.c_str());
  }
  if (rule.mark) {
    // (mark & and) ^ xor; with and == 0 that is a constant, which nft writes as an immediate.
    if (rule.mark->and_mask == 0) {
      nftnl_expr* e = b.add("immediate");
      nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
      Bytes v = host32(rule.mark->xor_value);
      nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, v.data(), static_cast<uint32_t>(v.size()));
    } else {
      b.load(Field::Mark, NFT_REG_1);
      b.bitwise(host32(rule.mark->and_mask), host32(rule.mark->xor_value));
    }
    nftnl_expr* e = b.add("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
  }
  if (!rule.fwd.empty()) {
    // As nft: the ifindex into a register, then `fwd` reads the device from it.
    auto it = w.ifindexes().find(rule.fwd);
    if (it == w.ifindexes().end())
      return fail(ErrorCode::NotFound, "fwd to \"" + rule.fwd + "\": no such device");
    nftnl_expr* imm = b.add("immediate");
    nftnl_expr_set_u32(imm, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
    uint32_t index = it->second;  // host order, as nft's ifindex type
    nftnl_expr_set(imm, NFTNL_EXPR_IMM_DATA, &index, sizeof(index));
    nftnl_expr* e = b.add("fwd");
    nftnl_expr_set_u32(e, NFTNL_EXPR_FWD_SREG_DEV, NFT_REG_1);
  }
  if (!rule.vmap.empty()) {
    if (rule.verdict.code != VerdictCode::None)
      return invalid("a rule has either a verdict map or a verdict, not both");
    uint32_t reg = MOAT_TRY(b.load_key(rule.vmap_fields));
    b.lookup(reg, rule.vmap, w.set_id(op.family, op.table, rule.vmap), false, NFT_REG_VERDICT);
  } else {
    MOAT_RETURN_IF_ERROR(encode_verdict(ctx, b, rule.verdict));
  }

  if (!rule.origin.empty()) {
    Owned<nftnl_udata_buf> ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
    std::string comment = rule.origin.substr(0, NFTNL_UDATA_COMMENT_MAXLEN - 1);
    nftnl_udata_put_strz(ud.get(), NFTNL_UDATA_RULE_COMMENT, comment.c_str());
    nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()),
                        nftnl_udata_buf_len(ud.get()));
  }
  // Appended, or inserted before the rule at the op's index (no NLM_F_APPEND).
  uint16_t flags = NLM_F_APPEND | NLM_F_CREATE;
  if (op.index >= 0) {
    nftnl_rule_set_u64(r.get(), NFTNL_RULE_POSITION, MOAT_TRY(w.rule_handle(op)));
    flags = NLM_F_CREATE;
  }
  // Each expression is well under 512 bytes (the largest holds a chain name).
  nlmsghdr* nlh = w.start(NFT_MSG_NEWRULE, op.family, flags, 1024 + 512 * b.count());
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  w.finish(nlh);
  return {};
}

// ---- ops ----

Status encode_op(BatchWriter& w, const Op& op) {
  switch (op.kind) {
    case Op::Kind::AddHelper: {
      if (op.helper.type.empty() || op.helper.type.size() >= 16)
        return invalid("ct helper '" + op.name + "' needs a type of 1 to 15 characters");
      Owned<nftnl_obj> o(nftnl_obj_alloc());
      nftnl_obj_set_str(o.get(), NFTNL_OBJ_TABLE, op.table.c_str());
      nftnl_obj_set_str(o.get(), NFTNL_OBJ_NAME, op.name.c_str());
      nftnl_obj_set_u32(o.get(), NFTNL_OBJ_TYPE, NFT_OBJECT_CT_HELPER);
      nftnl_obj_set_u32(o.get(), NFTNL_OBJ_FAMILY, static_cast<uint32_t>(op.family));
      nftnl_obj_set_str(o.get(), NFTNL_OBJ_CT_HELPER_NAME, op.helper.type.c_str());
      nftnl_obj_set_u16(o.get(), NFTNL_OBJ_CT_HELPER_L3PROTO,
                        op.helper.family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
      nftnl_obj_set_u8(o.get(), NFTNL_OBJ_CT_HELPER_L4PROTO, op.helper.protocol);
      nlmsghdr* nlh = w.start(NFT_MSG_NEWOBJ, op.family, NLM_F_CREATE, 1024);
      nftnl_obj_nlmsg_build_payload(nlh, o.get());
      w.finish(nlh);
      return {};
    }
    case Op::Kind::AddTable:
    case Op::Kind::DeleteTable: {
      Owned<nftnl_table> t(nftnl_table_alloc());
      nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, op.table.c_str());
      nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, static_cast<uint32_t>(op.family));
      bool add = op.kind == Op::Kind::AddTable;
      nlmsghdr* nlh = w.start(add ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, op.family,
                              add ? NLM_F_CREATE : 0, 1024);
      nftnl_table_nlmsg_build_payload(nlh, t.get());
      w.finish(nlh);
      return {};
    }
    case Op::Kind::AddChain:
    case Op::Kind::DeleteChain: {
      Owned<nftnl_chain> c(nftnl_chain_alloc());
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, op.table.c_str());
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, op.name.c_str());
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, static_cast<uint32_t>(op.family));
      bool add = op.kind == Op::Kind::AddChain;
      if (add && op.base) {
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook_number(op.base->hook));
        // Bound to devices (netdev family): one as NFTA_HOOK_DEV, several as NFTA_HOOK_DEVS.
        std::vector<const char*> devices;
        for (const auto& d : op.base->devices) devices.push_back(d.c_str());
        if (devices.size() == 1) nftnl_chain_set_str(c.get(), NFTNL_CHAIN_DEV, devices[0]);
        if (devices.size() > 1) {
          devices.push_back(nullptr);
          nftnl_chain_set_data(c.get(), NFTNL_CHAIN_DEVICES, devices.data(), 0);
        }
        nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, op.base->priority);
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY,
                            op.base->policy_drop ? NF_DROP : NF_ACCEPT);
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
      }
      nlmsghdr* nlh = w.start(add ? NFT_MSG_NEWCHAIN : NFT_MSG_DELCHAIN, op.family,
                              add ? NLM_F_CREATE : 0, 1024);
      nftnl_chain_nlmsg_build_payload(nlh, c.get());
      w.finish(nlh);
      return {};
    }
    case Op::Kind::FlushChain:
    case Op::Kind::DeleteRule: {
      // DELRULE without a handle flushes the chain.
      Owned<nftnl_rule> r(nftnl_rule_alloc());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, op.table.c_str());
      nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, op.name.c_str());
      nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, static_cast<uint32_t>(op.family));
      if (op.kind == Op::Kind::DeleteRule)
        nftnl_rule_set_u64(r.get(), NFTNL_RULE_HANDLE, MOAT_TRY(w.rule_handle(op)));
      nlmsghdr* nlh = w.start(NFT_MSG_DELRULE, op.family, 0, 1024);
      nftnl_rule_nlmsg_build_payload(nlh, r.get());
      w.finish(nlh);
      return {};
    }
    case Op::Kind::AddRule:
      return encode_rule(w, op);
    case Op::Kind::AddSet: {
      SetShape shape{op.set.key, op.set.kind, op.set.interval};
      MOAT_RETURN_IF_ERROR(check_shape(shape));
      uint32_t id = w.new_set_id(op.family, op.table, op.name);
      uint32_t flags = op.set.dynamic ? NFT_SET_EVAL | NFT_SET_TIMEOUT : 0;
      Owned<nftnl_set> s =
          set_definition(op.family, op.table, op.name, shape, id, flags, op.set.comment);
      if (op.set.timeout_s)
        nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, uint64_t{op.set.timeout_s} * 1000);
      if (op.set.size) nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, op.set.size);
      nlmsghdr* nlh = w.start(NFT_MSG_NEWSET, op.family, NLM_F_CREATE, 1024);
      nftnl_set_nlmsg_build_payload(nlh, s.get());
      w.finish(nlh);
      return {};
    }
    case Op::Kind::DeleteSet: {
      Owned<nftnl_set> s = set_ref(op.family, op.table, op.name, 0);
      nlmsghdr* nlh = w.start(NFT_MSG_DELSET, op.family, 0, 1024);
      nftnl_set_nlmsg_build_payload(nlh, s.get());
      w.finish(nlh);
      return {};
    }
    case Op::Kind::AddElements:
    case Op::Kind::DeleteElements: {
      if (op.elements.empty()) return {};
      SetShape shape{op.set.key, op.set.kind, op.set.interval};
      MOAT_RETURN_IF_ERROR(check_shape(shape));
      bool add = op.kind == Op::Kind::AddElements;
      return put_elements(w, add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, op.family, op.table,
                          op.name, w.set_id(op.family, op.table, op.name), shape, op.elements, add);
    }
  }
  return invalid("unknown op kind");
}

}  // namespace

std::string describe(const Op& op) {
  std::string out = std::string(kind_name(op.kind)) + " " + to_string(op.family) + " " + op.table;
  if (!op.name.empty()) out += " " + op.name;
  if (op.rule && !op.rule->origin.empty()) out += " (rule " + op.rule->origin + ")";
  return out;
}

std::string chain_ref(Family family, const std::string& table, const std::string& chain) {
  return table_key(family, table) + " " + chain;
}

std::map<std::pair<Family, std::string>, std::set<std::string>> positioned_chains(
    const Plan& plan) {
  std::map<std::pair<Family, std::string>, std::set<std::string>> out;
  for (const auto& op : plan)
    if (op.index >= 0) out[{op.family, op.table}].insert(op.name);
  return out;
}

std::set<std::string> fwd_devices(const Plan& plan) {
  std::set<std::string> out;
  for (const auto& op : plan)
    if (op.kind == Op::Kind::AddRule && op.rule && !op.rule->fwd.empty()) out.insert(op.rule->fwd);
  return out;
}

Result<EncodedBatch> encode_plan(const Plan& plan, uint32_t first_seq, const KernelRefs& refs) {
  BatchWriter w(first_seq, refs);
  // Our rule messages average about 400 bytes; room that is never written is never faulted
  // in, and a plan that needs more (large element lists) grows the buffer.
  w.begin_batch(64 * 1024 + plan.size() * 512);
  for (size_t i = 0; i < plan.size(); ++i) {
    w.set_op(i);
    if (auto st = encode_op(w, plan[i]); !st)
      return fail(std::move(st).error().add_context("encoding " + describe(plan[i])));
  }
  return std::move(w).end_batch();
}

}  // namespace moat::firewall::nft::detail
