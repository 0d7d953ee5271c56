#pragma once
// Text renderings, for people, of the JSON documents the engine returns.

#include <string>

namespace pevledger::cli {

[[nodiscard]] std::string bill_text(const std::string& json);
[[nodiscard]] std::string balance_text(const std::string& json);
[[nodiscard]] std::string settlement_text(const std::string& json);
[[nodiscard]] std::string session_text(const std::string& json);
[[nodiscard]] std::string report_text(const std::string& json);
// Micro-units as a decimal amount, e.g. -1234567 -> "-1.234567". Exact: integer arithmetic only.
[[nodiscard]] std::string micro_text(long long micro);

}  // namespace pevledger::cli
