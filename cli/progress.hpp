#pragma once
// Progress on standard error for long commands (ingest, replay, export, backup), so a person at a
// terminal can tell a slow run from a hung one. Nothing is printed unless stderr is a terminal or
// --progress asks for it; --quiet turns it off. Standard output is never touched: it carries the
// command's result.
//
// Two quantities: the rate is counted in the command's own unit (lines, records), while "how far"
// may be measured in another one (bytes of the input file) when only that one has a known total.
// Integer arithmetic only.
//
// Thread safety: none. One progress_meter is used by one thread; update(), clear() and finish()
// must not be called concurrently.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>

namespace pevledger::cli {

enum class progress_mode {
  off,       // print nothing
  terminal,  // one line rewritten in place ('\r' and an erase-to-end-of-line escape)
  lines,     // one plain line every few seconds, for logs and pipes
};

// --quiet wins; otherwise a terminal gets the in-place line, --progress on a non-terminal gets
// plain lines, and a non-terminal without --progress gets nothing.
[[nodiscard]] progress_mode choose_progress_mode(bool stderr_is_terminal, bool forced, bool quiet) noexcept;

// At most one redraw per interval: often enough to look alive, rarely enough to cost nothing.
inline constexpr std::chrono::milliseconds terminal_interval_ms{250};
inline constexpr std::chrono::milliseconds lines_interval_ms{2000};

// Labels longer than this are cut, so a progress line stays on one terminal row.
inline constexpr std::size_t progress_label_max_bytes = 24;

// 1234567 -> "1,234,567".
[[nodiscard]] std::string thousands_text(std::uint64_t n);
// 45 -> "45s", 65 -> "1m05s", 7380 -> "2h03m".
[[nodiscard]] std::string duration_text(std::uint64_t duration_s);

using progress_clock = std::function<std::chrono::steady_clock::time_point()>;

class progress_meter {
 public:
  // what: the command ("ingest"); unit: what the rate counts ("lines", "records").
  // total: the end of the "how far" quantity (file bytes, total records); absent or 0 when unknown
  // (standard input), and then no percent or time left is shown.
  // clock: the time source; steady_clock::now when empty. Tests pass a fake one.
  progress_meter(std::ostream& out, progress_mode mode, std::string what, std::string unit,
                 std::optional<std::uint64_t> total = {}, progress_clock clock = {});
  // Erases a progress line still on the terminal, so an error printed after it starts clean.
  ~progress_meter();
  progress_meter(const progress_meter&) = delete;
  progress_meter& operator=(const progress_meter&) = delete;

  // done_units: count in `unit`, for the rate. done_of_total: progress in the total's quantity
  // (bytes consumed); when absent, done_units is used. Prints only when the interval has passed
  // since the last print (the first one interval after construction), so it is cheap to call
  // often: one clock read when not in off mode.
  void update(std::uint64_t done_units, std::optional<std::uint64_t> done_of_total = {});

  // The total, when it becomes known only after the start (a replay learns it once the log is
  // open); 0 keeps it unknown.
  void set_total(std::uint64_t total) { total_ = total; }

  // Erases the in-place line (terminal mode) before the caller writes something else to the same
  // stream, e.g. a refused ingest line. The next due update() draws it again.
  void clear();

  // Final line: count, elapsed time and mean rate; the terminal line ends with '\n'. Only the first
  // call prints; later update() calls print nothing.
  void finish(std::uint64_t done_units);

 private:
  [[nodiscard]] std::uint64_t elapsed_ms(std::chrono::steady_clock::time_point now) const;
  void draw(const std::string& text, bool final_line);

  std::ostream& out_;
  progress_mode mode_;
  std::string what_;
  std::string unit_;
  std::uint64_t total_;  // 0: unknown
  progress_clock clock_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point next_due_;
  bool line_shown_ = false;  // an unterminated terminal line is on screen
  bool finished_ = false;
};

}  // namespace pevledger::cli
