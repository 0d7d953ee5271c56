#include "cli/progress.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace pevledger::cli {
namespace {

using std::uint64_t;

// a * b / c, exact through a 128-bit product (bytes times milliseconds can pass 2^64), saturating
// at the u64 maximum; 0 when c is 0 so no caller can divide by zero.
uint64_t mul_div(uint64_t a, uint64_t b, uint64_t c) noexcept {
  __extension__ typedef unsigned __int128 wide_uint;
  if (c == 0) return 0;
  const wide_uint q = static_cast<wide_uint>(a) * b / c;
  constexpr uint64_t max = std::numeric_limits<uint64_t>::max();
  return q > max ? max : static_cast<uint64_t>(q);
}

// Time left rounds up, so the line never says "0s left" while work remains.
uint64_t ceil_seconds(uint64_t duration_ms) noexcept {
  return duration_ms / 1000 + (duration_ms % 1000 != 0 ? 1 : 0);
}

std::string two_digits(uint64_t n) { return (n < 10 ? "0" : "") + std::to_string(n); }

std::string label(std::string s) {
  if (s.size() > progress_label_max_bytes) s.resize(progress_label_max_bytes);
  return s;
}

}  // namespace

progress_mode choose_progress_mode(bool stderr_is_terminal, bool forced, bool quiet) noexcept {
  if (quiet) return progress_mode::off;
  if (stderr_is_terminal) return progress_mode::terminal;
  return forced ? progress_mode::lines : progress_mode::off;
}

std::string thousands_text(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string duration_text(uint64_t duration_s) {
  if (duration_s < 60) return std::to_string(duration_s) + "s";
  if (duration_s < 3600) return std::to_string(duration_s / 60) + "m" + two_digits(duration_s % 60) + "s";
  return std::to_string(duration_s / 3600) + "h" + two_digits(duration_s % 3600 / 60) + "m";
}

progress_meter::progress_meter(std::ostream& out, progress_mode mode, std::string what, std::string unit,
                               std::optional<uint64_t> total, progress_clock clock)
    : out_(out),
      mode_(mode),
      what_(label(std::move(what))),
      unit_(label(std::move(unit))),
      total_(total.value_or(0)),
      clock_(clock ? std::move(clock) : progress_clock(&std::chrono::steady_clock::now)),
      start_(clock_()),
      next_due_(start_ + (mode == progress_mode::lines ? lines_interval_ms : terminal_interval_ms)) {}

progress_meter::~progress_meter() { clear(); }

uint64_t progress_meter::elapsed_ms(std::chrono::steady_clock::time_point now) const {
  if (now <= start_) return 0;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count());
}

void progress_meter::update(uint64_t done_units, std::optional<uint64_t> done_of_total) {
  if (mode_ == progress_mode::off || finished_) return;
  const auto now = clock_();
  if (now < next_due_) return;
  next_due_ = now + (mode_ == progress_mode::lines ? lines_interval_ms : terminal_interval_ms);

  const uint64_t ms = elapsed_ms(now);
  // A file that grew after its size was taken must not show more than 100%.
  const uint64_t done = std::min(done_of_total.value_or(done_units), total_);
  std::string text = what_ + ": ";
  if (total_ > 0) text += std::to_string(mul_div(done, 100, total_)) + "% ";
  text += thousands_text(done_units) + " " + unit_;
  if (ms > 0) text += ", " + thousands_text(mul_div(done_units, 1000, ms)) + " " + unit_ + "/s";
  // The time left comes from the "how far" quantity's own pace: lines can vary in length, bytes can't.
  if (total_ > 0 && done > 0 && done < total_)
    text += ", " + duration_text(ceil_seconds(mul_div(total_ - done, ms, done))) + " left";
  draw(text, false);
}

void progress_meter::clear() {
  if (mode_ != progress_mode::terminal || !line_shown_) return;
  out_ << "\r\x1b[K" << std::flush;
  line_shown_ = false;
}

void progress_meter::finish(uint64_t done_units) {
  if (mode_ == progress_mode::off || finished_) return;
  finished_ = true;
  const uint64_t ms = elapsed_ms(clock_());
  std::string text = what_ + ": " + thousands_text(done_units) + " " + unit_ + " in " + duration_text(ms / 1000);
  if (ms > 0) text += ", " + thousands_text(mul_div(done_units, 1000, ms)) + " " + unit_ + "/s";
  draw(text, true);
}

void progress_meter::draw(const std::string& text, bool final_line) {
  if (mode_ == progress_mode::terminal) {
    // Erase after writing, not before, so the line never flickers empty.
    out_ << '\r' << text << "\x1b[K";
    if (final_line) out_ << '\n';
    line_shown_ = !final_line;
  } else {
    out_ << text << '\n';
  }
  out_ << std::flush;
}

}  // namespace pevledger::cli
