#pragma once
// The checks every command field of one kind meets, whether it came in a JSON line
// (command_parser) or a binary interval batch (interval_batch): one rule, one message.

#include <string>
#include <string_view>

#include "base/status.hpp"
#include "base/strong_types.hpp"

namespace pevledger::schema {

// Well-formed UTF-8 (RFC 3629: no overlong forms, no encoded surrogates).
[[nodiscard]] bool is_utf8(std::string_view s);

// 1 to 256 bytes without a control character (U+0000 to U+001F, U+007F); `path` names the field in
// the refusal (invalid_field).
[[nodiscard]] status check_identifier(std::string_view s, const std::string& path);

// A command's time lies between 1970-01-03T00:00:00Z and 9999-12-29T23:59:59Z, so that it falls in
// a local month of 1970-01 to 9999-12 in every zone.
[[nodiscard]] bool is_business_time(unix_seconds t);
[[nodiscard]] result<unix_seconds> business_time(std::string_view text);

}  // namespace pevledger::schema
