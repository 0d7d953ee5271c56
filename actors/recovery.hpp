#pragma once
// Recovery of one entity from the log alone: its newest snapshot, then the tail of its own stream,
// folded with the same `apply` as everything else. Used when the engine activates a passivated
// entity and when an entity actor starts.

#include <cstdint>
#include <string_view>

#include "core/ledger_state.hpp"
#include "base/status.hpp"
#include "base/strong_types.hpp"
#include "storage/event_log.hpp"

namespace pevledger::actors {

struct recovered_entity {
  std::uint64_t stream_seq = 0;     // events of the stream now in the state; 0: no such entity
  std::uint64_t snapshot_seq = 0;   // of those, the ones the snapshot held
  std::size_t snapshot_bytes = 0;
};

// Puts the entity of `stream` into `state` as of global sequence `until` (by default, the whole
// log). The entity must not be in `state` already.
[[nodiscard]] result<recovered_entity> recover_entity(const storage::event_log& log, std::string_view stream,
                                                      core::ledger_state& state,
                                                      log_seq until = log_seq(~std::uint64_t{0}));

}  // namespace pevledger::actors
