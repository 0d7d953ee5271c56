#pragma once
// The CAF shell: every entity (utility, account, premise, device, PEV, session, card, registry
// entry, the clearinghouse) is hosted by an actor of its own while it is in use.
//
// An entity actor starts by recovering its state from its own stream (snapshot plus tail) and
// from then on applies the events of that stream that the log reports durable, in stream order,
// with the same pure `apply` as replay. It never sees an event before it is durable, so what it
// answers (its projections) is what a crash would leave.
//
// The directory actor hosts them: it spawns an entity's actor when someone asks for it, forwards
// each durable group's events to the actors that are live, and stops the least recently used
// when more than `live_max` are live. A stopped entity loses nothing: its history is in the log.
// Commands are decided by the engine's sequencer against its own working view
// (engine/residency.hpp), so that lines apply in order without a round trip per entity.

#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ledger_state.hpp"
#include "storage/event_log.hpp"

namespace pevledger::actors {

using apply_atom = caf::atom_constant<caf::atom("apply")>;
using render_atom = caf::atom_constant<caf::atom("render")>;
using durable_atom = caf::atom_constant<caf::atom("durable")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;

// One durable event of an entity's stream.
struct durable_event {
  std::uint64_t stream_seq = 0;
  std::int64_t at = 0;
  std::vector<std::uint8_t> body;  // the EventBody FlatBuffer, verified when it was read
};
using durable_events = std::vector<durable_event>;

// An entity actor. `render` takes "balance", "bill/YYYY-MM", "session" or "settlement/YYYY-MM"
// and answers the projection's JSON, or "" when the entity does not exist. `stats` answers how
// many events of its stream it holds.
using entity_actor = caf::typed_actor<caf::reacts_to<apply_atom, durable_events>,
                                      caf::replies_to<render_atom, std::string>::with<std::string>,
                                      caf::replies_to<stats_atom>::with<std::uint64_t>>;

struct directory_stats {
  std::uint64_t live = 0;
  std::uint64_t spawned = 0;
  std::uint64_t stopped = 0;
  std::uint64_t durable_through = 0;  // the last global sequence reported durable
};

// The directory. `durable(first, last)`: records first..last are durable (one group commit, so
// bounded by limits::log_batch_*_max). `render(stream, what)`: the projection `what` of the entity
// of `stream`, from its actor. `stats`: counters, after every message sent before it.
using directory_actor =
    caf::typed_actor<caf::reacts_to<durable_atom, std::uint64_t, std::uint64_t>,
                     caf::replies_to<render_atom, std::string, std::string>::with<std::string>,
                     caf::replies_to<stats_atom>::with<directory_stats>>;

// State of an entity actor: a ledger state that holds only its entity (apply touches only the
// entity of an event's stream, so the fold is the same as replay's).
struct entity_host {
  std::string stream;
  core::ledger_state state;
  std::uint64_t stream_seq = 0;
  static inline const char* name = "pevledger.entity";
};

[[nodiscard]] entity_actor::behavior_type entity_behavior(entity_actor::stateful_pointer<entity_host> self,
                                                          const storage::event_log* log, std::string stream);

struct directory_host {
  struct live_entity {
    entity_actor handle;
    std::uint64_t used = 0;
  };
  std::unordered_map<std::string, live_entity> live;  // stream -> its actor
  std::uint64_t clock = 0;
  directory_stats stats;
  static inline const char* name = "pevledger.directory";
};

// `log` must outlive the actor system.
[[nodiscard]] directory_actor::behavior_type directory_behavior(
    directory_actor::stateful_pointer<directory_host> self, const storage::event_log* log, std::size_t live_max);

// Live entity actors at most, by default: about 1.3 KB each plus their state.
inline constexpr std::size_t live_entity_actors_max = 4096;

}  // namespace pevledger::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(pevledger::actors::durable_events)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(pevledger::actors::directory_stats)
