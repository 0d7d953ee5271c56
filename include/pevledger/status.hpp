#pragma once
// pevledger's errors as values: every call of the public API that can fail on input or I/O
// returns a `status` or a `result<T>`, never aborts the host and never throws on such a failure.
// Both are [[nodiscard]]. `ignore_status()` is the one searchable way to drop an error on purpose.
//
// Stable: the errc names (their spellings from to_string are part of the command-line and JSON
// contract) and this header's API. New codes may be added at the end of a group.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

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
  unknown_phone,
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
  phone_assigned,
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
  // A status with a code is an error: errc::ok here is a programming error (std::invalid_argument).
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {
    if (code == errc::ok) throw std::invalid_argument("pevledger::status: an error needs a code other than ok");
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

// Thrown by result<T>::value() when there is no value, and by error() when there is no error:
// reading the wrong side is a bug of the caller, reported as an exception the host may catch, never
// an abort. Check has_value() (or the result's bool) first.
class bad_result_access : public std::logic_error {
 public:
  explicit bad_result_access(status error)
      : std::logic_error(error.is_ok() ? "pevledger::result: no error to read"
                                       : "pevledger::result: no value: " + error.describe()),
        error_(std::move(error)) {}
  [[nodiscard]] const status& error() const noexcept { return error_; }

 private:
  status error_;
};

// A value or the status that explains why there is none (like C++23's std::expected).
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design, like std::expected
  result(status error) : v_(std::move(error)) {  // NOLINT
    if (std::get<status>(v_).is_ok()) throw std::invalid_argument("pevledger::result: an error needs a code other than ok");
  }
  result(errc code, std::string message) : result(status(code, std::move(message))) {}

  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    check_value();
    return std::get<0>(v_);
  }
  const T& value() const& {
    check_value();
    return std::get<0>(v_);
  }
  T&& value() && {
    check_value();
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const status& error() const {
    if (has_value()) throw bad_result_access(status::ok());
    return std::get<1>(v_);
  }

 private:
  void check_value() const {
    if (!has_value()) throw bad_result_access(std::get<1>(v_));
  }
  std::variant<T, status> v_;
};

}  // namespace pevledger
