#pragma once
// The record envelope of the event log: building a record with its chain hash, and verifying one
// read back. Layout and hash rule are spelt out in schema/events.fbs (table Record).

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "base/status.hpp"
#include "base/strong_types.hpp"
#include "schema/events_generated.h"

namespace pevledger::storage {

using digest = std::array<std::uint8_t, 32>;

[[nodiscard]] digest sha256(std::span<const std::uint8_t> bytes);

// SHA-256 of a sequence of pieces, without joining them first.
class sha256_hasher {
 public:
  sha256_hasher();
  ~sha256_hasher();
  sha256_hasher(const sha256_hasher&) = delete;
  sha256_hasher& operator=(const sha256_hasher&) = delete;
  void update(std::string_view piece);
  [[nodiscard]] digest finish();

 private:
  void* ctx_;  // EVP_MD_CTX
};
[[nodiscard]] std::string to_hex(const digest& d);

// Where a record sits in the log and in its stream.
struct record_position {
  log_seq global;
  std::uint64_t stream_seq = 0;
  digest prev_hash{};
};

// Builds one record into `fbb` (cleared first) and returns its hash. `body` is a finished EventBody.
digest build_record(flatbuffers::FlatBufferBuilder& fbb, const record_position& pos, std::string_view stream,
                    unix_seconds at, std::string_view command_id, std::span<const std::uint8_t> body);

// Checks structure (FlatBuffers verifier, nested body included), position, type and hash of stored
// record bytes. Errors are `corruption` and name the sequence.
[[nodiscard]] status verify_record(std::span<const std::uint8_t> bytes, log_seq expected);
// The two halves of verify_record, for readers that spread hashing over threads: the structure
// (which makes every field safe to read), then the hash (of a record whose structure verified).
[[nodiscard]] status verify_record_structure(std::span<const std::uint8_t> bytes, log_seq expected);
[[nodiscard]] status verify_record_hash(std::span<const std::uint8_t> bytes);

[[nodiscard]] digest record_hash(const schema::Record& r);
[[nodiscard]] digest record_prev_hash(const schema::Record& r);

}  // namespace pevledger::storage
