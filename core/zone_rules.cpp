#include "core/zone_rules.hpp"

#include <algorithm>

#include "base/time.hpp"

namespace pevledger::core {

std::int64_t zone_rules::table_end() {
  static const std::int64_t end = days_from_civil({2500, 1, 1}) * 86400;
  return end;
}

result<zone_rules> zone_rules::from_transitions(std::vector<transition> transitions) {
  auto bad = [](const char* why) { return result<zone_rules>(errc::invalid_field, std::string("zone table: ") + why); };
  if (transitions.empty()) return bad("no transition");
  if (transitions.size() > transitions_max) return bad("more transitions than a zone has");
  if (transitions.front().at != first_at) return bad("the first transition does not start business time");
  for (std::size_t i = 0; i < transitions.size(); ++i) {
    const transition& t = transitions[i];
    if (t.offset_s < -offset_s_max || t.offset_s > offset_s_max) return bad("an offset of more than a day");
    if (i > 0 && transitions[i - 1].at >= t.at) return bad("transitions out of order");
  }
  return zone_rules(std::move(transitions));
}

std::int32_t zone_rules::offset_at(unix_seconds t) const {
  PEV_ASSERT(!transitions_.empty());
  std::int64_t s = t.value();
  const std::int64_t end = table_end();
  if (s >= end) s -= ((s - end) / cycle_s + 1) * cycle_s;  // into [end - cycle, end)
  PEV_ASSERT(s < end);
  auto after = std::upper_bound(transitions_.begin(), transitions_.end(), s,
                                [](std::int64_t x, const transition& tr) { return x < tr.at; });
  PEV_ASSERT(after != transitions_.begin());  // the first holds from first_at
  return std::prev(after)->offset_s;
}

}  // namespace pevledger::core
