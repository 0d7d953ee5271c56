#pragma once
// Typed commands and results: what a program hands the engine and reads back without writing or
// parsing JSON. Each command is one line type of the JSON-lines format (SPEC section 6) with the
// same fields, rules and refusals: the engine checks a typed command with the same schema as a
// line, so a typed command and the line that spells it are accepted, refused or found duplicate
// alike.
//
// Units are SPEC section 1's: energy in whole watt-hours, money in micro-units (1,000,000 to the
// currency unit), prices in micro per kWh, times in whole UTC seconds. Identifiers are strings of at
// most 256 bytes.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "pevledger/status.hpp"

namespace pevledger {

using timestamp = std::chrono::sys_seconds;

enum class tariff_kind { flat, tou, rtp };
enum class account_kind { postpaid, prepaid };
enum class premise_kind { residential, public_station };
enum class guest_policy { host_pays, guest_pays };
enum class device_kind { esci, eumd };

// A time-of-use window: local time of the tariff's utility, [from, to) on the listed weekdays.
struct tou_window {
  std::string name;
  std::vector<std::chrono::weekday> days;
  std::chrono::minutes from{0};
  std::chrono::minutes to{0};  // up to 24:00
  std::int64_t price_micro_per_kwh = 0;
};

namespace commands {

struct utility_register {
  std::string utility, timezone;  // an IANA zone, e.g. "America/Los_Angeles"
  std::optional<std::int64_t> comm_timeout_s;
  std::optional<std::int64_t> prepaid_reserve_micro;
};
struct tariff_publish {
  std::string utility, tariff;
  tariff_kind kind = tariff_kind::flat;
  std::int64_t price_micro_per_kwh = 0;  // flat price, or the base price of tou and rtp
  std::vector<tou_window> windows;
  std::optional<std::int64_t> cpp_price_micro_per_kwh;
};
struct price_publish {
  std::string utility, tariff;
  timestamp hour;
  std::int64_t price_micro_per_kwh = 0;
};
struct cpp_declare {
  std::string utility;
  timestamp start, end;
};
struct dlc_declare {
  std::string utility;
  timestamp start, end;
};
struct account_open {
  std::string utility, account, customer;
  account_kind kind = account_kind::postpaid;
};
struct account_topup {
  std::string account;
  std::int64_t amount_micro = 0;
};
struct premise_register {
  std::string utility, premise, account, default_tariff;
  guest_policy guests = guest_policy::host_pays;
  premise_kind kind = premise_kind::residential;
};
struct station_boot {
  std::string premise;
};
struct station_activate {
  std::string premise;
};
struct device_commission {
  std::string premise, device;
  device_kind kind = device_kind::eumd;
  std::optional<std::int64_t> interval_s;
};
struct device_configure {
  std::string device;
  std::int64_t interval_s = 900;
};
struct pev_enroll {
  std::string account, pev, tariff, home_premise;  // pev: the VIN
  bool allow_roaming = true;
};
struct pev_setup {
  std::string pev, premise, esci, eumd;
};
struct session_plug {
  std::string session, premise;
  std::optional<std::string> eumd;
};
struct session_bind {
  std::string session, pev;
};
// With `phone`, a session started by SMS (online; `card` and `online` are not sent).
struct session_start {
  std::string session, premise, card;
  bool online = true;
  std::optional<std::string> phone;
};
struct energy_request {
  std::string session;
  std::int64_t wh = 0;
  timestamp depart;
};
// Not in SPEC section 6: the communication timeout of a plug-in passed with no bind (`at` past
// plug-in + comm_timeout_s), so the session falls back to the main meter now. What the gateway's
// timer sends; refused (invalid_state) before the timeout or once the session is decided.
struct session_timeout {
  std::string session;
};
// Not in SPEC section 6: read access over HTTP (`pevledger serve --http`) for the bearer of a
// token, to one account's data (`account`) or to a whole utility's (`utility`): exactly one of
// them. Only the token's SHA-256, as 64 lower-case hex digits, is given and stored.
struct access_grant {
  std::string token_sha256;
  std::optional<std::string> account, utility;
};
// Ends the access that access_grant gave the same token to the same principal.
struct access_revoke {
  std::string token_sha256;
  std::optional<std::string> account, utility;
};
struct meter_interval {
  std::string device, session;
  timestamp start;
  std::int64_t seconds = 900;
  std::int64_t wh = 0;
  std::optional<std::int64_t> register_wh;
};
struct pev_total {
  std::string session;
  std::int64_t wh = 0;
};
struct session_unplug {
  std::string session;
};
struct card_assign {
  std::string card, account;
};
struct card_revoke {
  std::string card;
};
// A subscriber's SMS number, E.164 ('+' and 8 to 15 digits).
struct phone_assign {
  std::string phone, account;
};
struct phone_revoke {
  std::string phone;
};
struct whitelist_push {
  std::string premise;
  std::int64_t version = 0;
  std::vector<std::string> cards;
};
struct bill_run {
  std::string utility;
  std::chrono::year_month period;  // the utility's local month
};
struct settlement_run {
  std::chrono::year_month period;
};

}  // namespace commands

// One command: its idempotency key, its business time and what it says.
struct command {
  using body_type =
      std::variant<commands::utility_register, commands::tariff_publish, commands::price_publish,
                   commands::cpp_declare, commands::dlc_declare, commands::account_open, commands::account_topup,
                   commands::premise_register, commands::station_boot, commands::station_activate,
                   commands::device_commission, commands::device_configure, commands::pev_enroll,
                   commands::pev_setup, commands::session_plug, commands::session_bind, commands::session_start,
                   commands::energy_request, commands::meter_interval, commands::pev_total,
                   commands::session_unplug, commands::card_assign, commands::card_revoke, commands::phone_assign,
                   commands::phone_revoke, commands::whitelist_push, commands::bill_run, commands::settlement_run,
                   commands::session_timeout, commands::access_grant, commands::access_revoke>;
  std::string id;
  timestamp at;
  body_type body;
};

// The answer to an energy request (SPEC section 5): `wh` as requested, charging from `start`
// (deferred past the direct-load-control events of the premise's utility in force) until
// `depart`, and the price now for a decided session.
struct energy_grant {
  std::string session;
  std::int64_t wh = 0;
  timestamp start, depart;
  std::optional<std::int64_t> price_micro_per_kwh;
};

// What became of one submitted command.
struct command_outcome {
  enum class kind { accepted, duplicate, refused };
  kind what = kind::accepted;
  status refusal;  // ok unless refused: a stable code of SPEC section 7 and a message
  // What a device waits to hear, for an accepted (not a duplicate) command:
  // session.plug at a residential premise: the business time past which, with no bind, the
  // session falls back to the main meter (plug-in + comm_timeout_s); see commands::session_timeout.
  std::optional<timestamp> bind_deadline;
  // energy.request; also for a duplicate of one, the grant recorded for the first once it is
  // durable (a device that resends its request heard no answer).
  std::optional<energy_grant> grant;
  // device.configure that changed an EUMD's interval: the EUMD is to report at interval_s now
  // (intervals of another length are flagged in the session report: interval_length_flags).
  struct eumd_interval {
    std::string eumd;
    std::int64_t interval_s = 0;
  };
  std::optional<eumd_interval> reconfigured;
};

// A bill line (SPEC section 7): one per session, kind, tariff and window.
struct bill_line {
  std::string session;
  std::string kind;    // charge, credit, main_meter, uncollectible, adjustment
  std::string tariff;  // empty for main_meter
  std::string window;  // a TOU window's name, cpp, rtp, base or flat; empty for main_meter
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;
  std::optional<std::string> adjusts;                   // adjustments: the kind adjusted
  std::optional<std::chrono::year_month> original_period;  // adjustments: the period it belonged to
};

struct bill {
  std::string account, utility;
  std::chrono::year_month period;
  bool issued = false;  // false: a preview of what a bill.run would issue now
  std::vector<bill_line> lines;
  std::int64_t total_micro = 0;
  std::int64_t total_cents = 0;
};

struct balance {
  std::string account;
  std::int64_t balance_micro = 0;
  std::int64_t reserved_micro = 0;
};

// A settlement entry (SPEC section 4): what `home_utility` owes `roaming_utility`.
struct settlement_entry {
  std::string home_utility, roaming_utility;
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;
  bool net = false;
};

// The JSON line that spells `c` (SPEC section 6), for logs and for the JSON-lines entry point.
[[nodiscard]] std::string to_json_line(const command& c);

}  // namespace pevledger
