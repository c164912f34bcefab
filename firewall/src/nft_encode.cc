// IR -> nfnetlink. Each op becomes one or more messages appended to one growing buffer: rule
// messages (nearly all of a batch) are written attribute by attribute, byte for byte what
// libnftnl would build but without its per-expression objects (half the encoding time of a
// 5,000-guest batch); tables, chains, sets and elements go through libnftnl. The encodings copy
// `nft --debug=netlink` (nftables 1.0.6) wherever the IR allows, because `nft list ruleset` only
// prints sensibly what it recognises:
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
#include <string_view>
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

// ---- attributes ----

// Netlink attributes appended to the batch, byte for byte what libmnl's mnl_attr_put*()
// write (integers big endian, as nf_tables reads them). Nests are offsets, not pointers, so
// the buffer may grow while one is open.
class Attrs {
 public:
  explicit Attrs(BatchBytes& out) : out_(out) {}

  void put(uint16_t type, const void* data, size_t len) {
    size_t total = NLA_ALIGN(NLA_HDRLEN + len);
    out_.reserve_more(total);
    uint8_t* p = out_.data() + out_.size();
    nlattr header{static_cast<uint16_t>(NLA_HDRLEN + len), type};
    std::memcpy(p, &header, sizeof(header));
    if (len > 0) std::memcpy(p + NLA_HDRLEN, data, len);
    std::memset(p + NLA_HDRLEN + len, 0, total - NLA_HDRLEN - len);
    out_.grow(total);
  }
  void u8(uint16_t type, uint8_t v) { put(type, &v, sizeof(v)); }
  void be16(uint16_t type, uint16_t v) {
    v = htons(v);
    put(type, &v, sizeof(v));
  }
  void be32(uint16_t type, uint32_t v) {
    v = htonl(v);
    put(type, &v, sizeof(v));
  }
  void be64(uint16_t type, uint64_t v) {
    v = htobe64(v);
    put(type, &v, sizeof(v));
  }
  void str(uint16_t type, const std::string& s) { put(type, s.c_str(), s.size() + 1); }
  void bytes(uint16_t type, const Bytes& b) { put(type, b.data(), b.size()); }

  size_t begin(uint16_t type) {
    size_t at = out_.size();
    put(static_cast<uint16_t>(type | NLA_F_NESTED), nullptr, 0);
    return at;
  }
  void end(size_t at) {
    auto len = static_cast<uint16_t>(out_.size() - at);
    std::memcpy(out_.data() + at, &len, sizeof(len));  // nla_len, the first field
  }
  // A value nested as NFTA_DATA_VALUE, as the kernel's nft_data_init() expects it.
  void data(uint16_t type, const Bytes& value) {
    size_t at = begin(type);
    bytes(NFTA_DATA_VALUE, value);
    end(at);
  }

 private:
  BatchBytes& out_;
};

// ---- expressions ----

// Writes a rule's expressions into its NFTA_RULE_EXPRESSIONS nest, each as libnftnl's
// nftnl_expr_build_payload() would: a list element holding the name and the data nest.
class RuleBuilder {
 public:
  explicit RuleBuilder(Attrs& a) : a_(a) {}

  // Opens expression `name`: write its attributes into a(), then close() it.
  Attrs& open(const char* name) {
    element_ = a_.begin(NFTA_LIST_ELEM);
    a_.put(NFTA_EXPR_NAME, name, std::strlen(name) + 1);
    data_ = a_.begin(NFTA_EXPR_DATA);
    return a_;
  }
  void close() {
    a_.end(data_);
    a_.end(element_);
  }
  void load(Field f, uint32_t reg) {
    FieldInfo fi = info(f);
    switch (fi.source) {
      case FieldInfo::Source::Meta:
        open("meta").be32(NFTA_META_KEY, fi.key);
        a_.be32(NFTA_META_DREG, reg);
        break;
      case FieldInfo::Source::Ct:
        open("ct").be32(NFTA_CT_KEY, fi.key);
        a_.be32(NFTA_CT_DREG, reg);
        break;
      case FieldInfo::Source::Payload:
        open("payload").be32(NFTA_PAYLOAD_DREG, reg);
        a_.be32(NFTA_PAYLOAD_BASE, fi.key);
        a_.be32(NFTA_PAYLOAD_OFFSET, fi.offset);
        a_.be32(NFTA_PAYLOAD_LEN, static_cast<uint32_t>(field_size(f)));
        break;
      case FieldInfo::Source::Fib:
        open("fib").be32(NFTA_FIB_FLAGS, fi.key);
        a_.be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
        a_.be32(NFTA_FIB_DREG, reg);
        break;
    }
    close();
  }

  void hton(uint32_t reg, uint32_t len) {
    open("byteorder").be32(NFTA_BYTEORDER_SREG, reg);
    a_.be32(NFTA_BYTEORDER_DREG, reg);
    a_.be32(NFTA_BYTEORDER_OP, NFT_BYTEORDER_HTON);
    a_.be32(NFTA_BYTEORDER_LEN, len);
    a_.be32(NFTA_BYTEORDER_SIZE, len);
    close();
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
    open("cmp").be32(NFTA_CMP_SREG, NFT_REG_1);
    a_.be32(NFTA_CMP_OP, op);
    a_.data(NFTA_CMP_DATA, data);
    close();
  }

  void range(uint32_t op, const Bytes& from, const Bytes& to) {
    open("range").be32(NFTA_RANGE_SREG, NFT_REG_1);
    a_.be32(NFTA_RANGE_OP, op);
    a_.data(NFTA_RANGE_FROM_DATA, from);
    a_.data(NFTA_RANGE_TO_DATA, to);
    close();
  }

  void bitwise(const Bytes& mask, const Bytes& xor_value) {
    open("bitwise").be32(NFTA_BITWISE_SREG, NFT_REG_1);
    a_.be32(NFTA_BITWISE_DREG, NFT_REG_1);
    a_.be32(NFTA_BITWISE_LEN, static_cast<uint32_t>(mask.size()));
    a_.data(NFTA_BITWISE_MASK, mask);
    a_.data(NFTA_BITWISE_XOR, xor_value);
    close();
  }

  void lookup(uint32_t sreg, const std::string& set, uint32_t set_id, bool invert,
              std::optional<uint32_t> dreg) {
    open("lookup").be32(NFTA_LOOKUP_SREG, sreg);
    if (dreg) a_.be32(NFTA_LOOKUP_DREG, *dreg);
    a_.str(NFTA_LOOKUP_SET, set);
    if (set_id != 0) a_.be32(NFTA_LOOKUP_SET_ID, set_id);
    if (invert) a_.be32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
    close();
  }

  void immediate_verdict(int code, const std::string& chain) {
    open("immediate").be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
    size_t data = a_.begin(NFTA_IMMEDIATE_DATA);
    size_t verdict = a_.begin(NFTA_DATA_VERDICT);
    a_.be32(NFTA_VERDICT_CODE, static_cast<uint32_t>(code));
    if (!chain.empty()) a_.str(NFTA_VERDICT_CHAIN, chain);
    a_.end(verdict);
    a_.end(data);
    close();
  }

  void immediate_data(uint32_t reg, const Bytes& value) {
    open("immediate").be32(NFTA_IMMEDIATE_DREG, reg);
    a_.data(NFTA_IMMEDIATE_DATA, value);
    close();
  }

 private:
  Attrs& a_;
  size_t element_ = 0, data_ = 0;
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

  // BATCH_BEGIN, carrying `genid` (when not 0) as NFNL_BATCH_GENID: the kernel then refuses
  // the whole batch with ERESTART unless the ruleset is still at that generation.
  void begin_batch(size_t expected_bytes, uint32_t genid) {
    out_.bytes.reserve_more(expected_bytes);
    size_t at = out_.bytes.size();
    out_.bytes.grow(nftnl_batch_begin(tail(), next_seq_++)->nlmsg_len);
    if (genid != 0) attrs_.be32(NFNL_BATCH_GENID, genid);
    close_message(at);
    out_.op_index.push_back(kNoOp);
  }

  // A table this batch creates numbers the chains, sets, objects and rules made in it 1, 2,
  // ... in message order (the kernel's per-table handle counter starts at 0 and nothing else
  // can add to the table before the batch commits); other tables' handles are the kernel's
  // to choose. created() marks such a table, takes_handle() counts one object made in it.
  // Both are called once per rule, for runs of rules of one table and chain: the last table
  // and chain looked up are kept, so that a run builds no key.
  void created(Family family, const std::string& table) {
    fresh_[table_key(family, table)] = 0;
    last_table_ = nullptr;
  }
  std::optional<uint64_t> takes_handle(Family family, const std::string& table) {
    if (last_table_ == nullptr || last_family_ != family || *last_table_ != table) {
      auto it = fresh_.find(table_key(family, table));
      last_counter_ = it == fresh_.end() ? nullptr : &it->second;
      last_table_ = &table;
      last_family_ = family;
    }
    if (last_counter_ == nullptr) return std::nullopt;
    return ++*last_counter_;
  }
  // Whether the next message asks to be echoed (see EncodedBatch::echoed_seqs).
  bool echo_next() {
    if (out_.echoed_seqs.size() >= kEchoedRules) return false;
    out_.echoed_seqs.push_back(next_seq_);
    return true;
  }
  void rule_added(const Op& op, uint64_t handle) {
    if (last_chain_op_ == nullptr || last_chain_op_->family != op.family ||
        last_chain_op_->table != op.table || last_chain_op_->name != op.name)
      last_chain_handles_ = &out_.new_rule_handles[chain_ref(op.family, op.table, op.name)];
    last_chain_op_ = &op;
    last_chain_handles_->push_back(handle);
  }

  // Appends BATCH_END (for Commit) and returns the batch, or an empty batch when no op wrote
  // anything.
  EncodedBatch end_batch(BatchEnd end) && {
    if (last_command_ == kNone) return EncodedBatch{.first_seq = out_.first_seq};
    auto* last = reinterpret_cast<nlmsghdr*>(out_.bytes.data() + last_command_);
    last->nlmsg_flags |= NLM_F_ACK;
    out_.ack_seq = last->nlmsg_seq;
    if (end == BatchEnd::Commit) {
      out_.bytes.reserve_more(256);
      current_op_ = kNoOp;
      finish(nftnl_batch_end(tail(), next_seq_++), false);
    }
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

  // A message written attribute by attribute through attrs(): begin_message() writes the
  // headers and returns the message's offset, end_message() closes it.
  size_t begin_message(uint16_t type, Family family, uint16_t flags) {
    size_t at = out_.bytes.size();
    nlmsghdr* nlh = start(type, family, flags, 0);
    out_.bytes.grow(nlh->nlmsg_len);
    return at;
  }
  void end_message(size_t at) {
    close_message(at);
    last_command_ = at;
    out_.op_index.push_back(current_op_);
  }
  Attrs& attrs() { return attrs_; }

  // Per-batch set ids: sets created in this batch are found by id as well as by name (the
  // only way for anonymous sets, whose kernel name is chosen at creation).
  uint32_t new_set_id(Family family, const std::string& table, const std::string& name) {
    uint32_t id = ++last_set_id_;
    if (!name.empty()) set_ids_[{family, table, name}] = id;
    return id;
  }
  uint32_t set_id(Family family, const std::string& table, const std::string& name) const {
    // Looked up without copying the names: once per rule that refers to a set.
    auto it =
        set_ids_.find(std::tuple<Family, std::string_view, std::string_view>(family, table, name));
    return it == set_ids_.end() ? 0 : it->second;
  }

 private:
  const KernelRefs& refs_;
  static constexpr size_t kNone = static_cast<size_t>(-1);

  char* tail() { return reinterpret_cast<char*>(out_.bytes.data() + out_.bytes.size()); }
  // The message written from offset `at` up to here gets its length (nlmsg_len, its first
  // field).
  void close_message(size_t at) {
    auto len = static_cast<uint32_t>(out_.bytes.size() - at);
    std::memcpy(out_.bytes.data() + at, &len, sizeof(len));
  }

  size_t last_command_ = kNone;
  uint32_t next_seq_;
  size_t current_op_ = kNoOp;
  uint32_t last_set_id_ = 0;
  std::map<std::tuple<Family, std::string, std::string>, uint32_t, std::less<>> set_ids_;
  std::map<std::string, uint64_t> fresh_;  // table_key() -> the last handle it gave
  const std::string* last_table_ = nullptr;
  Family last_family_ = Family::Inet;
  uint64_t* last_counter_ = nullptr;
  const Op* last_chain_op_ = nullptr;
  std::vector<uint64_t>* last_chain_handles_ = nullptr;
  EncodedBatch out_;
  Attrs attrs_{out_.bytes};
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
  ctx.w.takes_handle(ctx.family, ctx.table);
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

// `anonymous_id`: the set put_anonymous_set() sent for an In/NotIn match without a named set.
Status encode_match(const RuleContext& ctx, RuleBuilder& b, const Match& m, uint32_t anonymous_id) {
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
      if (auto prefix = ifname_prefix(v); prefix && info(f).is_string) {
        // A wildcard name, as nft sends `iifname "fwbr*"`: the prefix alone, without its NUL.
        b.cmp(m.op == Op::Eq ? NFT_CMP_EQ : NFT_CMP_NEQ, Bytes(prefix->begin(), prefix->end()));
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
      uint32_t reg = MOAT_TRY(b.load_key(m.fields));
      b.lookup(reg, "__set%d", anonymous_id, invert, std::nullopt);
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
    Attrs& a = b.open("reject");
    a.be32(NFTA_REJECT_TYPE, type);
    a.u8(NFTA_REJECT_ICMP_CODE, code);
    b.close();
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

// NFTA_RULE_USERDATA holding the comment, in libnftnl's udata layout (type, length, value).
void put_comment(Attrs& a, const std::string& origin) {
  std::string_view comment(origin.data(),
                           std::min<size_t>(origin.size(), NFTNL_UDATA_COMMENT_MAXLEN - 1));
  uint8_t ud[2 + NFTNL_UDATA_COMMENT_MAXLEN];
  ud[0] = NFTNL_UDATA_RULE_COMMENT;
  ud[1] = static_cast<uint8_t>(comment.size() + 1);
  std::memcpy(ud + 2, comment.data(), comment.size());
  ud[2 + comment.size()] = 0;
  a.put(NFTA_RULE_USERDATA, ud, 2 + comment.size() + 1);
}

Status put_limit(Attrs& a, const Limit& limit) {
  uint64_t unit = MOAT_TRY(limit_unit_seconds(limit.unit));
  a.be64(NFTA_LIMIT_RATE, limit.rate);
  a.be64(NFTA_LIMIT_UNIT, unit);
  a.be32(NFTA_LIMIT_BURST, limit.burst);
  a.be32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS);
  a.be32(NFTA_LIMIT_FLAGS, limit.over ? NFT_LIMIT_F_INV : 0);
  return {};
}

Status encode_rule(BatchWriter& w, const Op& op) {
  if (!op.rule) return invalid("a rule op without its rule");
  const Rule& rule = *op.rule;
  RuleContext ctx{w, op.family, op.table};
  // Anonymous sets are whole messages of their own, sent before the rule's (rare: literal
  // lists are named constant sets, so most rules allocate nothing here).
  std::vector<uint32_t> anonymous_ids;
  for (size_t i = 0; i < rule.matches.size(); ++i) {
    const Match& m = rule.matches[i];
    if ((m.op != Match::Op::In && m.op != Match::Op::NotIn) || !m.set.empty()) continue;
    anonymous_ids.resize(rule.matches.size());
    anonymous_ids[i] = MOAT_TRY(put_anonymous_set(ctx, m));
  }
  // Appended, or inserted before the rule at the op's index (no NLM_F_APPEND).
  std::optional<uint64_t> position;
  if (op.index >= 0) position = MOAT_TRY(w.rule_handle(op));
  uint16_t flags = position ? NLM_F_CREATE : NLM_F_APPEND | NLM_F_CREATE;

  if (auto handle = w.takes_handle(op.family, op.table))
    w.rule_added(op, *handle);
  else if (w.echo_next())
    flags |= NLM_F_ECHO;
  size_t message = w.begin_message(NFT_MSG_NEWRULE, op.family, flags);
  Attrs& a = w.attrs();
  a.str(NFTA_RULE_TABLE, op.table);
  a.str(NFTA_RULE_CHAIN, op.name);
  if (position) a.be64(NFTA_RULE_POSITION, *position);
  if (!rule.origin.empty()) put_comment(a, rule.origin);
  size_t expressions = a.begin(NFTA_RULE_EXPRESSIONS);
  RuleBuilder b(a);

  for (size_t i = 0; i < rule.matches.size(); ++i)
    MOAT_RETURN_IF_ERROR(
        encode_match(ctx, b, rule.matches[i], anonymous_ids.empty() ? 0 : anonymous_ids[i]));
  if (rule.counter) {
    b.open("counter");
    b.close();
  }
  if (rule.limit) {
    MOAT_RETURN_IF_ERROR(put_limit(b.open("limit"), *rule.limit));
    b.close();
  }
  if (rule.update) {
    uint32_t reg = MOAT_TRY(b.load_key(rule.update->key));
    b.open("dynset").be32(NFTA_DYNSET_SREG_KEY, reg);
    a.be32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
    a.str(NFTA_DYNSET_SET_NAME, rule.update->set);
    if (uint32_t id = w.set_id(op.family, op.table, rule.update->set); id != 0)
      a.be32(NFTA_DYNSET_SET_ID, id);
    // The per-element expression: a name and its data, without a list element.
    size_t nested = a.begin(NFTA_DYNSET_EXPR);
    a.put(NFTA_EXPR_NAME, "limit", sizeof("limit"));
    size_t data = a.begin(NFTA_EXPR_DATA);
    MOAT_RETURN_IF_ERROR(put_limit(a, rule.update->limit));
    a.end(data);
    a.end(nested);
    b.close();
  }
  if (!rule.ct_helper.empty()) {
    b.open("objref").be32(NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_CT_HELPER);
    a.put(NFTA_OBJREF_IMM_NAME, rule.ct_helper.data(), rule.ct_helper.size());  // no NUL, as nft
    b.close();
  }
  if (rule.log) {
    b.open("log");
    if (!rule.log->prefix.empty()) a.str(NFTA_LOG_PREFIX, rule.log->prefix);
    a.be16(NFTA_LOG_GROUP, rule.log->group);
    b.close();
  }
  if (rule.mark) {
    // (mark & and) ^ xor; with and == 0 that is a constant, which nft writes as an immediate.
    if (rule.mark->and_mask == 0) {
      b.immediate_data(NFT_REG_1, host32(rule.mark->xor_value));
    } else {
      b.load(Field::Mark, NFT_REG_1);
      b.bitwise(host32(rule.mark->and_mask), host32(rule.mark->xor_value));
    }
    b.open("meta").be32(NFTA_META_KEY, NFT_META_MARK);
    a.be32(NFTA_META_SREG, NFT_REG_1);
    b.close();
  }
  if (rule.ether_daddr) {
    if (rule.ether_daddr->size() != 6) return invalid("ether daddr set needs a 6-byte MAC");
    b.immediate_data(NFT_REG_1, *rule.ether_daddr);
    FieldInfo fi = info(Field::EtherDaddr);
    b.open("payload").be32(NFTA_PAYLOAD_SREG, NFT_REG_1);
    a.be32(NFTA_PAYLOAD_BASE, fi.key);
    a.be32(NFTA_PAYLOAD_OFFSET, fi.offset);
    a.be32(NFTA_PAYLOAD_LEN, 6);
    b.close();
  }
  if (rule.notrack) {
    b.open("notrack");
    b.close();
  }
  if (!rule.fwd.empty()) {
    // As nft: the ifindex into a register, then `fwd` reads the device from it.
    auto it = w.ifindexes().find(rule.fwd);
    if (it == w.ifindexes().end())
      return fail(ErrorCode::NotFound, "fwd to \"" + rule.fwd + "\": no such device");
    uint32_t index = it->second;  // host order, as nft's ifindex type
    Bytes value(sizeof(index));
    std::memcpy(value.data(), &index, sizeof(index));
    b.immediate_data(NFT_REG_1, value);
    b.open("fwd").be32(NFTA_FWD_SREG_DEV, NFT_REG_1);
    b.close();
  }
  if (!rule.vmap.empty()) {
    if (rule.verdict.code != VerdictCode::None)
      return invalid("a rule has either a verdict map or a verdict, not both");
    uint32_t reg = MOAT_TRY(b.load_key(rule.vmap_fields));
    b.lookup(reg, rule.vmap, w.set_id(op.family, op.table, rule.vmap), false, NFT_REG_VERDICT);
  } else {
    MOAT_RETURN_IF_ERROR(encode_verdict(ctx, b, rule.verdict));
  }
  a.end(expressions);
  w.end_message(message);
  return {};
}

// ---- ops ----

Status encode_op(BatchWriter& w, const Op& op) {
  switch (op.kind) {
    case Op::Kind::AddHelper: {
      if (!op.helper) return invalid("ct helper '" + op.name + "' without its definition");
      const CtHelper& helper = *op.helper;
      if (helper.type.empty() || helper.type.size() >= 16)
        return invalid("ct helper '" + op.name + "' needs a type of 1 to 15 characters");
      Owned<nftnl_obj> o(nftnl_obj_alloc());
      nftnl_obj_set_str(o.get(), NFTNL_OBJ_TABLE, op.table.c_str());
      nftnl_obj_set_str(o.get(), NFTNL_OBJ_NAME, op.name.c_str());
      nftnl_obj_set_u32(o.get(), NFTNL_OBJ_TYPE, NFT_OBJECT_CT_HELPER);
      nftnl_obj_set_u32(o.get(), NFTNL_OBJ_FAMILY, static_cast<uint32_t>(op.family));
      nftnl_obj_set_str(o.get(), NFTNL_OBJ_CT_HELPER_NAME, helper.type.c_str());
      nftnl_obj_set_u16(o.get(), NFTNL_OBJ_CT_HELPER_L3PROTO,
                        helper.family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
      nftnl_obj_set_u8(o.get(), NFTNL_OBJ_CT_HELPER_L4PROTO, helper.protocol);
      w.takes_handle(op.family, op.table);
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
      // Created, never merged into a table of the same name that is already there: the
      // handles its objects get are then known (BatchWriter::created()).
      if (add) w.created(op.family, op.table);
      nlmsghdr* nlh = w.start(add ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, op.family,
                              add ? NLM_F_CREATE | NLM_F_EXCL : 0, 1024);
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
      if (add) w.takes_handle(op.family, op.table);
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
      if (!op.set) return invalid("a set op without its set");
      const Set& set = *op.set;
      SetShape shape{set.key, set.kind, set.interval};
      MOAT_RETURN_IF_ERROR(check_shape(shape));
      uint32_t id = w.new_set_id(op.family, op.table, op.name);
      uint32_t flags = set.dynamic ? NFT_SET_EVAL | NFT_SET_TIMEOUT : 0;
      Owned<nftnl_set> s =
          set_definition(op.family, op.table, op.name, shape, id, flags, set.comment);
      if (set.timeout_s)
        nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, uint64_t{set.timeout_s} * 1000);
      if (set.size) nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, set.size);
      w.takes_handle(op.family, op.table);
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
      if (!op.set) return invalid("a set op without its set");
      SetShape shape{op.set->key, op.set->kind, op.set->interval};
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

Result<EncodedBatch> encode_plan(const Plan& plan, uint32_t first_seq, const KernelRefs& refs,
                                 BatchEnd end) {
  BatchWriter w(first_seq, refs);
  // Our rule messages average about 400 bytes; room that is never written is never faulted
  // in, and a plan that needs more (large element lists) grows the buffer.
  w.begin_batch(64 * 1024 + plan.size() * 512, refs.genid);
  for (size_t i = 0; i < plan.size(); ++i) {
    w.set_op(i);
    if (auto st = encode_op(w, plan[i]); !st)
      return fail(std::move(st).error().add_context("encoding " + describe(plan[i])));
  }
  return std::move(w).end_batch(end);
}

}  // namespace moat::firewall::nft::detail
