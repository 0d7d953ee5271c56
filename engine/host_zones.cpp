#include "engine/host_zones.hpp"

#include <date/tz.h>

#include <string>
#include <vector>

namespace pevledger::engine_detail {

result<std::shared_ptr<const core::zone_rules>> host_zone_rules(std::string_view name) {
  using core::zone_rules;
  const date::time_zone* zone = nullptr;
  // date::locate_zone reports an unknown name by throwing; turn that into a value at the boundary.
  try {
    zone = date::locate_zone(name);
  } catch (const std::exception&) {
    return status(errc::invalid_field, "unknown time zone '" + std::string(name.substr(0, 64)) + "'");
  }
  const std::int64_t end = zone_rules::table_end();
  std::vector<zone_rules::transition> table;
  date::sys_seconds t{std::chrono::seconds(0)};
  date::sys_info info = zone->get_info(t);
  table.push_back({zone_rules::first_at, static_cast<std::int32_t>(info.offset.count())});
  // Each round moves to the zone's next period (a change of offset, abbreviation or saving); a
  // zone has far fewer than periods_max of them before the table's end.
  constexpr std::size_t periods_max = 4 * zone_rules::transitions_max;
  for (std::size_t periods = 0; info.end.time_since_epoch().count() < end; ++periods) {
    if (info.end <= t || periods == periods_max)
      return status(errc::invalid_field, "time zone '" + std::string(name) + "': periods out of order or too many");
    t = info.end;
    info = zone->get_info(t);
    const auto offset = static_cast<std::int32_t>(info.offset.count());
    if (offset != table.back().offset_s) table.push_back({t.time_since_epoch().count(), offset});
    if (table.size() > zone_rules::transitions_max)
      return status(errc::invalid_field, "time zone '" + std::string(name) + "' changes its offset too often");
  }
  auto rules = zone_rules::from_transitions(std::move(table));
  if (!rules) return rules.error();
  return std::make_shared<const zone_rules>(std::move(rules.value()));
}

}  // namespace pevledger::engine_detail
