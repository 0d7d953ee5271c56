#pragma once
// What a device's frame asks of the engine (docs/protocol.md, "Messages"): the typed command it
// becomes, or the interval batch it carries for the binary batch path. The engine checks every
// field as it checks a command line; here only the protocol's own rules are: a device sends
// device messages, each under an id.

#include <cstdint>
#include <optional>
#include <span>
#include <variant>

#include "gateway/frame.hpp"
#include "pevledger/commands.hpp"

namespace pevledger::gateway {

// An interval batch's bytes, as the frame carried them (views into the frame).
struct interval_batch_bytes {
  std::span<const std::uint8_t> bytes;
};

using device_request = std::variant<command, interval_batch_bytes>;

// The request of an opened device frame, or nullopt and `error` (unexpected_message).
[[nodiscard]] std::optional<device_request> request_of(const protocol::Envelope& envelope,
                                                       std::optional<frame_error>& error);

}  // namespace pevledger::gateway
