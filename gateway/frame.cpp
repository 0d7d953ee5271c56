#include "gateway/frame.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "base/assert.hpp"

namespace pevledger::gateway {

std::string_view to_string(frame_errc code) noexcept {
  switch (code) {
    case frame_errc::oversize_frame: return "oversize_frame";
    case frame_errc::truncated_frame: return "truncated_frame";
    case frame_errc::malformed_frame: return "malformed_frame";
    case frame_errc::unsupported_version: return "unsupported_version";
    case frame_errc::missing_mac: return "missing_mac";
    case frame_errc::bad_mac: return "bad_mac";
    case frame_errc::unexpected_mac: return "unexpected_mac";
    case frame_errc::unexpected_message: return "unexpected_message";
  }
  return "unknown";
}

namespace {

std::uint32_t read_length(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

}  // namespace

std::size_t frame_splitter::feed(std::span<const std::uint8_t> bytes) {
  if (taken_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(taken_));
    taken_ = 0;
  }
  const std::size_t room = buffer_bytes_max - buffer_.size();
  const std::size_t n = std::min(room, bytes.size());
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
  return n;
}

std::optional<std::span<const std::uint8_t>> frame_splitter::next(std::optional<frame_error>& error) {
  const std::size_t waiting = buffer_.size() - taken_;
  if (waiting < frame_length_bytes) return std::nullopt;
  const std::uint32_t length = read_length(buffer_.data() + taken_);
  if (length == 0 || length > frame_bytes_max) {
    error = frame_error{frame_errc::oversize_frame, "a frame of " + std::to_string(length) +
                                                        " bytes; a frame holds 1 to " +
                                                        std::to_string(frame_bytes_max)};
    return std::nullopt;
  }
  if (waiting < frame_length_bytes + length) return std::nullopt;
  // Copied out: FlatBuffers reads a frame in place, so it must start 8-aligned, which a frame
  // following another in the stream need not.
  const std::uint8_t* first = buffer_.data() + taken_ + frame_length_bytes;
  frame_.assign(first, first + length);
  taken_ += frame_length_bytes + length;
  return std::span<const std::uint8_t>(frame_);
}

std::optional<frame_error> frame_splitter::finish() const {
  if (buffer_.size() == taken_) return std::nullopt;
  return frame_error{frame_errc::truncated_frame, "the connection closed " + std::to_string(buffer_.size() - taken_) +
                                                      " bytes into a frame"};
}

std::array<std::uint8_t, mac_bytes> mac_of(std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  std::array<std::uint8_t, mac_bytes> out{};
  unsigned int length = 0;
  const unsigned char* done = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
                                   out.data(), &length);
  PEV_ASSERT(done != nullptr && length == mac_bytes);  // only an OpenSSL failure could
  return out;
}

std::optional<opened_frame> open_frame(std::span<const std::uint8_t> frame, const key_lookup& key_of,
                                       std::optional<frame_error>& error) {
  auto fail = [&](frame_errc code, std::string message) {
    error = frame_error{code, std::move(message)};
    return std::nullopt;
  };
  if (frame.size() > frame_bytes_max) return fail(frame_errc::oversize_frame, "frame too long");
  if (frame.size() < 8 || reinterpret_cast<std::uintptr_t>(frame.data()) % 8 != 0 ||
      !protocol::FrameBufferHasIdentifier(frame.data()))
    return fail(frame_errc::malformed_frame, "not a frame (file identifier PVF1)");
  // Depth and tables far above what a frame holds: a union, a nested envelope, a nested batch.
  flatbuffers::Verifier verifier(frame.data(), frame.size(), 16, 64);
  if (!protocol::VerifyFrameBuffer(verifier)) return fail(frame_errc::malformed_frame, "the frame does not verify");
  const protocol::Frame& f = *protocol::GetFrame(frame.data());
  const auto* env_bytes = f.envelope();
  if (env_bytes->size() < 8 || reinterpret_cast<std::uintptr_t>(env_bytes->data()) % 8 != 0)
    return fail(frame_errc::malformed_frame, "the envelope does not start 8-aligned");
  flatbuffers::Verifier env_verifier(env_bytes->data(), env_bytes->size(), 16, 64);
  if (!env_verifier.VerifyBuffer<protocol::Envelope>(nullptr))
    return fail(frame_errc::malformed_frame, "the envelope does not verify");
  const protocol::Envelope& env = *flatbuffers::GetRoot<protocol::Envelope>(env_bytes->data());
  if (env.version() != protocol_version)
    return fail(frame_errc::unsupported_version, "envelope version " + std::to_string(env.version()) +
                                                     "; this gateway speaks " + std::to_string(protocol_version));
  const std::span<const std::uint8_t> envelope(env_bytes->data(), env_bytes->size());
  const std::optional<std::uint32_t> key_id = f.key_id();
  const auto key = key_of(env.device()->string_view(), key_id);
  if (!key) {
    if (f.mac() != nullptr) return fail(frame_errc::unexpected_mac, "a MAC from a device that has no key");
    return opened_frame{&env, envelope, false, std::nullopt};
  }
  // A Setup may come unsigned: it is how a device gets its key, and one that resends a Setup it
  // heard no answer to has not heard its key either (the resend is answered with the same key).
  if (f.mac() == nullptr && env.message_type() == protocol::Message::Setup)
    return opened_frame{&env, envelope, false, std::nullopt};
  if (f.mac() == nullptr) return fail(frame_errc::missing_mac, "device '" + env.device()->str() + "' signs its frames");
  const auto expected = mac_of(*key, envelope);
  if (f.mac()->size() != mac_bytes || CRYPTO_memcmp(f.mac()->data(), expected.data(), mac_bytes) != 0)
    return fail(frame_errc::bad_mac, "the MAC does not match device '" + env.device()->str() + "''s key");
  return opened_frame{&env, envelope, true, key_id};
}

std::vector<std::uint8_t> encode_frame(std::span<const std::uint8_t> envelope,
                                       std::optional<std::span<const std::uint8_t>> key,
                                       std::optional<std::uint32_t> key_id) {
  flatbuffers::FlatBufferBuilder fbb(envelope.size() + 128);
  // The envelope is read in place on the other side: its bytes start 8-aligned within the frame.
  fbb.ForceVectorAlignment(envelope.size(), 1, 8);
  const auto env = fbb.CreateVector(envelope.data(), envelope.size());
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> mac;
  if (key) {
    const auto m = mac_of(*key, envelope);
    mac = fbb.CreateVector(m.data(), m.size());
  }
  protocol::FinishFrameBuffer(fbb, protocol::CreateFrame(fbb, env, mac, key_id));
  std::vector<std::uint8_t> out(frame_length_bytes + fbb.GetSize());
  const auto length = static_cast<std::uint32_t>(fbb.GetSize());
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(length >> (8 * i));
  std::memcpy(out.data() + frame_length_bytes, fbb.GetBufferPointer(), fbb.GetSize());
  return out;
}

}  // namespace pevledger::gateway
