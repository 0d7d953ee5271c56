#include "core/rating.hpp"

namespace pevledger::core {

local_instant to_local(const zone_rules& zone, unix_seconds t) {
  const auto [days, rem] = split_days(t.value() + zone.offset_at(t));
  const civil_date d = civil_from_days(days);
  return {month_period{d.year, d.month}, weekday_from_days(days), static_cast<int>(rem / 60)};
}

const tariff_version& version_at(const tariff_state& tariff, unix_seconds start) {
  PEV_ASSERT(!tariff.versions.empty());
  const tariff_version* chosen = &tariff.versions.front();
  for (const auto& v : tariff.versions)
    if (v.in_force_from <= start) chosen = &v;
  return *chosen;
}

rated_price price_interval(const utility_state& utility, const tariff_state& tariff, unix_seconds start) {
  const tariff_version& v = version_at(tariff, start);
  if (v.cpp_price) {
    for (const auto& event : utility.critical_peaks)
      if (event.contains(start)) return {price_micro_per_kwh(*v.cpp_price), "cpp"};
  }
  switch (v.kind) {
    case schema::TariffKind::flat:
      return {price_micro_per_kwh(v.base_price), "flat"};
    case schema::TariffKind::tou: {
      const local_instant local = to_local(zone_of(utility), start);
      for (const auto& w : v.windows) {
        const bool on_day = (w.weekday_mask >> local.weekday) & 1;
        if (on_day && w.from_min <= local.minute_of_day && local.minute_of_day < w.to_min)
          return {price_micro_per_kwh(w.price), w.name};
      }
      return {price_micro_per_kwh(v.base_price), "base"};
    }
    case schema::TariffKind::rtp: {
      const std::int64_t hour = start.value() - ((start.value() % 3600) + 3600) % 3600;
      if (auto it = tariff.hourly.find(hour); it != tariff.hourly.end())
        return {price_micro_per_kwh(it->second), "rtp"};
      return {price_micro_per_kwh(v.base_price), "base"};
    }
  }
  PEV_ASSERT(false && "tariff kind outside the schema");
  return {price_micro_per_kwh(v.base_price), "base"};
}

}  // namespace pevledger::core
