#include "engine/residency.hpp"

#include <algorithm>
#include <limits>

#include "actors/recovery.hpp"
#include "core/snapshot_codec.hpp"
#include "core/stream_name.hpp"
#include "engine/host_zones.hpp"

namespace pevledger::engine_detail {
namespace {


constexpr std::uint64_t snapshot_events_min = 256;
constexpr std::uint64_t snapshot_bytes_per_event = 64;
constexpr std::uint64_t passivation_tail_max = 16;

// A stream's kind and its id as the entity tables key it.
struct entity_name {
  std::string_view kind;
  std::string id;
};

entity_name split(std::string_view stream) {
  const core::stream_name name = core::stream_name::split(stream);
  return {name.kind, std::string(name.id)};
}

// Calls `visit(table)` with the paged table of `kind`; returns false for a kind that is not paged.
template <class Visit>
bool with_table(core::ledger_state& st, std::string_view kind, Visit&& visit) {
  if (kind == core::stream_kind::account) return visit(st.accounts), true;
  if (kind == core::stream_kind::premise) return visit(st.premises), true;
  if (kind == core::stream_kind::device) return visit(st.devices), true;
  if (kind == core::stream_kind::pev) return visit(st.pevs), true;
  if (kind == core::stream_kind::registry) return visit(st.registrations), true;
  if (kind == core::stream_kind::card) return visit(st.cards), true;
  if (kind == core::stream_kind::phone) return visit(st.phones), true;
  if (kind == core::stream_kind::session) return visit(st.sessions), true;
  return false;
}

template <class Visit>
void for_each_table(core::ledger_state& st, Visit&& visit) {
  visit(st.accounts);
  visit(st.premises);
  visit(st.devices);
  visit(st.pevs);
  visit(st.registrations);
  visit(st.cards);
  visit(st.phones);
  visit(st.sessions);
}

void put_be64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}

// An EUMD's keys in the interval index: its name, a NUL (no identifier holds one), the start.
std::string device_keys_from(std::string_view device) { return std::string(device) + '\0'; }
std::string device_keys_to(std::string_view device) { return std::string(device) + '\1'; }

// An index entry of the log as a neighbour: the start is the key's last eight bytes.
result<core::interval_neighbour> neighbour_of(const storage::event_log::index_entry& entry) {
  if (entry.key.size() < 9) return status(errc::corruption, "an interval index key is too short");
  std::uint64_t biased = 0;
  for (std::size_t i = entry.key.size() - 8; i < entry.key.size(); ++i)
    biased = (biased << 8) | static_cast<std::uint8_t>(entry.key[i]);
  core::interval_neighbour n;
  n.start = static_cast<std::int64_t>(biased ^ (std::uint64_t{1} << 63));
  PEV_RETURN_IF_ERROR(core::decode_snapshot(entry.value, n.content));
  return n;
}

// The nearer of two candidates: the later start of those before, the earlier of those after.
void keep_nearer(std::optional<core::interval_neighbour>& kept, std::optional<core::interval_neighbour> other,
                 bool before) {
  if (!other) return;
  if (!kept || (before ? other->start > kept->start : other->start < kept->start)) kept = std::move(other);
}

}  // namespace

std::string interval_key(std::string_view device, std::int64_t start) {
  std::string key(device);
  key.push_back('\0');
  put_be64(key, static_cast<std::uint64_t>(start) ^ (std::uint64_t{1} << 63));  // sorts like the signed value
  return key;
}

residency::residency(storage::event_log& log, residency_options options) : log_(log), options_(options) {
  for_each_table(state_, [&](auto& table) { table.set_pager(this); });
  state_.intervals.paged = true;
}

status residency::open() {
  std::vector<std::string> utilities;
  PEV_RETURN_IF_ERROR(log_.scan_streams(core::stream_of(core::stream_kind::utility, ""), [&](std::string_view stream, std::uint64_t) {
    utilities.emplace_back(stream);
    return status::ok();
  }));
  bool found = false;
  for (const std::string& stream : utilities) PEV_RETURN_IF_ERROR(activate(stream, found));
  PEV_RETURN_IF_ERROR(pin_unpinned_zones());
  return activate(std::string(core::stream_kind::clearinghouse), found);
}

void residency::look_up_zone(std::string_view name) {
  auto& known = state_.zones_looked_up;
  if (known.find(name) != known.end()) return;
  auto rules = host_zone_rules(name);
  if (rules) known.emplace(std::string(name), std::move(rules.value()));
}

// A utility whose UtilityRegistered event predates pinned zones is read with this machine's table
// for its zone, as every build before did. Pinned in memory and in its next snapshot, never in its
// stream, which stays as written.
status residency::pin_unpinned_zones() {
  for (auto& [id, utility] : state_.utilities) {
    if (utility.zone != nullptr) continue;
    auto rules = host_zone_rules(utility.timezone);
    if (!rules)
      return status(errc::corruption, "utility '" + id + "' registered in zone '" + utility.timezone +
                                          "' before this log pinned zones, and this machine's tz database has no "
                                          "such zone");
    utility.zone = std::move(rules.value());
  }
  return status::ok();
}

bool residency::missed(std::string_view kind, const std::string& id) const {
  std::string stream = core::stream_of(kind, id);
  if (absent_.count(stream) != 0) return true;
  misses_.insert(std::move(stream));
  return false;
}

status residency::resolve_misses() {
  // Bounded by what one decide looked up; each is activated or proven absent, so the next decide
  // of the same command misses strictly fewer.
  const std::set<std::string> streams = std::move(misses_);
  misses_.clear();
  for (const std::string& stream : streams) {
    bool found = false;
    PEV_RETURN_IF_ERROR(activate(stream, found));
    if (!found) absent_.insert(stream);
  }
  std::vector<core::interval_identity> intervals = std::move(state_.intervals.misses);
  state_.intervals.misses.clear();
  for (const auto& id : intervals) {
    if (state_.intervals.known.count(id) != 0) continue;
    auto value = log_.get_interval(interval_key(id.device, id.start));
    if (!value) return value.error();
    std::optional<core::interval_content> content;
    if (value->has_value()) {
      core::interval_content c;
      PEV_RETURN_IF_ERROR(core::decode_snapshot(**value, c));
      content = std::move(c);
    }
    state_.intervals.known.emplace(id, std::move(content));
  }
  // One per decide at most: the new interval's.
  std::vector<core::interval_identity> neighbourhoods = std::move(state_.intervals.neighbour_misses);
  state_.intervals.neighbour_misses.clear();
  for (const auto& id : neighbourhoods) PEV_RETURN_IF_ERROR(resolve_neighbours(id));
  return status::ok();
}

// An EUMD's intervals are those of the log's index and those recorded since the identities were
// last forgotten (`eumd_intervals::recorded`; forgotten only once durable, so then in the index).
status residency::resolve_neighbours(const core::interval_identity& id) {
  const std::string from = device_keys_from(id.device), to = device_keys_to(id.device);
  using nearest = std::pair<std::optional<core::interval_neighbour>, std::optional<core::interval_neighbour>>;
  auto from_log = [&](const std::string& key, nearest& out) -> status {
    auto found = log_.interval_neighbours(key, from, to);
    if (!found) return found.error();
    for (auto [entry, before] : {std::pair{&found->before, true}, std::pair{&found->after, false}}) {
      if (!*entry) continue;
      auto n = neighbour_of(**entry);
      if (!n) return n.error();
      keep_nearer(before ? out.first : out.second, std::move(n.value()), before);
    }
    return status::ok();
  };
  auto [eumd, first_look] = state_.intervals.eumds.try_emplace(id.device);
  if (first_look) {
    nearest last;
    PEV_RETURN_IF_ERROR(from_log(to, last));
    eumd->second.stored_latest = std::move(last.first);
  }
  const core::interval_neighbour* latest = eumd->second.latest();
  if (latest != nullptr && latest->start >= id.start) {
    nearest around;
    PEV_RETURN_IF_ERROR(from_log(interval_key(id.device, id.start), around));
    const auto& recorded = eumd->second.recorded;
    auto after = std::upper_bound(recorded.begin(), recorded.end(), id.start,
                                  [](std::int64_t t, const core::interval_neighbour& n) { return t < n.start; });
    if (after != recorded.end()) keep_nearer(around.second, *after, false);
    auto before = std::lower_bound(recorded.begin(), recorded.end(), id.start,
                                   [](const core::interval_neighbour& n, std::int64_t t) { return n.start < t; });
    if (before != recorded.begin()) keep_nearer(around.first, *std::prev(before), true);
    state_.intervals.looked_up[id] = std::move(around);
  }
  return status::ok();
}

void residency::forget_intervals() {
  state_.intervals.known.clear();
  state_.intervals.eumds.clear();
}

void residency::end_command() {
  absent_.clear();
  misses_.clear();
  state_.intervals.misses.clear();
  state_.intervals.neighbour_misses.clear();
  state_.intervals.looked_up.clear();
  tick();
}

core::residency_meta* residency::meta_of(std::string_view stream) {
  const entity_name name = split(stream);
  core::residency_meta* meta = nullptr;
  const bool paged = with_table(state_, name.kind, [&](auto& table) {
    if (auto* slot = table.resident(name.id)) meta = &slot->meta;
  });
  if (paged) return meta;
  auto it = pinned_meta_.find(std::string(stream));
  return it == pinned_meta_.end() ? nullptr : &it->second;
}

status residency::ensure_resident(std::string_view stream) {
  if (meta_of(stream) != nullptr) return status::ok();
  const entity_name name = split(stream);
  if (name.kind == core::stream_kind::utility && state_.utilities.count(name.id) != 0) return status::ok();
  std::string key(stream);
  // Proven absent by this command's decide: the event creates it, and storage need not be asked twice.
  if (absent_.count(key) != 0) return status::ok();
  bool found = false;
  return activate(key, found);  // not found: the event creates it
}

bool residency::applied(std::string_view stream) {
  core::residency_meta* meta = meta_of(stream);
  bool first = false;
  if (meta == nullptr) {
    // The event created a utility or the clearinghouse's book: pinned from now on. Rare, so the
    // log checks its head itself.
    meta = &pinned_meta_[std::string(stream)];
  } else {
    // A resident entity's meta counts every record of its stream, stored or in flight.
    first = meta->stream_seq == 0;
  }
  ++meta->stream_seq;
  changed_.emplace(stream);
  return first;
}

void residency::offer_interval(std::string_view device, std::int64_t start,
                               std::optional<core::interval_content> stored) {
  state_.intervals.known.try_emplace({std::string(device), start}, std::move(stored));
}

void residency::interval_recorded(const std::string& device, std::int64_t start,
                                  const core::interval_content& content, storage::append_batch& batch) {
  state_.intervals.known[{device, start}] = content;
  // Kept for neighbour lookups until forgotten: in start order, and intervals mostly arrive so.
  // The command that records it looked its neighbours up first, so its EUMD is known.
  auto eumd = state_.intervals.eumds.find(device);
  PEV_ASSERT(eumd != state_.intervals.eumds.end());
  auto& recorded = eumd->second.recorded;
  auto at = recorded.end();
  if (!recorded.empty() && recorded.back().start > start)
    at = std::lower_bound(recorded.begin(), recorded.end(), start,
                          [](const core::interval_neighbour& n, std::int64_t t) { return n.start < t; });
  recorded.insert(at, core::interval_neighbour{start, content});
  batch.intervals.push_back({interval_key(device, start), core::encode_snapshot(content)});
}

template <class Table>
status residency::activate_in(Table& table, const std::string& stream, const std::string& id, bool& found) {
  found = table.resident(id) != nullptr;
  if (found) return status::ok();
  if (!table.unpark(id)) {
    core::residency_meta meta;
    auto recovered = actors::recover_entity(log_, stream, state_);
    if (!recovered) return recovered.error();
    if (recovered->stream_seq == 0) return status::ok();
    meta.stream_seq = recovered->stream_seq;
    meta.snapshot_seq = recovered->snapshot_seq;
    meta.snapshot_bytes = static_cast<std::uint32_t>(std::min<std::size_t>(recovered->snapshot_bytes, UINT32_MAX));
    auto* slot = table.resident(id);
    PEV_ASSERT(slot != nullptr);  // a stream's first event creates its entity
    slot->meta = meta;
  }
  table.resident(id)->meta.used = now();
  found = true;
  ++activations_;
  return status::ok();
}

status residency::activate(const std::string& stream, bool& found) {
  const entity_name name = split(stream);
  found = false;
  status result = status::ok();
  const bool paged =
      with_table(state_, name.kind, [&](auto& table) { result = activate_in(table, stream, name.id, found); });
  if (paged) return result;
  // A pinned entity: a utility or the clearinghouse.
  if (pinned_meta_.count(stream) != 0) {
    found = true;
    return status::ok();
  }
  auto recovered = actors::recover_entity(log_, stream, state_);
  if (!recovered) return recovered.error();
  if (recovered->stream_seq == 0) return status::ok();
  core::residency_meta& meta = pinned_meta_[stream];
  meta.stream_seq = recovered->stream_seq;
  meta.snapshot_seq = recovered->snapshot_seq;
  meta.snapshot_bytes = static_cast<std::uint32_t>(std::min<std::size_t>(recovered->snapshot_bytes, UINT32_MAX));
  found = true;
  return status::ok();
}

void residency::snapshot_if_due(const std::string& stream, storage::append_batch& batch) {
  core::residency_meta* meta = meta_of(stream);
  if (meta == nullptr) return;  // passivated already in this group
  const std::uint64_t grown = meta->stream_seq - meta->snapshot_seq;
  if (grown < std::max(snapshot_events_min, std::uint64_t{meta->snapshot_bytes} / snapshot_bytes_per_event)) return;
  const entity_name name = split(stream);
  std::string bytes;
  if (!with_table(state_, name.kind, [&](auto& table) { bytes = core::encode_snapshot(table.resident(name.id)->state); })) {
    if (name.kind == core::stream_kind::utility)
      bytes = core::encode_snapshot(state_.utilities.at(name.id));
    else
      bytes = core::encode_snapshot(state_.clearinghouse);
  }
  meta->snapshot_seq = meta->stream_seq;
  meta->snapshot_bytes = static_cast<std::uint32_t>(std::min<std::size_t>(bytes.size(), UINT32_MAX));
  batch.snapshots.push_back({stream, meta->stream_seq, std::move(bytes)});
}

void residency::passivate_over_bound(std::uint64_t group, storage::append_batch* batch) {
  const std::size_t resident = resident_count();
  if (resident <= options_.resident_max) return;
  const std::size_t target = options_.resident_max - options_.resident_max / 8;
  // Least recently used first; the scan is linear in what is resident, and it runs only when the
  // bound is crossed, after which an eighth of the bound is free again.
  struct candidate {
    std::uint64_t used;
    std::string_view kind;
    const std::string* id;
  };
  std::vector<candidate> all;
  all.reserve(resident);
  for_each_table(state_, [&](auto& table) {
    for (const auto& [id, slot] : table.resident_entities()) all.push_back({slot.meta.used, table.kind(), &id});
  });
  const std::size_t evict = resident - target;
  std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(evict - 1), all.end(),
                   [](const candidate& a, const candidate& b) { return a.used < b.used; });
  all.resize(evict);
  for (const candidate& c : all) {
    const std::string id = *c.id;  // the table owns the key we point at; copy before erasing
    with_table(state_, c.kind, [&](auto& table) {
      if (batch == nullptr) {
        table.passivate(id);
        return;
      }
      auto* slot = table.resident(id);
      // A short tail is cheaper to fold again than a snapshot is to write.
      if (slot->meta.stream_seq - slot->meta.snapshot_seq > passivation_tail_max) {
        std::string bytes = core::encode_snapshot(slot->state);
        slot->meta.snapshot_seq = slot->meta.stream_seq;
        slot->meta.snapshot_bytes = static_cast<std::uint32_t>(std::min<std::size_t>(bytes.size(), UINT32_MAX));
        batch->snapshots.push_back({core::stream_of(c.kind, id), slot->meta.stream_seq, std::move(bytes)});
      }
      // Kept aside until this group is durable: its events, or its snapshot, are not readable
      // from the log before then.
      table.park(id, group);
    });
    ++passivations_;
  }
}

void residency::end_group(std::uint64_t group, storage::append_batch& batch) {
  for (const std::string& stream : changed_) snapshot_if_due(stream, batch);
  if (!since_checkpoint_overflowed_) {
    since_checkpoint_.insert(changed_.begin(), changed_.end());
    if (since_checkpoint_.size() > options_.resident_max) {
      since_checkpoint_overflowed_ = true;
      since_checkpoint_.clear();
    }
  }
  changed_.clear();
  passivate_over_bound(group, &batch);
}

void residency::checkpoint(storage::append_batch& batch) {
  auto snapshot = [&](const std::string& stream, core::residency_meta& meta, auto encode) {
    if (meta.stream_seq - meta.snapshot_seq <= passivation_tail_max) return;
    std::string bytes = encode();
    meta.snapshot_seq = meta.stream_seq;
    meta.snapshot_bytes = static_cast<std::uint32_t>(std::min<std::size_t>(bytes.size(), UINT32_MAX));
    batch.snapshots.push_back({stream, meta.stream_seq, std::move(bytes)});
  };
  if (since_checkpoint_overflowed_) {
    for_each_table(state_, [&](auto& table) {
      for (auto& [id, slot] : table.resident_entities())
        snapshot(core::stream_of(table.kind(), id), slot.meta, [&] { return core::encode_snapshot(slot.state); });
    });
  } else {
    for (const std::string& stream : since_checkpoint_) {
      const entity_name name = split(stream);
      (void)with_table(state_, name.kind, [&](auto& table) {
        // One passivated since was given a snapshot then if its tail was long (passivate_over_bound).
        if (auto* slot = table.resident(std::string(name.id)))
          snapshot(stream, slot->meta, [&] { return core::encode_snapshot(slot->state); });
      });
    }
  }
  since_checkpoint_.clear();
  since_checkpoint_overflowed_ = false;
  for (auto& [stream, meta] : pinned_meta_) {
    const entity_name name = split(stream);
    snapshot(stream, meta, [&] {
      return name.kind == core::stream_kind::utility ? core::encode_snapshot(state_.utilities.at(name.id))
                                                     : core::encode_snapshot(state_.clearinghouse);
    });
  }
}

void residency::group_durable(std::uint64_t group) {
  for_each_table(state_, [&](auto& table) { table.release_parked(group); });
}

void residency::trim() { passivate_over_bound(0, nullptr); }

std::size_t residency::resident_count() const {
  std::size_t n = 0;
  for_each_table(const_cast<core::ledger_state&>(state_), [&](auto& table) { n += table.size(); });
  return n;
}

}  // namespace pevledger::engine_detail
