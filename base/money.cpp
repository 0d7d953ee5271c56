#include "base/money.hpp"

#include "base/assert.hpp"

namespace pevledger {

std::int64_t divide_round_half_even(wide_int n, std::int64_t d) noexcept {
  PEV_ASSERT(d > 0);
  // Floor division, then compare the remainder with half the divisor.
  wide_int q = n / d;
  wide_int r = n % d;
  if (r < 0) {
    r += d;
    q -= 1;
  }
  const wide_int twice = r * 2;
  if (twice > d || (twice == d && (q & 1) != 0)) q += 1;
  PEV_ASSERT(q <= INT64_MAX && q >= INT64_MIN);
  return static_cast<std::int64_t>(q);
}

amount_micro interval_charge(energy_wh energy, price_micro_per_kwh price) noexcept {
  return amount_micro(divide_round_half_even(static_cast<wide_int>(energy.value()) * price.value(), 1000));
}

std::int64_t total_cents(amount_micro total) noexcept {
  return divide_round_half_even(total.value(), 10000);
}

}  // namespace pevledger
