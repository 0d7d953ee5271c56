#pragma once
// The event log: one append-only, hash-chained sequence of records in RocksDB.
//
// Column families and their keys (integers are 8-byte big-endian, so keys sort numerically):
//   events       global_seq                      -> Record bytes (schema/events.fbs)
//   streams      stream '\0' stream_seq          -> global_seq
//   stream_heads stream                          -> last stream_seq
//   commands     command id                      -> first global_seq (8) + event count (4)
//   projections  key chosen by the engine        -> value chosen by the engine
//   snapshots    stream '\0' stream_seq          -> global_seq + entity state (engine's encoding)
//   intervals    key chosen by the engine        -> value chosen by the engine (interval identity)
//   default      "projection_watermark"          -> global_seq the projections include
//                "format"                        -> "pevledger-log-6"; a log-2 to -5 database
//                                                   is read as it is and written only after an
//                                                   explicit `upgrade_format`; others are refused
//
// Writes are group commits: `append` queues a batch and returns a future. A sealer thread packs
// every waiting batch (up to limits::log_batch_*_max) into a single WriteBatch, assigning
// sequences and hashes, while a syncer thread writes the previous group with a synced WAL; only
// then are that group's futures fulfilled. A batch's events, its command ids and its
// projection values are in the same WriteBatch, so no crash can separate them. When the queue holds
// limits::log_queue_requests_max batches, `append` blocks: that is the backpressure.
//
// Sharp edge: after a failed write the log refuses every further append (`log_closed`); reopen it.
// Every read verifies the record it returns (structure, hash, chain, contiguity).
//
// Readers: a log opened `read_only` takes no lock and writes no file (its info log goes nowhere),
// so any number of readers run beside each other and beside the one writer, on a write-protected
// copy too. With no writer running it is RocksDB's strict read-only mode; beside a writer (or
// with follow_writer) a secondary instance. A reader sees the log as of its open, a prefix that
// ends at a group boundary (a group is one WriteBatch, which RocksDB recovers whole or not at all);
// `catch_up` moves it to the writer's newest durable group. It starts no thread.

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/limits.hpp"
#include "base/status.hpp"
#include "base/strong_types.hpp"
#include "storage/record.hpp"

namespace rocksdb {
class Env;
}

namespace pevledger::storage {

struct event_to_append {
  std::string stream;               // e.g. "account/u_west-a0"
  std::vector<std::uint8_t> body;   // a finished EventBody FlatBuffer
  // Set by a caller that knows no event of `stream` precedes this one, stored or in flight: the
  // log then need not read the stream's head from storage (the caller's word is trusted).
  bool first_of_stream = false;
};

// The events one command produced. The command id goes into the idempotency index unless
// `indexed` is false: the audit records of a refused command carry its id but do not take it.
struct command_to_append {
  std::string command_id;
  unix_seconds at;
  std::vector<event_to_append> events;
  bool indexed = true;
};

struct projection_put {
  std::string key;
  std::string value;
};

// An entity's state after the first `stream_seq` events of its stream, all of them in this
// batch or earlier ones. The log records the global sequence of that last event beside it.
struct snapshot_put {
  std::string stream;
  std::uint64_t stream_seq = 0;
  std::string state;
};

struct index_put {
  std::string key;
  std::string value;
};

struct append_batch {
  std::vector<command_to_append> commands;
  // Projection values that include every event of this batch; written with the watermark.
  std::vector<projection_put> projections;
  std::vector<snapshot_put> snapshots;
  std::vector<index_put> intervals;
};

struct entity_snapshot {
  std::uint64_t stream_seq = 0;
  log_seq global_seq;  // the global sequence of the stream's event number `stream_seq`
  std::string state;
};

// The global sequences a batch received: [first, last]; last = first - 1 when it held no events.
struct append_receipt {
  log_seq first;
  log_seq last;
};

// What the idempotency index knows of a command id.
struct command_outcome {
  log_seq first;
  std::uint32_t events = 0;
};

enum class log_access { read_write, read_only };

struct log_options {
  log_access access = log_access::read_write;
  bool sync = true;  // fsync the WAL on every group commit; only benchmarks of the limit turn it off
  bool create_if_missing = true;  // read_write only; a reader never creates a database
  // read_only only: the reader will catch_up with a writer (a change feed), so it opens as a
  // RocksDB secondary even when no writer runs yet. Without it, a reader opens strictly when no
  // writer has the database open (a missing file is then an error, not a shorter log).
  bool follow_writer = false;
  // read_write only: a database of an older format this code reads (pevledger-log-2 to -5) is
  // opened for writing and marked pevledger-log-6 (a log-5 or older one's stored balances and
  // sessions are deleted: log-6 renders them on query). Without it such a database is refused for writing:
  // an upgrade is an explicit command (`pevledger upgrade`), never a side effect of an ingest.
  bool upgrade_format = false;
  // RocksDB's block cache, shared by every column family: more keeps more of the indexes and
  // recent records in memory for activations and queries.
  std::size_t block_cache_bytes = limits::log_block_cache_bytes;
  // The RocksDB environment a writer's files go through (RocksDB's default when null). Tests pass
  // one that loses unsynced writes, to model a power loss.
  rocksdb::Env* env = nullptr;
  // Stream heads the sealer keeps in memory before it forgets them (between two groups).
  std::size_t stream_heads_cached_max = 1u << 16;
};

// A record read back and verified; `bytes` owns the data `record` points into.
struct stored_record {
  std::vector<std::uint8_t> bytes;
  [[nodiscard]] const schema::Record& record() const { return *schema::GetRecord(bytes.data()); }
  [[nodiscard]] const schema::EventBody& body() const { return *record().body_nested_root(); }
};

// What an operator looks at (`pevledger stats`). RocksDB's figures are its own estimates.
struct log_stats {
  std::string format;
  log_seq last_seq;                 // records in the log (a batched record holds many events)
  std::optional<unix_seconds> last_at;  // business time of the last record
  digest last_hash{};
  std::uint64_t streams = 0;
  std::vector<std::pair<std::string, std::uint64_t>> streams_by_kind;  // "account", "session", ...
  std::uint64_t disk_bytes = 0;     // every file of the database directory
  struct column_family {
    std::string name;
    std::uint64_t estimated_keys = 0;
    std::uint64_t sst_bytes = 0;
    std::uint64_t blob_bytes = 0;
    std::uint64_t memtable_bytes = 0;
    std::vector<std::uint64_t> files_per_level;
  };
  std::vector<column_family> column_families;
  std::uint64_t pending_compaction_bytes = 0;
  std::uint64_t wal_files = 0;
  std::uint64_t wal_bytes = 0;
};

// The format this build writes ("pevledger-log-6"); it also reads pevledger-log-2 to -5.
[[nodiscard]] std::string_view log_format_written();

class event_log {
 public:
  [[nodiscard]] static result<std::unique_ptr<event_log>> open(const std::string& dir, log_options options = {});
  // Drains the queue, then closes the database.
  ~event_log();
  event_log(const event_log&) = delete;
  event_log& operator=(const event_log&) = delete;

  // Queues a batch for the next group commit. Blocks while the queue is full.
  [[nodiscard]] std::future<result<append_receipt>> append(append_batch batch);
  [[nodiscard]] result<append_receipt> append_and_wait(append_batch batch);

  // The last durable sequence (0 for an empty log) and its hash.
  [[nodiscard]] log_seq last_seq() const;
  [[nodiscard]] digest last_hash() const;
  // The format the database holds (log_format_written() unless an older one is read as it is).
  [[nodiscard]] const std::string& format() const;
  [[nodiscard]] bool read_only() const;
  // Read-only logs: catches up with the writer's newest durable group (verifying the new head);
  // returns the new last sequence. A read-write log is always current.
  [[nodiscard]] result<log_seq> catch_up();

  [[nodiscard]] result<log_stats> stats() const;
  // Copies the log as this handle sees it (a consistent prefix, see above) into a new database
  // at `dir`, which must not exist: written under `dir` + ".partial" and renamed when complete
  // and synced, so `dir` is either absent or a whole copy that opens and replays.
  // `progress`, if given, learns the keys copied so far, every copy_progress_keys_step keys.
  static constexpr std::uint64_t copy_progress_keys_step = 1u << 16;
  [[nodiscard]] status copy_to(const std::string& dir,
                               const std::function<void(std::uint64_t keys_copied)>& progress = {}) const;

  [[nodiscard]] result<std::optional<command_outcome>> find_command(std::string_view id) const;
  [[nodiscard]] result<std::optional<std::string>> get_projection(std::string_view key) const;
  // Visits every projection whose key starts with `prefix`, in key order.
  [[nodiscard]] status scan_projections(std::string_view prefix,
                                        const std::function<status(std::string_view, std::string_view)>& visit) const;
  [[nodiscard]] result<log_seq> projection_watermark() const;

  // Reads and verifies one record.
  [[nodiscard]] result<stored_record> read(log_seq seq) const;
  // Visits records from `first` to `last` (inclusive) in order, verifying each one, the chain
  // between them and that no sequence is missing. Stops at the first error `visit` returns.
  [[nodiscard]] status scan(log_seq first, log_seq last,
                            const std::function<status(const schema::Record&)>& visit) const;
  // The same, also passing the stored bytes of each record (valid only during the call). With
  // `check_hashes` false, each record's own hash is not recomputed (its structure, position and
  // chain link still are): the caller must call verify_record_hash on every record it is given.
  [[nodiscard]] status scan_bytes(
      log_seq first, log_seq last,
      const std::function<status(const schema::Record&, std::span<const std::uint8_t>)>& visit,
      bool check_hashes = true) const;
  // Global sequences of a stream's records, in stream order.
  [[nodiscard]] result<std::vector<log_seq>> stream_records(std::string_view stream) const;
  // Visits, in stream order, the verified records of `stream` after its event number
  // `after_stream_seq` whose global sequence is at most `until`.
  [[nodiscard]] status scan_stream(std::string_view stream, std::uint64_t after_stream_seq, log_seq until,
                                   const std::function<status(const schema::Record&)>& visit) const;
  // The last stream sequence of a durable stream; 0 when it has no event. A bloom-filtered point
  // lookup: the cheap way to learn that an entity does not exist.
  [[nodiscard]] result<std::uint64_t> stream_length(std::string_view stream) const;
  // Every stream whose name starts with `prefix`, with its last stream sequence.
  [[nodiscard]] status scan_streams(std::string_view prefix,
                                    const std::function<status(std::string_view, std::uint64_t)>& visit) const;

  // The newest snapshot of `stream` that covers no event after `until`, if any.
  [[nodiscard]] result<std::optional<entity_snapshot>> newest_snapshot(std::string_view stream, log_seq until) const;
  // Every stored snapshot, by stream and then stream sequence.
  [[nodiscard]] status scan_snapshots(
      const std::function<status(std::string_view stream, const entity_snapshot&)>& visit) const;
  [[nodiscard]] result<std::optional<std::string>> get_interval(std::string_view key) const;
  // The interval index entries nearest to `key` within [lower, upper): the last before it and the
  // first after it (an entry at `key` itself is neither).
  struct index_entry {
    std::string key;
    std::string value;
  };
  struct index_neighbours {
    std::optional<index_entry> before;
    std::optional<index_entry> after;
  };
  [[nodiscard]] result<index_neighbours> interval_neighbours(std::string_view key, std::string_view lower,
                                                            std::string_view upper) const;

  // For tests of tamper detection: overwrite or delete the stored bytes of one record, bypassing
  // the chain. Never used by the engine.
  [[nodiscard]] status overwrite_record_for_test(log_seq seq, std::span<const std::uint8_t> bytes);
  [[nodiscard]] status delete_record_for_test(log_seq seq);

 private:
  struct impl;
  explicit event_log(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace pevledger::storage
