#pragma once
// Rating (SPEC sections 1 and 3): the one pricing function, and reading instants in a utility's
// IANA zone. Every charge, credit, grant price and bill period in the engine comes from here.

#include <string>
#include <string_view>

#include "core/ledger_state.hpp"
#include "core/zone_rules.hpp"
#include "base/status.hpp"
#include "base/time.hpp"

namespace pevledger::core {

// Local calendar facts of an instant in a zone.
struct local_instant {
  month_period month;
  int weekday = 0;     // 0 = Monday
  int minute_of_day = 0;
};
[[nodiscard]] local_instant to_local(const zone_rules& zone, unix_seconds t);
// A utility's zone table. The engine pins one for every utility before it decides a command.
[[nodiscard]] inline const zone_rules& zone_of(const utility_state& utility) {
  PEV_ASSERT(utility.zone != nullptr);
  return *utility.zone;
}

// The price for an interval starting at `start`, and the window name a bill line shows:
// a TOU window's name, "cpp", "rtp", "base" (a tou or rtp tariff outside any window or published
// hour) or "flat".
struct rated_price {
  price_micro_per_kwh price;
  std::string window;
};

// The tariff version in force at `start`: the latest whose `at` is not after it, else the first.
[[nodiscard]] const tariff_version& version_at(const tariff_state& tariff, unix_seconds start);

// Precedence: critical-peak event of the tariff's utility containing `start` (if the tariff has a
// cpp price), then the first TOU window (local time) or the published real-time hour, else base.
[[nodiscard]] rated_price price_interval(const utility_state& utility, const tariff_state& tariff,
                                         unix_seconds start);

}  // namespace pevledger::core
