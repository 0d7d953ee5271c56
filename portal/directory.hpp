#pragma once
// The customer directory: what the HTTP API needs that no ledger projection keeps, folded from the
// event log as a read model (a consumer of the log, like a utility's own systems would be).
//   - who may read what: access tokens (their SHA-256) and the account or utility each opens;
//   - an account's premises, PEVs and programs, and the sessions it pays for or is credited for;
//   - a session's summary (where, when, payer, energy, amount), and usage by local day and tariff
//     window, read in the zone the log pinned for the utility.
// Bills, balances, settlements and session reports are the engine's projections; the API reads
// those from a read-only engine.
//
// Bounds: one entry per account, premise, PEV and session of the log, plus one per account, local
// day and tariff window with charging (a few hundred bytes a session all told); `fold` reads at
// most fold_records_max records a call, so a request never waits on a long catch-up.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/status.hpp"
#include "base/strong_types.hpp"
#include "core/zone_rules.hpp"
#include "portal/principal.hpp"
#include "schema/events_generated.h"

namespace pevledger::storage {
class event_log;
}

namespace pevledger::portal {

struct premise_entry {
  std::string utility, account, default_tariff;
  schema::PremiseKind kind = schema::PremiseKind::residential;
  schema::GuestPolicy guest_policy = schema::GuestPolicy::host_pays;
};

struct pev_entry {
  std::string account, tariff, home_premise;
  bool allow_roaming = true;
};

struct usage_total {
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;
};

struct account_entry {
  std::string utility, customer;
  schema::AccountKind kind = schema::AccountKind::postpaid;
  std::vector<std::string> premises;  // in registration order
  std::vector<std::string> pevs;      // in enrolment order
  std::vector<std::string> sessions;  // in the order the account became party to them
  std::set<std::string> open_sessions;  // of those, the ones not unplugged yet
  std::map<std::int32_t, bool> periods;  // bill periods with lines (month_period::index) -> issued
  // Charged energy by local day (days since 1970-01-01 in the utility's zone) and tariff window.
  std::map<std::int64_t, std::map<std::string, usage_total>> usage;
};

struct session_entry {
  std::string premise, utility;
  unix_seconds began{0};
  std::optional<unix_seconds> ended;  // unplug
  bool decided = false;
  schema::Payer payer = schema::Payer::main_meter;
  schema::FallbackReason reason = schema::FallbackReason::none;
  std::string payer_account;  // empty for the main meter
  std::string pev;
  std::int64_t wh = 0;            // recorded readings
  // What was booked to each account, but credits (charges, uncollectible, adjustments of those):
  // a line may be booked before the session's payer is recorded (an offline card session).
  std::vector<std::pair<std::string, std::int64_t>> booked_micro;
  std::int64_t credit_micro = 0;  // credited to the premise's account
  std::vector<std::string> accounts;  // accounts that see it: the premise's, the payer, the credited

  // Booked to the payer (0 for the main meter).
  [[nodiscard]] std::int64_t amount_micro() const {
    for (const auto& [account, amount] : booked_micro)
      if (account == payer_account) return amount;
    return 0;
  }
};

struct utility_entry {
  std::string timezone;
  std::optional<core::zone_rules> zone;  // absent in logs written before zones were pinned: read as UTC
  std::vector<std::string> accounts;     // in opening order
};

class directory {
 public:
  static constexpr std::uint64_t fold_records_max = 1u << 20;

  // Folds the log's records after the last one folded, up to its head (at most fold_records_max).
  [[nodiscard]] status fold(const storage::event_log& log);
  [[nodiscard]] std::uint64_t folded() const { return folded_; }

  [[nodiscard]] const principal* token_principal(const std::string& token_sha256) const;
  [[nodiscard]] const utility_entry* utility(const std::string& id) const { return find(utilities_, id); }
  [[nodiscard]] const account_entry* account(const std::string& id) const { return find(accounts_, id); }
  [[nodiscard]] const premise_entry* premise(const std::string& id) const { return find(premises_, id); }
  [[nodiscard]] const pev_entry* pev(const std::string& id) const { return find(pevs_, id); }
  [[nodiscard]] const session_entry* session(const std::string& id) const { return find(sessions_, id); }
  // May `who` read this account's or this session's data?
  [[nodiscard]] bool may_read_account(const principal& who, const std::string& account) const;
  [[nodiscard]] bool may_read_session(const principal& who, const std::string& session) const;
  // The local day (days since 1970-01-01) of an instant in a utility's zone.
  [[nodiscard]] std::int64_t local_day(const std::string& utility, unix_seconds t) const;

 private:
  template <class Map>
  static const typename Map::mapped_type* find(const Map& map, const std::string& key) {
    auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
  }
  void apply(const schema::EventBody& body, unix_seconds at);
  void relate(session_entry& session, const std::string& session_id, const std::string& account);
  void book(const schema::LineBooked& line);

  std::uint64_t folded_ = 0;
  std::unordered_map<std::string, principal> tokens_;
  std::unordered_map<std::string, utility_entry> utilities_;
  std::unordered_map<std::string, account_entry> accounts_;
  std::unordered_map<std::string, premise_entry> premises_;
  std::unordered_map<std::string, pev_entry> pevs_;
  std::unordered_map<std::string, session_entry> sessions_;
};

}  // namespace pevledger::portal
