#include "core/snapshot_codec.hpp"

#include <algorithm>
#include <type_traits>

#include "core/rating.hpp"
#include "core/stream_name.hpp"

namespace pevledger::core {
namespace {

// Version 4 keeps a utility's zone table; version 3 an EUMD's open sessions and a session's SMS number; version 2 a session's readings compactly
// (session_reading); version 1 snapshots, which repeated the EUMD and the session in every
// reading, are still read.
constexpr std::uint8_t codec_version = 4;
constexpr std::uint8_t codec_version_min = 1;

// A session's reading as version 1 stored it, keyed by its start.
struct v1_session_reading {
  std::string device;
  unix_seconds start;
  interval_content content;
};

// Every field of every entity, listed once: the same list writes and reads.
template <class Ar, class S>
void fields(Ar& ar, S& s) {
  using T = std::remove_const_t<S>;
  if constexpr (std::is_same_v<T, time_range>) {
    ar(s.start, s.end);
  } else if constexpr (std::is_same_v<T, tou_window>) {
    ar(s.name, s.weekday_mask, s.from_min, s.to_min, s.price);
  } else if constexpr (std::is_same_v<T, tariff_version>) {
    ar(s.in_force_from, s.kind, s.base_price, s.windows, s.cpp_price);
  } else if constexpr (std::is_same_v<T, tariff_state>) {
    ar(s.versions, s.hourly);
  } else if constexpr (std::is_same_v<T, utility_state>) {
    ar(s.timezone, s.comm_timeout_s, s.prepaid_reserve, s.tariffs, s.critical_peaks, s.load_controls,
       s.billed_periods, s.accounts, s.undecided_sessions);
    ar.zone_of(s);
  } else if constexpr (std::is_same_v<T, zone_rules::transition>) {
    ar(s.at, s.offset_s);
  } else if constexpr (std::is_same_v<T, line_key>) {
    ar(s.session, s.kind, s.tariff, s.window, s.adjusts, s.original_period);
  } else if constexpr (std::is_same_v<T, line_total>) {
    ar(s.wh, s.amount_micro);
  } else if constexpr (std::is_same_v<T, issued_bill>) {
    ar(s.total_micro, s.total_cents, s.line_count);
  } else if constexpr (std::is_same_v<T, account_state>) {
    ar(s.utility, s.customer, s.kind, s.topups_micro, s.posted_micro, s.reservations, s.unposted_micro, s.lines,
       s.bills);
  } else if constexpr (std::is_same_v<T, whitelist>) {
    ar(s.version, s.cards);
  } else if constexpr (std::is_same_v<T, premise_state>) {
    ar(s.utility, s.account, s.default_tariff, s.guest_policy, s.kind, s.station, s.eumds, s.escis, s.list);
  } else if constexpr (std::is_same_v<T, device_state>) {
    ar(s.premise, s.kind, s.interval_s);
    ar.since(3, s.open_sessions);
  } else if constexpr (std::is_same_v<T, pev_state>) {
    ar(s.account, s.utility, s.tariff, s.home_premise, s.allow_roaming, s.set_up, s.setup_premise);
  } else if constexpr (std::is_same_v<T, vin_registration>) {
    ar(s.home_utility, s.account);
  } else if constexpr (std::is_same_v<T, card_assignment>) {
    ar(s.account, s.assigned_at, s.revoked_at);
  } else if constexpr (std::is_same_v<T, card_state>) {
    ar(s.history);
  } else if constexpr (std::is_same_v<T, interval_content>) {
    ar(s.session, s.seconds, s.wh, s.register_wh);
  } else if constexpr (std::is_same_v<T, v1_session_reading>) {
    ar(s.device, s.start, s.content);
  } else if constexpr (std::is_same_v<T, session_reading>) {
    ar(s.start, s.wh, s.register_wh, s.seconds, s.device);
  } else if constexpr (std::is_same_v<T, energy_grant>) {
    ar(s.wh, s.depart, s.start, s.price);
  } else if constexpr (std::is_same_v<T, anomaly_note>) {
    ar(s.kind, s.interval_start, s.expected_wh, s.observed_wh, s.detail);
  } else if constexpr (std::is_same_v<T, session_decision>) {
    ar(s.payer, s.reason, s.pev, s.payer_account, s.payer_utility, s.tariff, s.tariff_utility, s.credit_account,
       s.credit_tariff, s.roaming, s.reserved_micro);
  } else if constexpr (std::is_same_v<T, session_state>) {
    ar(s.premise, s.utility, s.eumd, s.is_public, s.began, s.card, s.card_account, s.online, s.bound, s.bound_pev, s.rebind,
       s.decision, s.unplugged);
    ar.readings_of(s);
    ar(s.held, s.eumd_wh, s.duplicates, s.anomalies, s.pev_total_wh, s.grants);
    ar.since(3, s.phone);
  } else if constexpr (std::is_same_v<T, settlement_pair_total>) {
    ar(s.wh, s.amount_micro);
  } else if constexpr (std::is_same_v<T, settlement_entry>) {
    ar(s.home_utility, s.roaming_utility, s.wh, s.amount_micro, s.net);
  } else if constexpr (std::is_same_v<T, clearinghouse_state>) {
    ar(s.roaming_credits, s.settled_periods, s.statements);
  } else {
    static_assert(sizeof(T) == 0, "no snapshot fields for this type");
  }
}

template <class T>
struct is_named : std::false_type {};
template <class R, class Tag>
struct is_named<named_type<R, Tag>> : std::true_type {};

class writer {
 public:
  std::string out;

  template <class... T>
  void operator()(const T&... v) {
    (put(v), ...);
  }
  template <class T>
  void since(std::uint8_t, const T& v) {
    put(v);
  }
  void readings_of(const session_state& s) {
    put(s.reading_devices);
    put(s.readings);
  }
  void zone_of(const utility_state& s) {
    put(s.zone == nullptr ? std::vector<zone_rules::transition>() : s.zone->transitions());
  }

 private:
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  }
  void put(const std::string& v) {
    varint(v.size());
    out.append(v);
  }
  template <class T>
  void put(const std::optional<T>& v) {
    put(v.has_value());
    if (v) put(*v);
  }
  template <class A, class B>
  void put(const std::pair<A, B>& v) {
    put(v.first);
    put(v.second);
  }
  template <class C>
  void put_range(const C& c) {
    varint(c.size());
    for (const auto& x : c) put(x);
  }
  template <class T>
  void put(const std::vector<T>& v) { put_range(v); }
  template <class T>
  void put(const std::set<T>& v) { put_range(v); }
  template <class K, class V>
  void put(const std::map<K, V>& v) { put_range(v); }
  template <class K, class V>
  void put(const std::unordered_map<K, V>& v) {  // in key order, so equal states encode equally
    std::vector<const typename std::unordered_map<K, V>::value_type*> sorted;
    sorted.reserve(v.size());
    for (const auto& x : v) sorted.push_back(&x);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
    varint(sorted.size());
    for (auto* x : sorted) put(*x);
  }
  template <class T>
  void put(const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      out.push_back(v ? 1 : 0);
    } else if constexpr (std::is_enum_v<T>) {
      put(static_cast<std::int64_t>(v));
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      const auto u = static_cast<std::uint64_t>(v);
      varint((u << 1) ^ (v < 0 ? ~std::uint64_t{0} : 0));
    } else if constexpr (std::is_integral_v<T>) {
      varint(v);
    } else if constexpr (is_named<T>::value) {
      put(v.value());
    } else {
      fields(*this, v);
    }
  }
};

// Reads what `writer` wrote. Every length is checked against the bytes left, so that corrupt
// input fails cleanly rather than allocating or reading out of bounds.
class reader {
 public:
  reader(std::string_view in, std::uint8_t version) : in_(in), version_(version) {}
  bool ok = true;

  template <class... T>
  void operator()(T&... v) {
    (get(v), ...);
  }
  [[nodiscard]] bool at_end() const { return pos_ == in_.size(); }
  // A field that snapshots carry from codec version `version` on; older ones leave it empty.
  template <class T>
  void since(std::uint8_t version, T& v) {
    if (version_ >= version) get(v);
  }

  // A utility's zone table: absent before version 4 and for a utility not pinned yet.
  void zone_of(utility_state& s) {
    s.zone = nullptr;
    std::vector<zone_rules::transition> table;
    since(4, table);
    if (!ok || table.empty()) return;
    auto rules = zone_rules::from_transitions(std::move(table));
    if (!rules) {
      ok = false;
      return;
    }
    s.zone = std::make_shared<const zone_rules>(std::move(rules.value()));
  }

  // A session's readings: in start order, one per start, each naming one of the session's EUMDs.
  void readings_of(session_state& s) {
    s.reading_devices.clear();
    s.readings.clear();
    if (version_ == 1) {
      std::map<std::int64_t, v1_session_reading> v1;
      get(v1);
      s.readings.reserve(v1.size());
      for (const auto& [start, r] : v1) {
        auto known = std::find(s.reading_devices.begin(), s.reading_devices.end(), r.device);
        if (known == s.reading_devices.end()) known = s.reading_devices.insert(known, r.device);
        if (start != r.start.value() || r.content.seconds <= 0 || r.content.seconds > INT32_MAX ||
            s.reading_devices.size() > UINT16_MAX) {
          ok = false;
          return;
        }
        s.readings.push_back({start, r.content.wh, r.content.register_wh, static_cast<std::int32_t>(r.content.seconds),
                              static_cast<std::uint16_t>(known - s.reading_devices.begin())});
      }
      return;
    }
    get(s.reading_devices);
    get(s.readings);
    for (std::size_t i = 0; i < s.readings.size() && ok; ++i)
      if (s.readings[i].device >= s.reading_devices.size() || (i > 0 && s.readings[i - 1].start >= s.readings[i].start))
        ok = false;
  }

 private:
  std::string_view in_;
  std::uint8_t version_;
  std::size_t pos_ = 0;

  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) break;
      const auto b = static_cast<std::uint8_t>(in_[pos_++]);
      v |= std::uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok = false;
    return 0;
  }
  // A container length: each element takes at least one byte.
  std::size_t length() {
    const std::uint64_t n = varint();
    if (n > in_.size() - pos_) {
      ok = false;
      return 0;
    }
    return static_cast<std::size_t>(n);
  }
  void get(std::string& v) {
    const std::size_t n = length();
    if (!ok) return;
    v.assign(in_.substr(pos_, n));
    pos_ += n;
  }
  template <class T>
  void get(std::optional<T>& v) {
    bool has = false;
    get(has);
    if (!has || !ok) {
      v.reset();
      return;
    }
    T x{};
    get(x);
    v = std::move(x);
  }
  template <class A, class B>
  void get(std::pair<A, B>& v) {
    get(v.first);
    get(v.second);
  }
  template <class T>
  void get(std::vector<T>& v) {
    const std::size_t n = length();
    v.clear();
    v.reserve(n);
    for (std::size_t i = 0; i < n && ok; ++i) {
      T x{};
      get(x);
      v.push_back(std::move(x));
    }
  }
  template <class T>
  void get(std::set<T>& v) {
    const std::size_t n = length();
    v.clear();
    for (std::size_t i = 0; i < n && ok; ++i) {
      T x{};
      get(x);
      v.insert(v.end(), std::move(x));
    }
  }
  template <class Map>
  void get_map(Map& v) {
    const std::size_t n = length();
    v.clear();
    for (std::size_t i = 0; i < n && ok; ++i) {
      std::pair<typename Map::key_type, typename Map::mapped_type> x{};
      get(x);
      v.emplace(std::move(x.first), std::move(x.second));
    }
  }
  template <class K, class V>
  void get(std::map<K, V>& v) { get_map(v); }
  template <class K, class V>
  void get(std::unordered_map<K, V>& v) { get_map(v); }
  template <class T>
  void get(T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      if (pos_ >= in_.size() || static_cast<std::uint8_t>(in_[pos_]) > 1) {
        ok = false;
        return;
      }
      v = in_[pos_++] == 1;
    } else if constexpr (std::is_enum_v<T>) {
      std::int64_t x = 0;
      get(x);
      if (x < static_cast<std::int64_t>(T::MIN) || x > static_cast<std::int64_t>(T::MAX)) ok = false;
      v = ok ? static_cast<T>(x) : T::MIN;
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      const std::uint64_t u = varint();
      v = static_cast<T>(static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1)));
    } else if constexpr (std::is_integral_v<T>) {
      v = static_cast<T>(varint());
    } else if constexpr (is_named<T>::value) {
      typename T::rep x{};
      get(x);
      v = T(x);
    } else {
      fields(*this, v);
    }
  }
};

template <class State>
std::string encode(const State& s) {
  writer w;
  w.out.push_back(static_cast<char>(codec_version));
  w(s);
  return std::move(w.out);
}

template <class State>
status decode(std::string_view bytes, State& out, std::string_view kind) {
  const auto version = bytes.empty() ? std::uint8_t{0} : static_cast<std::uint8_t>(bytes[0]);
  if (version < codec_version_min || version > codec_version)
    return {errc::corruption, "snapshot of a " + std::string(kind) + ": unknown encoding"};
  reader r(bytes.substr(1), version);
  out = State{};
  r(out);
  if (!r.ok || !r.at_end()) return {errc::corruption, "snapshot of a " + std::string(kind) + " is malformed"};
  return status::ok();
}

}  // namespace

std::string encode_snapshot(const utility_state& s) { return encode(s); }
std::string encode_snapshot(const account_state& s) { return encode(s); }
std::string encode_snapshot(const premise_state& s) { return encode(s); }
std::string encode_snapshot(const device_state& s) { return encode(s); }
std::string encode_snapshot(const pev_state& s) { return encode(s); }
std::string encode_snapshot(const vin_registration& s) { return encode(s); }
std::string encode_snapshot(const card_state& s) { return encode(s); }
std::string encode_snapshot(const session_state& s) { return encode(s); }
std::string encode_snapshot(const clearinghouse_state& s) { return encode(s); }
std::string encode_snapshot(const interval_content& s) { return encode(s); }

status decode_snapshot(std::string_view bytes, utility_state& out) {
  return decode(bytes, out, "utility");
}
status decode_snapshot(std::string_view bytes, account_state& out) { return decode(bytes, out, "account"); }
status decode_snapshot(std::string_view bytes, premise_state& out) { return decode(bytes, out, "premise"); }
status decode_snapshot(std::string_view bytes, device_state& out) { return decode(bytes, out, "device"); }
status decode_snapshot(std::string_view bytes, pev_state& out) { return decode(bytes, out, "PEV"); }
status decode_snapshot(std::string_view bytes, vin_registration& out) { return decode(bytes, out, "registration"); }
status decode_snapshot(std::string_view bytes, card_state& out) { return decode(bytes, out, "card"); }
status decode_snapshot(std::string_view bytes, session_state& out) { return decode(bytes, out, "session"); }
status decode_snapshot(std::string_view bytes, clearinghouse_state& out) {
  return decode(bytes, out, "clearinghouse");
}
status decode_snapshot(std::string_view bytes, interval_content& out) { return decode(bytes, out, "interval"); }

namespace {
template <class State>
status restore_into(entity_table<State>& table, const std::string& id, std::string_view bytes) {
  State s;
  PEV_RETURN_IF_ERROR(decode_snapshot(bytes, s));
  if (auto* slot = table.resident(id)) {
    slot->state = std::move(s);
  } else {
    table.activate(id, std::move(s), {});
  }
  return status::ok();
}
}  // namespace

status restore_entity(ledger_state& state, std::string_view stream, std::string_view bytes) {
  const stream_name name = stream_name::split(stream);
  const std::string_view kind = name.kind;
  const std::string id(name.id);
  if (kind == stream_kind::clearinghouse && id.empty()) return decode_snapshot(bytes, state.clearinghouse);
  if (id.empty()) return {errc::corruption, "snapshot of an unknown stream '" + std::string(stream) + "'"};
  if (kind == stream_kind::utility) {
    utility_state u;
    PEV_RETURN_IF_ERROR(decode_snapshot(bytes, u));
    state.utilities[id] = std::move(u);
    return status::ok();
  }
  if (kind == stream_kind::account) return restore_into(state.accounts, id, bytes);
  if (kind == stream_kind::premise) return restore_into(state.premises, id, bytes);
  if (kind == stream_kind::device) return restore_into(state.devices, id, bytes);
  if (kind == stream_kind::pev) return restore_into(state.pevs, id, bytes);
  if (kind == stream_kind::registry) return restore_into(state.registrations, id, bytes);
  if (kind == stream_kind::card) return restore_into(state.cards, id, bytes);
  if (kind == stream_kind::phone) return restore_into(state.phones, id, bytes);
  if (kind == stream_kind::session) return restore_into(state.sessions, id, bytes);
  return {errc::corruption, "snapshot of an unknown stream '" + std::string(stream) + "'"};
}

}  // namespace pevledger::core
