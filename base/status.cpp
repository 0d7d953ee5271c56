#include "base/status.hpp"

namespace pevledger {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::invalid_json: return "invalid_json";
    case errc::line_too_long: return "line_too_long";
    case errc::missing_field: return "missing_field";
    case errc::invalid_field: return "invalid_field";
    case errc::unknown_type: return "unknown_type";
    case errc::unknown_utility: return "unknown_utility";
    case errc::unknown_account: return "unknown_account";
    case errc::unknown_premise: return "unknown_premise";
    case errc::unknown_tariff: return "unknown_tariff";
    case errc::unknown_device: return "unknown_device";
    case errc::unknown_session: return "unknown_session";
    case errc::unknown_card: return "unknown_card";
    case errc::unknown_pev: return "unknown_pev";
    case errc::unknown_phone: return "unknown_phone";
    case errc::utility_exists: return "utility_exists";
    case errc::account_exists: return "account_exists";
    case errc::premise_exists: return "premise_exists";
    case errc::device_exists: return "device_exists";
    case errc::session_exists: return "session_exists";
    case errc::pev_enrolled: return "pev_enrolled";
    case errc::invalid_vin: return "invalid_vin";
    case errc::utility_mismatch: return "utility_mismatch";
    case errc::not_eumd: return "not_eumd";
    case errc::device_mismatch: return "device_mismatch";
    case errc::not_public: return "not_public";
    case errc::not_residential: return "not_residential";
    case errc::station_not_active: return "station_not_active";
    case errc::invalid_state: return "invalid_state";
    case errc::session_closed: return "session_closed";
    case errc::already_bound: return "already_bound";
    case errc::interval_conflict: return "interval_conflict";
    case errc::card_revoked: return "card_revoked";
    case errc::card_assigned: return "card_assigned";
    case errc::card_not_whitelisted: return "card_not_whitelisted";
    case errc::phone_assigned: return "phone_assigned";
    case errc::insufficient_balance: return "insufficient_balance";
    case errc::stale_whitelist: return "stale_whitelist";
    case errc::tariff_not_rtp: return "tariff_not_rtp";
    case errc::io_error: return "io_error";
    case errc::corruption: return "corruption";
    case errc::log_closed: return "log_closed";
    case errc::usage: return "usage";
  }
  return "unknown_error";
}

std::string status::describe() const {
  std::string out(to_string(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

}  // namespace pevledger
