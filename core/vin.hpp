#pragma once
// Vehicle identification numbers (SPEC section 2): 17 characters of the VIN alphabet (digits and
// upper-case letters but I, O and Q) whose North American check digit (position 9) holds.

#include <string_view>

namespace pevledger::core {

[[nodiscard]] bool is_valid_vin(std::string_view vin) noexcept;

}  // namespace pevledger::core
