#pragma once
// Residency: which entities are in memory, and how the others come back.
//
// Policy (docs/design.md, "Residency"):
// - Utilities and the clearinghouse are always resident (they are few); they are activated when
//   the engine opens.
// - Every other entity (account, premise, device, PEV, registry entry, card, session) is resident
//   only while it is in use. At most `resident_max` of them stay resident between group commits;
//   above that, the least recently used are passivated at the next group commit, down to 7/8 of
//   the bound. A command may activate more while it is decided (a bill run needs every account of
//   its utility); they leave at the next group commit.
// - An entity is activated from its newest snapshot plus the tail of its own stream, both read
//   from the log and verified. A snapshot is written, in the group commit that makes its events
//   durable, when an entity is passivated with more than 16 events its snapshot lacks, or when its
//   stream has grown by max(256 events, one event per 64 bytes of its last snapshot) since its
//   last one.
// - Until that group commit is durable, a passivated entity stays parked, as it was, in a side
//   table of its entity table, so that a command in the next group can activate it again without
//   reading stale storage. The side tables hold what the groups in flight passivated.
//
// Interval identity (EUMD, start) is an index stored with the events; `decide` reads the entries
// it needs from `ledger_state::intervals`, which this class fills on demand and empties once what
// it holds is durable.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/ledger_state.hpp"
#include "base/status.hpp"
#include "storage/event_log.hpp"

namespace pevledger::engine_detail {

struct residency_options {
  std::size_t resident_max = 200'000;        // paged entities kept between group commits
  std::size_t interval_cache_max = 1u << 20;  // interval identities known before draining
};

class residency final : public core::entity_pager {
 public:
  residency(storage::event_log& log, residency_options options);
  residency(const residency&) = delete;
  residency& operator=(const residency&) = delete;

  [[nodiscard]] core::ledger_state& state() { return state_; }

  // Activates the utilities and the clearinghouse.
  [[nodiscard]] status open();
  // Zones: a utility.register command's zone, looked up in the host's tz database so that decide
  // can pin its table (nothing kept for an unknown name: decide refuses it).
  void look_up_zone(std::string_view name);

  bool missed(std::string_view kind, const std::string& id) const override;
  // Whether the last decide missed an entity or an interval identity.
  [[nodiscard]] bool has_misses() const {
    return !misses_.empty() || !state_.intervals.misses.empty() || !state_.intervals.neighbour_misses.empty();
  }
  // Activates what was missed, or learns that it does not exist.
  [[nodiscard]] status resolve_misses();
  // After each command: forget which entities were proven absent (a later command may create them).
  void end_command();

  // Makes the entity of `stream` resident if it is stored; a stream with no stored event is an
  // entity an event is about to create.
  [[nodiscard]] status ensure_resident(std::string_view stream);
  // A record of `stream` joined the group; returns whether it is the stream's first (none stored,
  // none in flight).
  bool applied(std::string_view stream);
  // What the log held for an interval identity, read ahead of `decide`: known from now on unless
  // something newer is known already.
  void offer_interval(std::string_view device, std::int64_t start, std::optional<core::interval_content> stored);
  // An interval was recorded: `decide` must see it from now on; its index entry joins `batch`.
  void interval_recorded(const std::string& device, std::int64_t start, const core::interval_content& content,
                         storage::append_batch& batch);

  // Streams with events in the current group (recorded or batched), until end_group.
  [[nodiscard]] const std::unordered_set<std::string>& changed_streams() const { return changed_; }
  // At a group commit: snapshots that are due and those of passivated entities join `batch`
  // (number `group`); entities over the bound are passivated.
  void end_group(std::uint64_t group, storage::append_batch& batch);
  // At the end of an ingest, when every group is durable: snapshots of the resident entities whose
  // snapshot lacks more than 16 events join `batch`, so that the next process activates them from
  // a snapshot rather than folding their whole stream.
  void checkpoint(storage::append_batch& batch);
  // Group `group` and every one before it are durable.
  void group_durable(std::uint64_t group);
  // The interval identities known exceed their bound: forget them once no group is in flight.
  [[nodiscard]] bool interval_cache_full() const { return state_.intervals.known.size() > options_.interval_cache_max; }
  void forget_intervals();

  // For queries: passivates resident entities over the bound without writing snapshots (a query
  // changes nothing, so every dropped entity can be activated again from the log).
  void trim();

  [[nodiscard]] std::size_t resident_count() const;
  [[nodiscard]] std::uint64_t activations() const { return activations_; }
  [[nodiscard]] std::uint64_t passivations() const { return passivations_; }

 private:
  [[nodiscard]] status pin_unpinned_zones();
  status activate(const std::string& stream, bool& found);
  template <class Table>
  status activate_in(Table& table, const std::string& stream, const std::string& id, bool& found);
  [[nodiscard]] core::residency_meta* meta_of(std::string_view stream);
  void snapshot_if_due(const std::string& stream, storage::append_batch& batch);
  void passivate_over_bound(std::uint64_t group, storage::append_batch* batch);
  [[nodiscard]] status resolve_neighbours(const core::interval_identity& id);

  storage::event_log& log_;
  residency_options options_;
  core::ledger_state state_;
  std::unordered_map<std::string, core::residency_meta> pinned_meta_;  // utilities, clearinghouse
  mutable std::set<std::string> misses_;        // streams missed by the current decide
  std::unordered_set<std::string> absent_;      // streams proven absent during the current command
  std::unordered_set<std::string> changed_;     // streams with events applied in the current group
  // Streams with events applied since the last checkpoint, so that a checkpoint visits those
  // rather than every resident entity (an engine called often, as the gateway calls it, would pay
  // for all of them each call). Beyond resident_max of them, a checkpoint visits every resident
  // entity instead and this is cleared.
  std::unordered_set<std::string> since_checkpoint_;
  bool since_checkpoint_overflowed_ = false;
  std::uint64_t activations_ = 0;
  std::uint64_t passivations_ = 0;
};

// The key of an interval identity in the log's interval index.
[[nodiscard]] std::string interval_key(std::string_view device, std::int64_t start);

}  // namespace pevledger::engine_detail
