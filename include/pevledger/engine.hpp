#pragma once
// pevledger: an embeddable settlement core for plug-in electric vehicle charging.
//
// One engine owns one database directory: a RocksDB event log that is the only source of truth.
// The projections (balances, bills, settlements, session reports) are rendered from it when
// queried. Commands arrive typed (`submit`, include/pevledger/commands.hpp) or as JSON lines
// (`ingest`, SPEC section 6); queries answer typed (`bill_of`, `balance_of`, `settlement_of`) or as
// JSON documents (SPEC section 7).
//
//   auto opened = pevledger::engine::open("pevledger.db");
//   if (!opened) { report(opened.error()); return; }
//   auto& engine = *opened.value();
//   auto outcomes = engine.submit(commands);        // durable when it returns
//   auto bill = engine.bill_of("acct-1", 2024y / std::chrono::March);
//
// Every failure on input or I/O is a returned status; nothing here aborts the host or throws on
// such a failure (result::value() on an error throws bad_result_access: check first).
//
// One writing engine per directory: RocksDB locks the directory. Readers (`read_only`) take no
// lock and write nothing, so any number of them run beside each other and beside the writer, each
// seeing the log as of its open (or its last `catch_up`), up to a group commit. An engine is not
// thread-safe; call it from one thread (ingest is internally pipelined and group-committed).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "pevledger/commands.hpp"
#include "pevledger/interval_batch.hpp"
#include "pevledger/status.hpp"
#include "pevledger/version.hpp"

namespace pevledger {

struct ingest_summary {
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t refused = 0;
};

// What the engine holds in memory and how much it moved in and out (docs/design.md, "Residency").
struct residency_stats {
  std::size_t resident_entities = 0;  // accounts, premises, devices, PEVs, sessions, cards, registry entries
  std::uint64_t activations = 0;      // entities brought back from snapshot plus stream tail
  std::uint64_t passivations = 0;     // entities that left memory
  std::size_t live_entity_actors = 0; // entity actors hosting durable state right now
  std::uint64_t entity_actors_spawned = 0;
  std::uint64_t entity_actors_stopped = 0;
};

// A command line the engine refused: nothing of it was applied, and its id is not taken.
struct line_refusal {
  std::uint64_t line = 0;          // physical line number, from 1
  std::optional<std::string> id;   // the line's id, when it had a readable one
  errc error = errc::ok;           // a stable code of SPEC section 7
  std::string message;
};

// Threads. A writing engine starts 2 + actor_threads threads of its own when it opens (the log's
// sealer and syncer, the CAF scheduler of the entity actors) and one more for the length of each
// ingest or submit (the reader that parses ahead); RocksDB adds its background flush and compaction
// threads (at most 2 jobs at once) and a timer. A read-only engine starts none: it answers on the
// calling thread, from the log (entity actors are not started), and RocksDB starts none for it.
struct engine_options {
  // Queries only: no lock, no file written, no upgrade, no thread; `ingest` and `submit` fail with
  // log_closed.
  bool read_only = false;
  // Read-only engines that will catch_up with a writer (a change feed): see the log as a writer
  // extends it even if none runs yet. Otherwise a reader opened while no writer runs reads the
  // database strictly: a missing or damaged file is an error, never a shorter log.
  bool follow_writer = false;
  // Threads of the CAF scheduler that runs the entity actors (writing engines), 1 to 64.
  std::size_t actor_threads = 2;
  // fsync the log on every group commit. Turn off only to measure what durability costs.
  bool sync = true;
  // Create the database when the directory holds none; queries turn this off.
  bool create_if_missing = true;
  // Lines per group commit, 1 to 16,384. Fewer means smaller, more frequent synced writes; tests use
  // 1 to make every line's projections stand on their own.
  std::size_t group_lines = 16384;
  // If not 0, a group commit also closes once its first line has waited this long (microseconds):
  // bounds the latency of a line under a steady load, at the cost of more, smaller synced writes.
  std::uint64_t group_delay_max_us = 0;
  // Entities (accounts, premises, devices, PEVs, sessions, cards, registry entries) kept in memory
  // between group commits; the least recently used beyond it are passivated and come back from
  // their snapshot plus the tail of their stream when needed. Utilities and the clearinghouse are
  // always in memory. See docs/design.md, "Residency".
  std::size_t resident_entities_max = 200'000;
  // Entity actors (CAF) live at once: they host an entity's durable state and answer previews;
  // beyond it, the least recently used stop. See actors/entity_actors.hpp.
  std::size_t live_entity_actors_max = 4096;
  // Interval identities (EUMD, start) held in memory for duplicate and conflict checks; beyond
  // it they are forgotten once durable and read back from the log's interval index when needed.
  std::size_t interval_identities_known_max = 1u << 20;
  // RocksDB's block cache (bytes), shared by every column family: more keeps more indexes and
  // recent records in memory for activations and queries, at the cost of resident memory.
  std::size_t block_cache_bytes = 32u << 20;
};

// What `export_events` writes, and from where.
struct export_options {
  // Also write each record's stored bytes (`record_base64`) and its hash field's offset
  // (`hash_offset`), so that auditors can check the chain with their own code.
  bool raw = false;
  // The first record to write (records are numbered from 1). Earlier records are not written,
  // but the one before it is read to check that the chain continues.
  std::uint64_t from_seq = 1;
  // Keep writing records as their groups become durable, looking every `poll_interval`, until
  // `stop` returns true (checked between looks). Needs a read-only engine (a change feed).
  bool follow = false;
  std::chrono::milliseconds poll_interval{200};
  std::function<bool()> stop;
  // Called after each record written (for progress), on the calling thread.
  std::function<void()> on_record;
};

// The on-disk format this build writes, e.g. "pevledger-log-6".
[[nodiscard]] std::string_view log_format_written();

class engine {
 public:
  [[nodiscard]] static result<std::unique_ptr<engine>> open(const std::string& dir, engine_options options = {});
  // Marks a database of an older format this build reads (pevledger-log-2 to -5) with the format it
  // writes (pevledger-log-6), so that it can be written again; returns the format it held. Opening
  // never does this on its own: a writer refuses an older format until it is upgraded.
  [[nodiscard]] static result<std::string> upgrade(const std::string& dir);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Applies the JSON command lines of `in`, in order. Refusals are reported through `on_refusal`
  // as they are decided; `on_durable`, if given, learns after each group commit how many lines
  // (counted from the start of `in`) are durable. Returns once every accepted line is durable.
  // An error (I/O, a corrupt log) stops the ingest; lines not yet reported durable may be lost.
  [[nodiscard]] result<ingest_summary> ingest(std::istream& in,
                                              const std::function<void(const line_refusal&)>& on_refusal,
                                              const std::function<void(std::uint64_t)>& on_durable = {});

  // Applies typed commands in order, as one or more group commits (at most
  // submit_commands_max a call); returns, once every accepted one is durable, what became of each.
  // A refused command changes nothing and does not stop the ones after it. An error (I/O, a corrupt
  // log) stops the call; commands not reported durable may then be lost.
  static constexpr std::size_t submit_commands_max = 1u << 20;
  [[nodiscard]] result<std::vector<command_outcome>> submit(std::span<const command> commands);

  // Applies JSON command lines (SPEC section 6), one command each, in order, as `submit` applies
  // typed commands, and says what became of each: the entry point for a channel that carries
  // command lines one by one (the gateway's back-office commands). A line that is blank or holds a
  // line break is refused (invalid_json) and the others are decided. At most submit_commands_max
  // lines a call.
  [[nodiscard]] result<std::vector<command_outcome>> submit_lines(std::span<const std::string> lines);

  // The binary batch path: interval batches (pevledger/interval_batch.hpp), each the bytes of one
  // IntervalBatch FlatBuffer as a device adapter received it, decided in order like `submit`'s
  // commands, with no JSON on the way. A batch's readings weigh in a group commit as that many
  // lines. Returns, once every accepted batch is durable, what became of each; a batch that does
  // not verify or breaks a rule is refused (invalid_field, missing_field) and changes nothing.
  // At most interval_batches_per_call_max batches and interval_batches_bytes_per_call_max bytes a
  // call (usage otherwise): every batch is copied before the first is decided.
  static constexpr std::size_t interval_batches_per_call_max = 1u << 16;
  static constexpr std::size_t interval_batches_bytes_per_call_max = 64u << 20;
  [[nodiscard]] result<std::vector<command_outcome>> submit_interval_batches(
      std::span<const std::span<const std::uint8_t>> batches);

  // Typed queries: an account's bill for a period (issued, or a preview), its balance, and a
  // period's settlement statement. unknown_account when the account does not exist.
  [[nodiscard]] result<pevledger::bill> bill_of(std::string_view account, std::chrono::year_month period);
  [[nodiscard]] result<pevledger::balance> balance_of(std::string_view account);
  [[nodiscard]] result<std::vector<settlement_entry>> settlement_of(std::chrono::year_month period);

  // Queries: one JSON document each, as SPEC section 7 describes.
  [[nodiscard]] result<std::string> bill(std::string_view account, std::string_view period);
  [[nodiscard]] result<std::string> balance(std::string_view account);
  [[nodiscard]] result<std::string> settlement(std::string_view period);
  [[nodiscard]] result<std::string> session(std::string_view session);
  // A period at a glance: each utility's bill totals by line kind, and the settlement.
  [[nodiscard]] result<std::string> period_report(std::string_view period);

  // Every event as one JSON line, in log order, each record verified on the way (see
  // export_options). The stream is flushed after each group of lines written.
  [[nodiscard]] status export_events(std::ostream& out, const export_options& options) const;
  [[nodiscard]] status export_events(std::ostream& out, bool raw = false) const;

  // Number of records in the log.
  [[nodiscard]] std::uint64_t log_size() const;
  // A read-only engine: moves its view to the writer's newest durable group and forgets what it
  // had in memory; returns the new number of records.
  [[nodiscard]] result<std::uint64_t> catch_up();
  // Records, streams by kind, size on disk, the last record, and RocksDB's figures: one JSON
  // document.
  [[nodiscard]] result<std::string> stats() const;
  // A consistent copy of the database, as this engine sees it, in a new directory `to` (which
  // must not exist); the copy opens and replays like the original.
  // `progress`, if given, learns now and then how many keys were copied, of about `keys_total`.
  [[nodiscard]] status backup(const std::string& to,
                              const std::function<void(std::uint64_t keys_copied, std::uint64_t keys_total)>&
                                  progress = {}) const;
  [[nodiscard]] residency_stats residency() const;

 private:
  struct impl;
  explicit engine(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace pevledger
