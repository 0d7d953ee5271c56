#pragma once
// A seeded month of PEV charging for a fleet, as the JSON command lines of SPEC section 6, in the
// order of their business times: what `fleet_gen` prints and what `pevledger simulate` drives
// through the device gateway.
//
// Three utilities in three time zones, each with flat, time-of-use, real-time and station tariffs,
// residential premises with ESCI and EUMD, PEVs (some on prepaid accounts, some not allowed to
// roam), a public station with subscription cards, critical-peak and load-control events. Each PEV
// charges every one to three days: mostly at home, sometimes as a guest in its own territory,
// sometimes roaming into another utility's. Devices behave like devices: intervals arrive late and
// out of order, a few twice, a few after the month was billed; some binds are late or carry
// unknown VINs. The month ends with a bill run per utility and a settlement run.
// The same options always give the same lines.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "base/time.hpp"

namespace pevledger::sim {

struct fleet_options {
  std::uint64_t seed = 1;
  int premises_per_utility = 200;
  // PEVs in all, shared evenly by the premises in order; 0: one or two a premise (one in five has
  // two), as the seed draws.
  std::int64_t pevs = 0;
  month_period month{2024, 3};
  int days = 31;  // of the month, from its first
  // Charging profiles: three PEVs in ten charge slowly on a 120 V outlet (about 1.4 kW, through the
  // night), the others on a 240 V charger (about 7 kW), and those on the time-of-use program wait
  // for the off-peak night (local midnight) to start. Off: every PEV draws 0.3 to 1.9 kWh a
  // quarter hour from plug-in (the month fleet_gen has always made for a seed).
  bool charging_profiles = false;
};

// Why the options cannot make a fleet, or nullopt.
[[nodiscard]] std::optional<std::string> check(const fleet_options& options);

// Calls `out` with each line (without its line break), in order, until it returns false. The
// options must pass check(). Memory: the month's lines are held, in 64 MiB text blocks, until
// they are sorted.
void generate_fleet(const fleet_options& options, const std::function<bool(std::string_view line)>& out);

}  // namespace pevledger::sim
