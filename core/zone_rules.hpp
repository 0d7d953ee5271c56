#pragma once
// A time zone as the ledger reads it: the offset from UTC at every instant, as a table of
// transitions. When a utility registers, the engine looks its zone up in the host's tz database
// once and pins the table into the log (UtilityRegistered.zone); deciding, replaying and
// snapshots read only that table. Bills therefore do not change when a replay runs on a machine
// whose tz database is older, newer or missing the zone.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/status.hpp"
#include "base/strong_types.hpp"

namespace pevledger::core {

class zone_rules {
 public:
  struct transition {
    std::int64_t at = 0;        // UTC seconds: the offset holds from here until the next transition
    std::int32_t offset_s = 0;  // local time = UTC + offset
    auto operator<=>(const transition&) const = default;
  };
  // The first transition's `at`: its offset holds from the start of business time (1970).
  static constexpr std::int64_t first_at = INT64_MIN;
  // The Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks), and so do
  // rules written in it ("the second Sunday of March"). A table covers business time up to
  // `table_end()`; a later instant is read a whole number of 400-year cycles earlier.
  static constexpr std::int64_t cycle_s = 146097LL * 86400;
  [[nodiscard]] static std::int64_t table_end();  // 2500-01-01T00:00:00Z
  // Zones change their offset a few times a year at most: about a thousand transitions to 2500.
  static constexpr std::size_t transitions_max = 8192;
  // Offsets in use are within a day of UTC.
  static constexpr std::int32_t offset_s_max = 86400;

  // A table as a lookup built it or a record carried it: at least one transition, the first at
  // `first_at`, strictly increasing, offsets within a day; else invalid_field.
  [[nodiscard]] static result<zone_rules> from_transitions(std::vector<transition> transitions);

  [[nodiscard]] std::int32_t offset_at(unix_seconds t) const;
  [[nodiscard]] const std::vector<transition>& transitions() const { return transitions_; }
  bool operator==(const zone_rules&) const = default;

 private:
  explicit zone_rules(std::vector<transition> t) : transitions_(std::move(t)) {}
  std::vector<transition> transitions_;
};

}  // namespace pevledger::core
