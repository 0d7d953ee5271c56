#pragma once
// Civil-calendar arithmetic on UTC instants and the text forms of SPEC section 1. No time zones here:
// zone rules live with rating, which reads tariff windows and billing months in a utility's zone.

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "base/strong_types.hpp"

namespace pevledger {

struct civil_date {
  int year;
  int month;  // 1..12
  int day;    // 1..31
  auto operator<=>(const civil_date&) const = default;
};

// A billing month, e.g. 2024-03. Ordered and countable: `index()` is months since year 0.
struct month_period {
  int year = 0;
  int month = 0;  // 1..12
  auto operator<=>(const month_period&) const = default;
  [[nodiscard]] std::int32_t index() const { return year * 12 + (month - 1); }
  [[nodiscard]] static month_period from_index(std::int32_t i) { return {i / 12, i % 12 + 1}; }
  [[nodiscard]] month_period next() const { return from_index(index() + 1); }
  [[nodiscard]] std::string to_string() const;  // "YYYY-MM"
};

[[nodiscard]] std::int64_t days_from_civil(civil_date d) noexcept;
[[nodiscard]] civil_date civil_from_days(std::int64_t days) noexcept;
// Seconds since the epoch as whole days and the second within the day (0..86399), also before 1970.
struct day_and_second {
  std::int64_t days;
  std::int64_t second_of_day;
};
[[nodiscard]] day_and_second split_days(std::int64_t seconds) noexcept;
// 0 = Monday .. 6 = Sunday, for a count of days since 1970-01-01.
[[nodiscard]] int weekday_from_days(std::int64_t days) noexcept;

// "YYYY-MM-DDTHH:MM:SSZ", exactly; anything else is invalid_field.
[[nodiscard]] result<unix_seconds> parse_timestamp(std::string_view text);
[[nodiscard]] std::string format_timestamp(unix_seconds t);
// "YYYY-MM".
[[nodiscard]] result<month_period> parse_month(std::string_view text);
// "HH:MM" from 00:00 to 24:00, as minutes since midnight.
[[nodiscard]] result<int> parse_clock(std::string_view text);

}  // namespace pevledger
