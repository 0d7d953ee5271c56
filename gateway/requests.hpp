#pragma once
// What a device's frame asks of the engine (docs/protocol.md, "Messages"): the typed command it
// becomes, or the interval batch it carries for the binary batch path. The engine checks every
// field as it checks a command line; here only the protocol's own rules are: a device sends
// device messages, each under an id.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <variant>

#include "gateway/frame.hpp"
#include "pevledger/commands.hpp"

namespace pevledger::gateway {

// An interval batch's bytes, as the frame carried them (views into the frame).
struct interval_batch_bytes {
  std::span<const std::uint8_t> bytes;
};

// A back-office command line (a view into the frame).
struct operator_line {
  std::string_view line;
};

// The back office sets the gateway's business clock (for a gateway whose clock it is).
struct clock_tick {
  std::int64_t at = 0;  // UTC seconds
};

using device_request = std::variant<command, interval_batch_bytes, operator_line, clock_tick>;

// The request of an opened frame, or nullopt and `error` (unexpected_message). `from_operator`:
// the frame came from the back office, whose MAC was checked under the operator key; only it may
// send an OperatorCommand or a Clock, and it sends nothing else.
[[nodiscard]] std::optional<device_request> request_of(const protocol::Envelope& envelope, bool from_operator,
                                                       std::optional<frame_error>& error);

}  // namespace pevledger::gateway
