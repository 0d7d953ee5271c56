#pragma once
// Exact money arithmetic (SPEC section 1). Rounding is half to even, done once per interval charge
// and once for a bill's total in cents; totals are plain sums of rounded interval charges.

#include <cstdint>

#include "base/strong_types.hpp"

namespace pevledger {

// Products of energy and price can pass 2^63 before they are divided; GCC's 128-bit integer holds them.
__extension__ typedef __int128 wide_int;

// numerator / denominator rounded half to even; denominator > 0.
[[nodiscard]] std::int64_t divide_round_half_even(wide_int numerator, std::int64_t denominator) noexcept;

// Charge of one interval: wh * price / 1000, rounded half to even to a whole micro.
[[nodiscard]] amount_micro interval_charge(energy_wh energy, price_micro_per_kwh price) noexcept;

// A bill's total as a count of cents: round_half_even(total_micro / 10000).
[[nodiscard]] std::int64_t total_cents(amount_micro total) noexcept;

}  // namespace pevledger
