#pragma once
// Errors as values. Every path that can fail on input or I/O returns a status or a result<T>;
// both are [[nodiscard]], so dropping one is a compile warning. `ignore_status()` is the one
// searchable way to drop an error on purpose.

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "base/assert.hpp"

namespace pevledger {

// Stable error codes. The first groups are the refusal codes of SPEC section 7 and their names are
// part of the command-line contract (`to_string` gives the exact spelling); the last group is ours.
enum class errc {
  ok = 0,
  // format
  invalid_json,
  line_too_long,
  missing_field,
  invalid_field,
  unknown_type,
  // unknown entity
  unknown_utility,
  unknown_account,
  unknown_premise,
  unknown_tariff,
  unknown_device,
  unknown_session,
  unknown_card,
  unknown_pev,
  // already exists
  utility_exists,
  account_exists,
  premise_exists,
  device_exists,
  session_exists,
  pev_enrolled,
  // rules
  invalid_vin,
  utility_mismatch,
  not_eumd,
  device_mismatch,
  not_public,
  not_residential,
  station_not_active,
  invalid_state,
  session_closed,
  already_bound,
  interval_conflict,
  card_revoked,
  card_assigned,
  card_not_whitelisted,
  insufficient_balance,
  stale_whitelist,
  tariff_not_rtp,
  // storage and usage (never a refusal of a command line)
  io_error,
  corruption,
  log_closed,
  usage,
};

[[nodiscard]] std::string_view to_string(errc code) noexcept;

class [[nodiscard]] status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {
    PEV_ASSERT(code != errc::ok);
  }
  static status ok() { return {}; }

  [[nodiscard]] bool is_ok() const noexcept { return code_ == errc::ok; }
  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  // "code: message", for people.
  [[nodiscard]] std::string describe() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

inline void ignore_status(const status&) noexcept {}

// A value or the status that explains why there is none.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  result(status error) : v_(std::move(error)) {  // NOLINT
    PEV_ASSERT(!std::get<status>(v_).is_ok());
  }
  result(errc code, std::string message) : result(status(code, std::move(message))) {}

  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    PEV_ASSERT(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    PEV_ASSERT(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    PEV_ASSERT(has_value());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const status& error() const {
    PEV_ASSERT(!has_value());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, status> v_;
};

}  // namespace pevledger

// Returns the status of `expr` from the enclosing function when it is not ok.
#define PEV_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::pevledger::status pev_status_ = (expr); \
    if (!pev_status_.is_ok()) return pev_status_; \
  } while (0)
