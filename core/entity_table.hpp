#pragma once
// One kind of entity (accounts, sessions, PEVs, ...) keyed by id, with the bookkeeping residency
// needs. Replay keeps every entity of the log resident. The live engine keeps a bounded number
// resident and activates the others from a snapshot plus the tail of their stream on demand.
//
// A table with a pager is "paged": a lookup of an id that is not resident does not mean the entity
// does not exist. `find` then records a miss and answers "not here"; the engine activates what
// `prefetch` missed before `decide` runs (core/prefetch.hpp), so `at`, for an entity its caller
// knows exists, finds it resident or it is a bug.

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "base/assert.hpp"

namespace pevledger::core {

// What a paged table reports to (the engine's residency policy).
class entity_pager {
 public:
  virtual ~entity_pager() = default;
  // The entity `kind/id` was looked up but is not resident. Returns true when the pager already
  // knows that no such entity exists (then it is not a miss).
  virtual bool missed(std::string_view kind, const std::string& id) const = 0;
  // A clock for least-recently-used eviction.
  [[nodiscard]] std::uint64_t now() const { return clock_; }
  void tick() { ++clock_; }

 private:
  std::uint64_t clock_ = 0;
};

// Residency bookkeeping of one resident entity.
struct residency_meta {
  std::uint64_t stream_seq = 0;       // events of its stream applied to it
  std::uint64_t snapshot_seq = 0;     // the stream_seq its newest snapshot covers
  std::uint32_t snapshot_bytes = 0;   // size of that snapshot: bounds how often to write another
  mutable std::uint64_t used = 0;     // pager clock at its last lookup
  std::uint64_t parked_group = 0;     // while parked: the group commit it waits for
};

template <class State>
class entity_table {
 public:
  struct slot {
    State state;
    residency_meta meta;
  };
  using map_type = std::unordered_map<std::string, slot>;

  entity_table(std::string_view kind) : kind_(kind) {}

  void set_pager(const entity_pager* pager) { pager_ = pager; }
  [[nodiscard]] std::string_view kind() const { return kind_; }

  // The entity if it is resident; nullptr otherwise (on a paged table, recorded as a miss unless
  // the pager knows it does not exist).
  [[nodiscard]] const State* find(const std::string& id) const {
    auto it = map_.find(id);
    if (it == map_.end()) {
      if (pager_ != nullptr) pager_->missed(kind_, id);
      return nullptr;
    }
    if (pager_ != nullptr) it->second.meta.used = pager_->now();
    return &it->second.state;
  }
  [[nodiscard]] bool contains(const std::string& id) const { return find(id) != nullptr; }
  [[nodiscard]] std::size_t count(const std::string& id) const { return contains(id) ? 1 : 0; }

  // An entity the caller knows exists, resident (prefetched) on a paged table.
  [[nodiscard]] const State& at(const std::string& id) const {
    const State* s = find(id);
    PEV_ASSERT(s != nullptr && "an entity the log says exists is not resident: prefetch did not state it");
    return *s;
  }

  // For apply: the entity an event changes. The engine made it resident first.
  [[nodiscard]] State& mut(const std::string& id) {
    auto it = map_.find(id);
    PEV_ASSERT(it != map_.end());
    return it->second.state;
  }
  // For apply: an event that creates the entity.
  State& create(const std::string& id, State state) {
    auto [it, inserted] = map_.try_emplace(id, slot{std::move(state), {}});
    PEV_ASSERT(inserted);
    if (pager_ != nullptr) it->second.meta.used = pager_->now();
    return it->second.state;
  }
  // Creates the entity unless it exists (events that create or extend, like a card assignment).
  State& create_or_get(const std::string& id) {
    auto [it, inserted] = map_.try_emplace(id);
    if (inserted && pager_ != nullptr) it->second.meta.used = pager_->now();
    return it->second.state;
  }

  // Residency: the slot of a resident entity, or nullptr.
  [[nodiscard]] slot* resident(const std::string& id) {
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : &it->second;
  }
  slot& activate(const std::string& id, State state, residency_meta meta) {
    auto [it, inserted] = map_.try_emplace(id, slot{std::move(state), meta});
    PEV_ASSERT(inserted);
    return it->second;
  }
  void passivate(const std::string& id) {
    const auto erased = map_.erase(id);
    PEV_ASSERT(erased == 1);
  }
  // Residency: passivates a resident entity into a side table, as it is (not encoded), until
  // group commit `group` is durable: before then the log may not yet hold what it applied.
  // Moving the map node costs no allocation and no copy of the state.
  void park(const std::string& id, std::uint64_t group) {
    auto node = map_.extract(id);
    PEV_ASSERT(!node.empty());
    node.mapped().meta.parked_group = group;
    parked_order_.push_back({group, node.key()});
    const bool inserted = parked_.insert(std::move(node)).inserted;
    PEV_ASSERT(inserted);
  }
  // Makes a parked entity resident again; false when it is not parked.
  bool unpark(const std::string& id) {
    auto node = parked_.extract(id);
    if (node.empty()) return false;
    const bool inserted = map_.insert(std::move(node)).inserted;
    PEV_ASSERT(inserted);
    return true;
  }
  // Group commit `group` and every one before it are durable: what they parked is readable from
  // the log. Parking is in group order, so the oldest are first; an entry whose entity was
  // unparked (and perhaps parked again for a later group) is skipped.
  void release_parked(std::uint64_t group) {
    while (!parked_order_.empty() && parked_order_.front().group <= group) {
      const parked_entry& oldest = parked_order_.front();
      auto it = parked_.find(oldest.id);
      if (it != parked_.end() && it->second.meta.parked_group == oldest.group) parked_.erase(it);
      parked_order_.pop_front();
    }
  }
  [[nodiscard]] std::size_t parked_count() const { return parked_.size(); }

  [[nodiscard]] std::size_t size() const { return map_.size(); }
  [[nodiscard]] const map_type& resident_entities() const { return map_; }
  [[nodiscard]] map_type& resident_entities() { return map_; }

  // Every resident entity, as (id, state).
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const auto& [id, s] : map_) visit(id, s.state);
  }

 private:
  struct parked_entry {
    std::uint64_t group;
    std::string id;
  };
  std::string kind_;
  const entity_pager* pager_ = nullptr;
  map_type map_;
  // Bounded by the entities passivated in the group commits in flight (engine/residency).
  map_type parked_;
  std::deque<parked_entry> parked_order_;
};

}  // namespace pevledger::core
