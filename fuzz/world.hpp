#pragma once
// Random whole worlds for the billing properties: a valid command stream (SPEC section 6) over two
// or three utilities in different zones, and what the generator knows about it (who should pay
// each session, what each session metered, which accounts are prepaid). The properties compare
// the engine's outputs with these facts and with the outputs of other deliveries of the same world.
//
// Sessions never overlap in time (each has its own three-hour slot), so no EUMD meters two at once
// and no two intervals share an EUMD and a start: every interval line is either new or an exact
// duplicate, never a conflict. The only refusal a world may draw is `insufficient_balance` on an
// online station start of a prepaid account (whether it covers depends on prices the generator
// does not compute), followed by `unknown_session` for that session's later lines.

#include <rapidcheck.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace pevledger::fuzzing {

using unix_time = std::int64_t;

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}
constexpr unix_time utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 + mi * 60 + s;
}
std::string timestamp(unix_time t);
inline std::string q(const std::string& s) { return "\"" + s + "\""; }

struct command_line {
  std::string type;
  std::string id;
  std::string session;       // the session the line belongs to, if any
  bool prepaid_start = false; // an online station start of a prepaid account: may be refused
  std::string text;          // the whole JSON line
};

struct session_plan {
  std::string id;
  std::string premise;
  std::string utility;            // of the premise
  std::string premise_account;    // the premise's (a station's: its operator's)
  bool is_public = false;
  bool online = false;
  std::int64_t metered_wh = 0;    // over distinct intervals
  int intervals = 0;
  // Who pays per SPEC section 3, before the prepaid reservation: an account, or "main_meter".
  std::string payer;
  std::string payer_kind;         // pev_account, main_meter, card_account, station_operator
  bool credited = false;          // residential, paid by a PEV account: the premise is credited
  // Non-empty when the payer is a prepaid account that must cover a reservation at `deciding_id`
  // (the bind, or the online start); uncovered, it is main_meter (residential) or refused (station).
  std::string reserve_account;
  std::string deciding_id;
  bool delayable = false;         // no prepaid account can be its payer (see delayed_intervals)
};

struct world {
  std::vector<command_line> lines;
  std::vector<std::string> utilities;
  std::map<std::string, std::string> account_utility;
  std::set<std::string> prepaid;
  std::map<std::string, std::int64_t> reserve_of;   // per utility
  std::map<std::string, std::int64_t> topups;       // per account, total
  std::vector<session_plan> sessions;
  // Tags for rapidcheck's distribution: which features this world exercises.
  std::set<std::string> features;

  [[nodiscard]] const session_plan* session(const std::string& id) const {
    for (const auto& s : sessions)
      if (s.id == id) return &s;
    return nullptr;
  }
  [[nodiscard]] std::vector<std::string> accounts() const {
    std::vector<std::string> out;
    for (const auto& [a, u] : account_utility) out.push_back(a);
    return out;
  }
};

// Prints the stream as JSON lines, ready to paste into a test.
void showValue(const world& w, std::ostream& os);

rc::Gen<world> gen_world();

// Periods that can hold a line of a world: the local months of its sessions (February in
// Los Angeles to May in Tokyo) and the months adjustments move to.
inline const std::vector<std::string> bill_periods = {"2024-02", "2024-03", "2024-04", "2024-05", "2024-06"};
inline const std::vector<std::string> settlement_periods = {"2024-01", "2024-02", "2024-03", "2024-04",
                                                            "2024-05", "2024-06", "2024-07"};

}  // namespace pevledger::fuzzing
