#pragma once
// Strong types for quantities that must never be mixed up: energy, money, prices, instants and log
// positions. All are exact integers (SPEC section 1); there is no conversion to floating point.

#include <compare>
#include <cstdint>
#include <functional>

namespace pevledger {

template <class Rep, class Tag>
class named_type {
 public:
  using rep = Rep;
  constexpr named_type() = default;
  constexpr explicit named_type(Rep v) : v_(v) {}
  [[nodiscard]] constexpr Rep value() const noexcept { return v_; }
  constexpr auto operator<=>(const named_type&) const = default;

 private:
  Rep v_{};
};

// Quantities that add up (energy, money) get arithmetic; ids and instants do not.
template <class Rep, class Tag>
class additive_type : public named_type<Rep, Tag> {
 public:
  using named_type<Rep, Tag>::named_type;
  constexpr additive_type operator+(additive_type o) const { return additive_type(this->value() + o.value()); }
  constexpr additive_type operator-(additive_type o) const { return additive_type(this->value() - o.value()); }
  constexpr additive_type operator-() const { return additive_type(-this->value()); }
  constexpr additive_type& operator+=(additive_type o) { return *this = *this + o; }
  constexpr additive_type& operator-=(additive_type o) { return *this = *this - o; }
};

using energy_wh = additive_type<std::int64_t, struct energy_wh_tag>;
using amount_micro = additive_type<std::int64_t, struct amount_micro_tag>;
using price_micro_per_kwh = named_type<std::int64_t, struct price_tag>;
// Seconds since 1970-01-01T00:00:00Z; business time, 1-second resolution.
using unix_seconds = named_type<std::int64_t, struct unix_seconds_tag>;
// Position in the global event log; the first record is 1.
using log_seq = named_type<std::uint64_t, struct log_seq_tag>;

}  // namespace pevledger

template <class Rep, class Tag>
struct std::hash<pevledger::named_type<Rep, Tag>> {
  std::size_t operator()(const pevledger::named_type<Rep, Tag>& v) const noexcept {
    return std::hash<Rep>{}(v.value());
  }
};
