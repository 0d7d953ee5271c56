#pragma once
// Reads and parses command lines on a thread of its own, ahead of the sequencer that decides them.
// Parsing (JSON syntax, the schema checks, flatbuffers' builder) is about a fifth of an interval
// line's cost on the sequencer's thread, and it needs no ledger state, so it overlaps deciding.
//
// Lines come out in input order, in chunks. A chunk is handed over when it holds
// chunk_lines_max lines or when the input has nothing more buffered, so a line that arrived on a
// pipe is decided at once rather than when a chunk fills.
//
// Bounds: at most chunks_max chunks of chunk_lines_max lines wait (one group's worth); the reader
// then waits for the sequencer. Sharp edge: stopping early waits for the reader's current read to
// return, which on a pipe is when the writer sends more or closes it.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <istream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.hpp"
#include "schema/command_parser.hpp"

namespace pevledger::engine_detail {

// One non-blank line: its command, or why it was refused before any state was read.
struct parsed_line {
  std::uint64_t line_no = 0;               // physical line, from 1
  std::optional<schema::command> command;  // empty when refused
  status refusal = status::ok();
  std::optional<std::string> id;           // the refused line's id, when it had one
};

class parse_ahead {
 public:
  static constexpr std::size_t chunk_lines_max = 256;
  static constexpr std::size_t chunks_max = 16;

  // Starts reading `in` with `parser`; both must outlive this object and nothing else may use them
  // until it is gone.
  parse_ahead(std::istream& in, schema::command_parser& parser);
  ~parse_ahead();
  parse_ahead(const parse_ahead&) = delete;
  parse_ahead& operator=(const parse_ahead&) = delete;

  // The next chunk of lines, in order; false once the input is exhausted and every chunk taken.
  bool next(std::vector<parsed_line>& chunk);
  // After `next` returned false: whether reading failed (rather than reaching the end).
  [[nodiscard]] bool input_failed() const { return input_failed_; }

 private:
  void run(std::istream& in, schema::command_parser& parser);
  // Hands `chunk` over, waiting while chunks_max wait already; false when asked to stop.
  bool hand_over(std::vector<parsed_line>& chunk);

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::vector<parsed_line>> ready_;
  bool done_ = false;
  bool stop_ = false;
  bool input_failed_ = false;
  std::thread reader_;
};

}  // namespace pevledger::engine_detail
