#pragma once
// The device protocol's frames (docs/protocol.md, schema/protocol.fbs): splitting a connection's
// bytes into frames, opening a frame (its structure, its version, its MAC) and building one. No
// I/O here: the server hands in what it read and sends what it is given.
//
// Bounds: a frame is at most frame_bytes_max bytes after its 4-byte length; a splitter holds at
// most one frame's worth of bytes and takes no more until that frame is taken.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/limits.hpp"
#include "base/status.hpp"
#include "schema/protocol_generated.h"

namespace pevledger::gateway {

inline constexpr std::uint16_t protocol_version = 1;
inline constexpr std::size_t frame_length_bytes = 4;
// An interval batch of the most readings, in its envelope and frame.
inline constexpr std::size_t frame_bytes_max = limits::interval_batch_bytes_max + 4096;
inline constexpr std::size_t mac_bytes = 32;

// Why a frame was not taken: the `code` of the Error frame the gateway answers with before it
// closes the connection. Stable, like SPEC's error codes.
enum class frame_errc {
  oversize_frame,       // a length beyond frame_bytes_max (or 0)
  truncated_frame,      // the connection closed inside a frame
  malformed_frame,      // not a Frame, or its envelope or batch does not verify
  unsupported_version,  // an envelope version this gateway does not speak
  missing_mac,          // a device with a key sent a frame without a MAC
  bad_mac,              // the MAC does not match the envelope under the device's key
  unexpected_mac,       // a MAC from a device that has no key yet
  unexpected_message,   // a message only the gateway sends, or one without the id it needs
};
[[nodiscard]] std::string_view to_string(frame_errc code) noexcept;

struct frame_error {
  frame_errc code;
  std::string message;
};

// Splits a stream of bytes into frames.
class frame_splitter {
 public:
  // What it holds at most: one largest frame and its length.
  static constexpr std::size_t buffer_bytes_max = frame_length_bytes + frame_bytes_max;
  // Takes as many of `bytes` as fit (all of them unless a whole frame waits to be taken); returns
  // how many it took.
  std::size_t feed(std::span<const std::uint8_t> bytes);
  // The next whole frame's bytes (valid until the next call to feed or next), nullopt when more
  // bytes are needed, or the error that ends the connection.
  [[nodiscard]] std::optional<std::span<const std::uint8_t>> next(std::optional<frame_error>& error);
  // At the connection's close: an error when it closed inside a frame.
  [[nodiscard]] std::optional<frame_error> finish() const;

 private:
  std::vector<std::uint8_t> buffer_;  // grows as frames need, up to buffer_bytes_max
  std::size_t taken_ = 0;             // bytes at the front of buffer_ handed out already
  std::vector<std::uint8_t> frame_;  // the frame last handed out, 8-aligned
};

// A frame whose structure, version and MAC were checked: views into its bytes.
struct opened_frame {
  const protocol::Envelope* envelope = nullptr;
  std::span<const std::uint8_t> envelope_bytes;
  bool signed_by_key = false;
  std::optional<std::uint32_t> key_id;  // the frame's, when it named one
};

// The key a device signs with (the one numbered `key_id` when the frame names one), or nullopt
// for a device that has none (not set up).
using key_lookup =
    std::function<std::optional<std::vector<std::uint8_t>>(std::string_view device, std::optional<std::uint32_t> key_id)>;

// Checks one frame's bytes (8-aligned, as next() or a std::vector gives them). The MAC is checked
// in constant time.
[[nodiscard]] std::optional<opened_frame> open_frame(std::span<const std::uint8_t> frame, const key_lookup& key_of,
                                                     std::optional<frame_error>& error);

// A frame around `envelope` (the bytes of an Envelope FlatBuffer), signed under `key` if given,
// with its 4-byte length in front: ready to send.
[[nodiscard]] std::vector<std::uint8_t> encode_frame(std::span<const std::uint8_t> envelope,
                                                     std::optional<std::span<const std::uint8_t>> key = std::nullopt,
                                                     std::optional<std::uint32_t> key_id = std::nullopt);

// The bytes of an Envelope from, or to, `device` holding the message `make` builds: make(fbb)
// returns the message's union type and offset. `id` is a device frame's idempotency key.
template <class Make>
[[nodiscard]] std::vector<std::uint8_t> build_envelope(std::string_view device, const std::optional<std::string>& id,
                                                       std::int64_t at, Make make,
                                                       std::uint16_t version = protocol_version) {
  flatbuffers::FlatBufferBuilder fbb(512);
  const auto [type, message] = make(fbb);
  const auto d = fbb.CreateString(device.data(), device.size());
  flatbuffers::Offset<flatbuffers::String> i;
  if (id) i = fbb.CreateString(*id);
  fbb.Finish(protocol::CreateEnvelope(fbb, version, d, i, at, type, message));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

// HMAC-SHA256 of `data` under `key`.
[[nodiscard]] std::array<std::uint8_t, mac_bytes> mac_of(std::span<const std::uint8_t> key,
                                                         std::span<const std::uint8_t> data);

}  // namespace pevledger::gateway
