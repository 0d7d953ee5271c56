#pragma once
// Keys the gateway checks MACs with, as people keep them: a file holding the key in hex.

#include <cstdint>
#include <span>
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

// Device keys, issued at setup (SetupDone) and derived, not stored: key number `key_id` of
// `device` is HMAC-SHA256(secret, "pevledger device key 1" | key_id | device), where the secret is
// HMAC-SHA256(operator key, "pevledger device keys"). A gateway that restarts with the same
// operator key checks the same keys; only whoever holds the operator key can make one.
[[nodiscard]] std::vector<std::uint8_t> device_key_secret(std::span<const std::uint8_t> operator_key);
[[nodiscard]] std::vector<std::uint8_t> device_key(std::span<const std::uint8_t> secret, std::string_view device,
                                                   std::uint32_t key_id);
// The number of the key a setup issues: from the setup frame's id, so that a resent setup (a
// duplicate) is answered with the same key.
[[nodiscard]] std::uint32_t key_id_of_setup(std::string_view setup_id);

}  // namespace pevledger::gateway
