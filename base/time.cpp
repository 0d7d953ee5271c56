#include "base/time.hpp"

#include <cstdio>

#include "base/limits.hpp"

namespace pevledger {
namespace {

// Digits at text[pos, pos+n) as a number, or -1 when any is not a digit.
int digits(std::string_view text, std::size_t pos, std::size_t n) {
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

}  // namespace

std::string month_period::to_string() const {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d", year, month);
  return buf;
}

// The era-based algorithm from H. Hinnant's "chrono-Compatible Low-Level Date Algorithms".
std::int64_t days_from_civil(civil_date d) noexcept {
  const std::int64_t y = d.year - (d.month <= 2 ? 1 : 0);
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t mp = (d.month + 9) % 12;
  const std::int64_t doy = (153 * mp + 2) / 5 + d.day - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

civil_date civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  const int y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
  return {y, m, d};
}

int weekday_from_days(std::int64_t days) noexcept {
  // 1970-01-01 was a Thursday (index 3 with Monday = 0).
  const std::int64_t w = (days + 3) % 7;
  return static_cast<int>(w < 0 ? w + 7 : w);
}

result<unix_seconds> parse_timestamp(std::string_view t) {
  auto bad = [&] {
    return result<unix_seconds>(errc::invalid_field,
                                "timestamp must be YYYY-MM-DDTHH:MM:SSZ, got '" + std::string(t.substr(0, 40)) + "'");
  };
  if (t.size() != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' ||
      t[19] != 'Z')
    return bad();
  const int y = digits(t, 0, 4), mo = digits(t, 5, 2), d = digits(t, 8, 2);
  const int h = digits(t, 11, 2), mi = digits(t, 14, 2), s = digits(t, 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 59)
    return bad();
  if (d > days_in_month(y, mo)) return bad();
  const std::int64_t secs = days_from_civil({y, mo, d}) * 86400 + h * 3600 + mi * 60 + s;
  PEV_ASSERT(secs >= 0 && secs <= limits::unix_seconds_max);
  return unix_seconds(secs);
}

day_and_second split_days(std::int64_t seconds) noexcept {
  std::int64_t days = seconds / 86400;
  std::int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  return {days, rem};
}

std::string format_timestamp(unix_seconds t) {
  const auto [days, rem] = split_days(t.value());
  const civil_date d = civil_from_days(days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", d.year, d.month, d.day,
                static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60));
  return buf;
}

result<month_period> parse_month(std::string_view t) {
  if (t.size() != 7 || t[4] != '-')
    return {errc::invalid_field, "period must be YYYY-MM, got '" + std::string(t.substr(0, 40)) + "'"};
  const int y = digits(t, 0, 4), m = digits(t, 5, 2);
  if (y < 1970 || m < 1 || m > 12)
    return {errc::invalid_field, "period must be YYYY-MM, got '" + std::string(t) + "'"};
  return month_period{y, m};
}

result<int> parse_clock(std::string_view t) {
  if (t.size() != 5 || t[2] != ':')
    return {errc::invalid_field, "time of day must be HH:MM, got '" + std::string(t.substr(0, 40)) + "'"};
  const int h = digits(t, 0, 2), m = digits(t, 3, 2);
  if (h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0))
    return {errc::invalid_field, "time of day must be 00:00 to 24:00, got '" + std::string(t) + "'"};
  return h * 60 + m;
}

}  // namespace pevledger
