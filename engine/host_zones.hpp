#pragma once
// The one place that reads the host's tz database: a zone's table of offsets, which the engine
// then pins into the log when a utility registers (core/zone_rules.hpp).

#include <memory>
#include <string_view>

#include "core/zone_rules.hpp"
#include "base/status.hpp"

namespace pevledger::engine_detail {

// The table of the IANA zone `name` from the start of business time (1970) to
// zone_rules::table_end(); invalid_field "unknown time zone" when the database has no such zone.
[[nodiscard]] result<std::shared_ptr<const core::zone_rules>> host_zone_rules(std::string_view name);

}  // namespace pevledger::engine_detail
