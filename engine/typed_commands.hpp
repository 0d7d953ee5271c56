#pragma once
// Typed results read from the engine's JSON documents (engine/typed_commands.cpp).

#include <string>
#include <vector>

#include "pevledger/commands.hpp"

namespace pevledger::engine_detail {

[[nodiscard]] result<bill> bill_from_json(const std::string& text);
[[nodiscard]] result<balance> balance_from_json(const std::string& text);
[[nodiscard]] result<std::vector<settlement_entry>> settlement_from_json(const std::string& text);

}  // namespace pevledger::engine_detail
