#pragma once
// The state of every entity of the domain (SPEC section 2), as plain structs. Each entity's state
// changes only through `apply` (core/apply.cpp) and is read by `decide` (core/decide.cpp); both
// are pure. An entity's state is a function of its own stream alone: that is what lets the engine
// passivate it and activate it again from a snapshot plus the tail of its stream. Replay folds the
// whole log into one ledger_state without any actor system.

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/entity_table.hpp"
#include "core/stream_name.hpp"
#include "core/zone_rules.hpp"
#include "base/strong_types.hpp"
#include "base/time.hpp"
#include "schema/events_generated.h"

namespace pevledger::core {

struct time_range {
  unix_seconds start;
  unix_seconds end;  // exclusive
  [[nodiscard]] bool contains(unix_seconds t) const { return start <= t && t < end; }
};

struct tou_window {
  std::string name;
  std::uint8_t weekday_mask = 0;  // bit 0 = Monday
  int from_min = 0;
  int to_min = 0;
  std::int64_t price = 0;
};

struct tariff_version {
  unix_seconds in_force_from;
  schema::TariffKind kind = schema::TariffKind::flat;
  std::int64_t base_price = 0;
  std::vector<tou_window> windows;
  std::optional<std::int64_t> cpp_price;
};

struct tariff_state {
  std::vector<tariff_version> versions;           // in publication order
  std::map<std::int64_t, std::int64_t> hourly;    // UTC hour start -> price (real-time tariffs)
};

struct utility_state {
  std::string timezone;
  // The zone's table as the log pins it. Null only for a utility whose event predates pinned zones,
  // until the engine pins the host's table for it (engine/residency.cpp).
  std::shared_ptr<const zone_rules> zone;
  std::int64_t comm_timeout_s = 60;
  std::int64_t prepaid_reserve = 5'000'000;
  std::unordered_map<std::string, tariff_state> tariffs;
  std::vector<time_range> critical_peaks;
  std::vector<time_range> load_controls;
  std::set<std::int32_t> billed_periods;          // month_period::index()
  std::vector<std::string> accounts;              // in opening order: a bill run's order
  std::set<std::string> undecided_sessions;       // sessions at its premises not yet decided
};

// The identity of one aggregated bill line (SPEC section 7: per session, kind, tariff, window).
struct line_key {
  std::string session;
  schema::LineKind kind = schema::LineKind::charge;
  std::string tariff;
  std::string window;
  schema::LineKind adjusts = schema::LineKind::charge;  // meaningful for adjustments only
  std::int32_t original_period = 0;                     // likewise
  auto operator<=>(const line_key&) const = default;
};

struct line_total {
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;
};

struct issued_bill {
  std::int64_t total_micro = 0;
  std::int64_t total_cents = 0;
  std::uint32_t line_count = 0;
};

struct account_state {
  std::string utility;
  std::string customer;
  schema::AccountKind kind = schema::AccountKind::postpaid;
  std::int64_t topups_micro = 0;
  std::int64_t posted_micro = 0;    // sum of posted line amounts (debits positive)
  std::map<std::string, std::int64_t> reservations;     // open prepaid reservations: session -> amount
  std::map<std::string, std::int64_t> unposted_micro;   // session -> booked before its unplug
  std::map<std::int32_t, std::map<line_key, line_total>> lines;  // bill period -> lines
  std::map<std::int32_t, issued_bill> bills;

  [[nodiscard]] std::int64_t balance_micro() const { return topups_micro - posted_micro; }
  // At most one reservation per open session of the account, so the sum stays short.
  [[nodiscard]] std::int64_t reserved_micro() const {
    std::int64_t sum = 0;
    for (const auto& [session, amount] : reservations) sum += amount;
    return sum;
  }
  [[nodiscard]] std::int64_t available_micro() const { return balance_micro() - reserved_micro(); }
};

struct whitelist {
  std::int64_t version = -1;  // none pushed yet
  std::set<std::string> cards;
};

struct premise_state {
  std::string utility;
  std::string account;
  std::string default_tariff;
  schema::GuestPolicy guest_policy = schema::GuestPolicy::host_pays;
  schema::PremiseKind kind = schema::PremiseKind::residential;
  schema::StationState station = schema::StationState::created;
  std::vector<std::string> eumds;  // in commissioning order; the first is "the premise's EUMD"
  std::vector<std::string> escis;
  whitelist list;
};

struct device_state {
  std::string premise;
  schema::DeviceKind kind = schema::DeviceKind::esci;
  std::int64_t interval_s = 900;
  // An EUMD's sessions plugged and not yet unplugged: one normally, more only after the anomaly of
  // a plug on an EUMD in use. Bounded like a utility's undecided sessions.
  std::set<std::string> open_sessions;
};

struct pev_state {
  std::string account;
  std::string utility;
  std::string tariff;
  std::string home_premise;
  bool allow_roaming = true;
  bool set_up = false;
  std::string setup_premise;
};

struct vin_registration {
  std::string home_utility;
  std::string account;
};

struct card_assignment {
  std::string account;
  unix_seconds assigned_at;
  std::optional<unix_seconds> revoked_at;
};

struct card_state {
  std::vector<card_assignment> history;  // the last one is current
  [[nodiscard]] const card_assignment& current() const { return history.back(); }
};

// A subscriber's SMS number: assigned to an account and revoked like a card.
using phone_state = card_state;

struct interval_content {
  std::string session;
  std::int64_t seconds = 0;
  std::int64_t wh = 0;
  std::optional<std::int64_t> register_wh;
  auto operator<=>(const interval_content&) const = default;
};

// A reading as its session keeps it. Its session is the session itself and its EUMD is one of the
// few the session has seen (`session_state::reading_devices`), so neither is repeated per reading:
// a month of a session's intervals stays a few kilobytes in one allocation.
struct session_reading {
  std::int64_t start = 0;
  std::int64_t wh = 0;
  std::optional<std::int64_t> register_wh;
  std::int32_t seconds = 0;
  std::uint16_t device = 0;  // index into the session's reading_devices
  auto operator<=>(const session_reading&) const = default;
};

struct energy_grant {
  std::int64_t wh = 0;
  unix_seconds depart;
  unix_seconds start;
  std::optional<std::int64_t> price;
};

struct anomaly_note {
  schema::AnomalyKind kind = schema::AnomalyKind::interval_conflict;
  unix_seconds interval_start;
  std::int64_t expected_wh = 0;
  std::int64_t observed_wh = 0;
  std::string detail;
};

// Who pays for a session, once decided (SPEC section 3).
struct session_decision {
  schema::Payer payer = schema::Payer::main_meter;
  schema::FallbackReason reason = schema::FallbackReason::none;
  std::string pev;
  std::string payer_account;
  std::string payer_utility;
  std::string tariff;
  std::string tariff_utility;
  std::string credit_account;
  std::string credit_tariff;
  bool roaming = false;
  std::int64_t reserved_micro = 0;
};

struct session_state {
  std::string premise;
  std::string utility;  // the premise's utility
  std::string eumd;     // empty: the premise has no EUMD (residential)
  bool is_public = false;
  unix_seconds began;   // plug-in, or start at a public station
  // Public stations.
  std::string card;
  std::string phone;  // a session started by SMS (online), instead of a card
  std::string card_account;
  bool online = false;
  // Binding.
  bool bound = false;
  std::string bound_pev;
  bool rebind = false;  // bound with the credentials of an earlier pev.setup at this premise
  std::optional<session_decision> decision;
  bool unplugged = false;
  // Metering: readings in start order (one per start), and those waiting for the decision to be
  // priced. The EUMDs they came from: the session's own, and at a station any other of its EUMDs.
  std::vector<std::string> reading_devices;
  std::vector<session_reading> readings;
  std::vector<std::int64_t> held;  // starts of readings waiting for the decision, in arrival order
  std::int64_t eumd_wh = 0;
  std::uint32_t duplicates = 0;
  std::vector<anomaly_note> anomalies;
  std::optional<std::int64_t> pev_total_wh;
  std::vector<energy_grant> grants;

  // The first reading that starts at or after `start`.
  [[nodiscard]] std::vector<session_reading>::const_iterator reading_from(std::int64_t start) const {
    return std::lower_bound(readings.begin(), readings.end(), start,
                            [](const session_reading& r, std::int64_t t) { return r.start < t; });
  }
  [[nodiscard]] const session_reading* reading_at(std::int64_t start) const {
    auto it = reading_from(start);
    return it != readings.end() && it->start == start ? &*it : nullptr;
  }
  [[nodiscard]] const std::string& device_of(const session_reading& r) const { return reading_devices.at(r.device); }
};

struct settlement_pair_total {
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;  // owed by the home utility: positive
};

struct settlement_entry {
  std::string home_utility;
  std::string roaming_utility;
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;
  bool net = false;
};

// The clearinghouse's settlement book (its stream is `clearinghouse`).
struct clearinghouse_state {
  // Roaming credits waiting for settlement: settlement period -> (home, roaming) -> totals.
  std::map<std::int32_t, std::map<std::pair<std::string, std::string>, settlement_pair_total>> roaming_credits;
  std::set<std::int32_t> settled_periods;
  std::map<std::int32_t, std::vector<settlement_entry>> statements;  // issued, by period
};

// Interval identity (SPEC section 5): (EUMD, start) -> the first content recorded. Not entity
// state: `apply` never touches it. The engine keeps the entries `decide` needs, from an index
// stored with the events (engine/residency); replay does not decide, so it needs none.
struct interval_identity {
  std::string device;
  std::int64_t start = 0;
  auto operator<=>(const interval_identity&) const = default;
};

struct interval_identity_hash {
  std::size_t operator()(const interval_identity& id) const noexcept {
    return std::hash<std::string>{}(id.device) ^ (std::hash<std::int64_t>{}(id.start) * 0x9e3779b97f4a7c15ULL);
  }
};

// An EUMD's intervals nearest to a start, in start order (SPEC section 5: its register counts over
// the device's life, and an interval must not overlap another of the device).
struct interval_neighbour {
  std::int64_t start = 0;
  interval_content content;
};

// Views into the index below, valid until the next command changes it.
struct interval_neighbours {
  const interval_neighbour* before = nullptr;  // the latest start before
  const interval_neighbour* after = nullptr;   // the earliest start after
};

// What the engine knows of one EUMD's intervals (looked up once since it last forgot them).
struct eumd_intervals {
  std::optional<interval_neighbour> stored_latest;  // the log's, when looked up
  std::vector<interval_neighbour> recorded;          // recorded since, in start order
  // The interval of the EUMD's latest start, or nullptr when it has none.
  [[nodiscard]] const interval_neighbour* latest() const {
    const interval_neighbour* r = recorded.empty() ? nullptr : &recorded.back();
    const interval_neighbour* l = stored_latest ? &*stored_latest : nullptr;
    if (r == nullptr) return l;
    return l != nullptr && l->start > r->start ? l : r;
  }
};

struct interval_index {
  // Known entries; `missing` when the engine has not looked the key up yet. Looked up once per
  // interval line, so hashed rather than ordered.
  std::unordered_map<interval_identity, std::optional<interval_content>, interval_identity_hash> known;
  // Per EUMD looked up: its latest interval in the log, and those recorded since. Intervals mostly
  // arrive in start order: then the latest alone is the new interval's neighbourhood.
  std::unordered_map<std::string, eumd_intervals> eumds;
  // Neighbours of starts before their EUMD's latest (a late interval), looked up for the command
  // being decided only: the next command may record one of them.
  std::map<interval_identity, std::pair<std::optional<interval_neighbour>, std::optional<interval_neighbour>>> looked_up;
  mutable std::vector<interval_identity> misses;
  mutable std::vector<interval_identity> neighbour_misses;
  bool paged = false;

  // The first content recorded for (device, start), if any; a miss when not looked up yet.
  [[nodiscard]] const interval_content* find(const std::string& device, std::int64_t start) const {
    auto it = known.find({device, start});
    if (it == known.end()) {
      if (paged) misses.push_back({device, start});
      return nullptr;
    }
    return it->second ? &*it->second : nullptr;
  }

  // The intervals of `device` nearest to `start` (which has none recorded); nullopt on a miss.
  // Without paging nothing is recorded here, so there are none.
  [[nodiscard]] std::optional<interval_neighbours> neighbours(const std::string& device, std::int64_t start) const {
    if (!paged) return interval_neighbours{};
    if (auto eumd = eumds.find(device); eumd != eumds.end()) {
      const interval_neighbour* latest = eumd->second.latest();
      if (latest == nullptr || latest->start < start) return interval_neighbours{latest, nullptr};
      if (auto it = looked_up.find({device, start}); it != looked_up.end())
        return interval_neighbours{it->second.first ? &*it->second.first : nullptr,
                                   it->second.second ? &*it->second.second : nullptr};
    }
    neighbour_misses.push_back({device, start});
    return std::nullopt;
  }
};

struct ledger_state {
  // Utilities are few and always resident; they are not paged.
  std::unordered_map<std::string, utility_state> utilities;
  entity_table<account_state> accounts{stream_kind::account};
  entity_table<premise_state> premises{stream_kind::premise};
  entity_table<device_state> devices{stream_kind::device};
  entity_table<pev_state> pevs{stream_kind::pev};
  entity_table<vin_registration> registrations{stream_kind::registry};
  entity_table<card_state> cards{stream_kind::card};
  entity_table<phone_state> phones{stream_kind::phone};
  entity_table<session_state> sessions{stream_kind::session};
  clearinghouse_state clearinghouse;
  interval_index intervals;
  // Zones the engine looked up in the host's tz database for utility.register commands, by name:
  // decide reads them and never reads the host's files itself. At most the database's zones
  // (about 600), as only names it knows are kept.
  std::map<std::string, std::shared_ptr<const zone_rules>, std::less<>> zones_looked_up;
};

}  // namespace pevledger::core
