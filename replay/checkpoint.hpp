#pragma once
// Signed checkpoints: an auditor's proof that the log they see today extends, unchanged, the log a
// checkpoint was taken of. Format (docs/auditing.md has a walkthrough), UTF-8 text, LF line ends:
//
//   pevledger-checkpoint-v1
//   seq <decimal global sequence of the last record covered>
//   chain_hash <64 lower-case hex: the hash of that record>
//   time <YYYY-MM-DDTHH:MM:SSZ, when the checkpoint was taken>
//   signature <128 lower-case hex: Ed25519 over the four lines above, each with its LF>
//
// Anyone can check it with any Ed25519 implementation and the record layout of schema/events.fbs.

#include <string>

#include "base/status.hpp"
#include "base/strong_types.hpp"

namespace pevledger::replay {

// The checkpoint text for the log's current head, signed with an Ed25519 private key (PEM file).
[[nodiscard]] result<std::string> make_checkpoint(const std::string& db, const std::string& private_key_pem,
                                                  unix_seconds now);

struct verification {
  bool ok = false;
  std::string message;  // what held, or the first thing that did not
};

// Checks the signature with the public key (PEM file), then that record `seq` of the current log
// has the checkpointed hash and that the whole log verifies (structure, hashes, chain) up to its
// head. A malformed file is `invalid_field`; a log that cannot be read is an error value.
[[nodiscard]] result<verification> verify_checkpoint(const std::string& db, const std::string& checkpoint_text,
                                                     const std::string& public_key_pem);

}  // namespace pevledger::replay
