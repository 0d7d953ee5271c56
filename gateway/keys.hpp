#pragma once
// Keys the gateway checks MACs with, as people keep them: a file holding the key in hex.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"

namespace pevledger::gateway {

// The device name the back office signs its frames as (`serve --operator-key`).
inline constexpr std::string_view back_office_device = "back-office";

// Keys are 16 to 64 bytes: 32 to 128 hex digits.
inline constexpr std::size_t key_bytes_min = 16;
inline constexpr std::size_t key_bytes_max = 64;

// A key written in hex, with surrounding white space allowed; invalid_field otherwise.
[[nodiscard]] result<std::vector<std::uint8_t>> key_from_hex(std::string_view text);
// The key in the file at `path` (in hex); io_error when it cannot be read (at most 4 KiB are).
[[nodiscard]] result<std::vector<std::uint8_t>> read_key_file(const std::string& path);

}  // namespace pevledger::gateway
