#pragma once
// Reads and parses command lines on a thread of its own, ahead of the sequencer that decides them.
// Parsing (JSON syntax, the schema checks, building the command's table) needs no ledger state, so
// it overlaps deciding.
//
// Lines come out in input order, in chunks. A chunk is handed over when it holds
// chunk_lines_max lines or when the input has nothing more buffered, so a line that arrived on a
// pipe is decided at once rather than when a chunk fills.
//
// Lookups ahead: given the log, the reader also looks up, for each line, whether its command id is
// durable and, for a meter interval, the stored first content of its interval identity. These are
// point reads the sequencer would otherwise make on its own thread (and for an interval, decide
// the line twice: once to learn what it reads, once with it). A lookup is as of the group commits
// `durable_groups` said were durable when the reader made it; the sequencer trusts it only for
// what was durable by then and keeps everything newer in memory (engine.cpp). A lookup that fails
// is left undone: the sequencer then reads for itself and reports the error.
//
// Bounds: at most chunks_max chunks of chunk_lines_max lines wait (one group's worth); the reader
// then waits for the sequencer. Sharp edge: stopping early waits for the reader's current read to
// return, which on a pipe is when the writer sends more or closes it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <istream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/ledger_state.hpp"
#include "base/status.hpp"
#include "schema/command_parser.hpp"
#include "storage/event_log.hpp"

namespace pevledger::engine_detail {

// What the reader found in the log for one line, as of `durable_groups`.
struct line_lookup {
  bool done = false;                      // false: the sequencer looks up for itself
  // Group commits known durable before the lookup (set even when it failed; 0 without a log).
  std::uint64_t durable_groups = 0;
  bool id_durable = false;                // a durable command took the line's id
  bool interval_looked_up = false;        // a meter interval whose identity was read
  std::int64_t interval_start = 0;        // its start, parsed
  std::optional<core::interval_content> interval;  // its stored first content, if any
};

// One non-blank line: its command, or why it was refused before any state was read.
struct parsed_line {
  std::uint64_t line_no = 0;               // physical line, from 1
  std::optional<schema::command> command;  // empty when refused
  status refusal = status::ok();
  std::optional<std::string> id;           // the refused line's id, when it had one
  line_lookup lookup;
};

// The log the reader looks lines up in, and the count of group commits the sequencer has seen
// durable (it only grows). Both outlive the parse_ahead.
struct lookahead_source {
  const storage::event_log* log = nullptr;  // null: no lookups
  const std::atomic<std::uint64_t>* durable_groups = nullptr;
};

// Where the sequencer takes its lines from, in order and in chunks: a reader of JSON lines
// (parse_ahead) or commands read already (prepared_lines, the interval batches).
class line_source {
 public:
  virtual ~line_source() = default;
  // The next chunk of lines, in order; false once the input is exhausted and every chunk taken.
  virtual bool next(std::vector<parsed_line>& chunk) = 0;
  // After `next` returned false: whether reading failed (rather than reaching the end).
  [[nodiscard]] virtual bool input_failed() const = 0;
};

// Lines read before the sequencer starts, handed over chunk_lines_max at a time.
class prepared_lines final : public line_source {
 public:
  static constexpr std::size_t chunk_lines_max = 256;
  explicit prepared_lines(std::vector<parsed_line> lines) : lines_(std::move(lines)) {}
  bool next(std::vector<parsed_line>& chunk) override;
  [[nodiscard]] bool input_failed() const override { return false; }

 private:
  std::vector<parsed_line> lines_;
  std::size_t next_ = 0;
};

class parse_ahead final : public line_source {
 public:
  static constexpr std::size_t chunk_lines_max = 256;
  static constexpr std::size_t chunks_max = 16;

  // Starts reading `in` with `parser`; both must outlive this object and nothing else may use them
  // until it is gone.
  parse_ahead(std::istream& in, schema::command_parser& parser, lookahead_source lookups = {});
  ~parse_ahead();
  parse_ahead(const parse_ahead&) = delete;
  parse_ahead& operator=(const parse_ahead&) = delete;

  bool next(std::vector<parsed_line>& chunk) override;
  [[nodiscard]] bool input_failed() const override { return input_failed_; }

 private:
  void run(std::istream& in, schema::command_parser& parser);
  // Fills the lookups of `chunk`'s lines.
  void look_up(std::vector<parsed_line>& chunk) const;
  // Hands `chunk` over, waiting while chunks_max wait already; false when asked to stop.
  bool hand_over(std::vector<parsed_line>& chunk);

  lookahead_source lookups_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<parsed_line>> ready_;
  bool done_ = false;
  bool stop_ = false;
  bool input_failed_ = false;
  std::thread reader_;
};

}  // namespace pevledger::engine_detail
