#pragma once
// Replay: folds the event log alone into a fresh ledger state with the same `apply` as the live
// engine (no actor system), renders every projection, and with `verify` compares them with the
// answers a query would give from the snapshots (and any projection an older database stored). Every record is verified on the way (structure, hash, chain,
// contiguous sequences).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "base/status.hpp"

namespace pevledger::replay {

struct report {
  bool ok = true;      // false: a query's answer or a stored projection differs from the replayed one
  std::string json;    // for programs
  std::string text;    // for people
};

// `until`: empty for the whole log; a sequence number (the fold runs to the end of the command
// that record belongs to); or a time YYYY-MM-DDTHH:MM:SSZ (every record whose business time is not
// after it, which is a prefix of the log because records carry their command's time in order).
// `from_snapshots`: start every entity from its newest snapshot that covers nothing after the
// replay's end, and apply only the events after it (the whole chain is still read and verified).
// The result must be identical to a replay from zero; tests hold the two against each other.
// `threads`: one reads and verifies the log, the others apply it, each to the entities of its
// share of the streams; 0 picks one more than the number of cores (at most 9). The digest does not
// depend on it.
// `progress`, if given, learns now and then (every progress_records_step records, and at the end
// of the read) how many records of how many were read and verified, on the reading thread.
using progress_callback = std::function<void(std::uint64_t records_read, std::uint64_t records_total)>;
inline constexpr std::uint64_t progress_records_step = 8192;
[[nodiscard]] result<report> run(const std::string& db, const std::string& until, bool verify,
                                 bool from_snapshots = false, std::size_t threads = 0,
                                 const progress_callback& progress = {});

}  // namespace pevledger::replay
