#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "cli/progress.hpp"

namespace pevledger::cli {
namespace {

using namespace std::chrono_literals;

// A clock the test moves by hand: deterministic, and nothing sleeps.
struct fake_clock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1000)};
  progress_clock source() {
    return [this] { return now; };
  }
};

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

TEST(progress, mode_table) {
  // (terminal, forced, quiet): quiet wins; a terminal gets the in-place line; --progress elsewhere gets lines.
  EXPECT_EQ(choose_progress_mode(false, false, false), progress_mode::off);
  EXPECT_EQ(choose_progress_mode(false, true, false), progress_mode::lines);
  EXPECT_EQ(choose_progress_mode(true, false, false), progress_mode::terminal);
  EXPECT_EQ(choose_progress_mode(true, true, false), progress_mode::terminal);
  EXPECT_EQ(choose_progress_mode(false, false, true), progress_mode::off);
  EXPECT_EQ(choose_progress_mode(false, true, true), progress_mode::off);
  EXPECT_EQ(choose_progress_mode(true, false, true), progress_mode::off);
  EXPECT_EQ(choose_progress_mode(true, true, true), progress_mode::off);
}

TEST(progress, thousands_separators) {
  EXPECT_EQ(thousands_text(0), "0");
  EXPECT_EQ(thousands_text(999), "999");
  EXPECT_EQ(thousands_text(1000), "1,000");
  EXPECT_EQ(thousands_text(123456), "123,456");
  EXPECT_EQ(thousands_text(1234567), "1,234,567");
  EXPECT_EQ(thousands_text(std::numeric_limits<std::uint64_t>::max()), "18,446,744,073,709,551,615");
}

TEST(progress, durations) {
  EXPECT_EQ(duration_text(0), "0s");
  EXPECT_EQ(duration_text(45), "45s");
  EXPECT_EQ(duration_text(59), "59s");
  EXPECT_EQ(duration_text(60), "1m00s");
  EXPECT_EQ(duration_text(65), "1m05s");
  EXPECT_EQ(duration_text(3599), "59m59s");
  EXPECT_EQ(duration_text(3600), "1h00m");
  EXPECT_EQ(duration_text(7380), "2h03m");
}

TEST(progress, off_mode_writes_nothing) {
  fake_clock clock;
  std::ostringstream out;
  {
    progress_meter meter(out, progress_mode::off, "ingest", "lines", 100, clock.source());
    for (int i = 1; i <= 10; ++i) {
      clock.now += 5s;
      meter.update(static_cast<std::uint64_t>(i) * 10);
    }
    meter.clear();
    meter.finish(100);
  }
  EXPECT_EQ(out.str(), "");
}

TEST(progress, lines_mode_prints_one_plain_line_per_two_seconds) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::lines, "export", "records", {}, clock.source());
  std::uint64_t done = 0;
  // 10 s of updates every 100 ms: due at 2, 4, 6, 8 and 10 s.
  for (int step = 1; step <= 100; ++step) {
    clock.now += 100ms;
    done += 50;
    meter.update(done);
    if (step == 19) {
      EXPECT_EQ(out.str(), "") << "printed before the first 2 s had passed";
    }
    if (step == 20) {
      EXPECT_EQ(count_of(out.str(), "\n"), 1u);
    }
    if (step == 39) {
      EXPECT_EQ(count_of(out.str(), "\n"), 1u) << "printed again within 2 s";
    }
  }
  const std::string text = out.str();
  EXPECT_EQ(count_of(text, "\n"), 5u) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  EXPECT_EQ(text.substr(0, text.find('\n')), "export: 1,000 records, 500 records/s");
}

TEST(progress, terminal_mode_rewrites_one_line) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::terminal, "replay", "records", {}, clock.source());
  clock.now += 100ms;
  meter.update(10);
  EXPECT_EQ(out.str(), "") << "printed before 250 ms";
  clock.now += 150ms;
  meter.update(25);
  EXPECT_EQ(out.str(), "\rreplay: 25 records, 100 records/s\x1b[K");
  clock.now += 249ms;
  meter.update(30);
  EXPECT_EQ(count_of(out.str(), "\r"), 1u) << "redrawn within 250 ms";
  clock.now += 1ms;
  meter.update(50);
  EXPECT_EQ(count_of(out.str(), "\r"), 2u);
  EXPECT_EQ(count_of(out.str(), "\x1b[K"), 2u);
  EXPECT_EQ(out.str().find('\n'), std::string::npos) << "an in-place line must not end the row";
}

TEST(progress, known_total_shows_percent_and_time_left) {
  fake_clock clock;
  std::ostringstream out;
  // Rate in lines, "how far" in bytes: half the bytes after 10 s leaves 10 s.
  progress_meter meter(out, progress_mode::lines, "ingest", "lines", 2'000'000, clock.source());
  clock.now += 10s;
  meter.update(12'345, 1'000'000);
  EXPECT_EQ(out.str(), "ingest: 50% 12,345 lines, 1,234 lines/s, 10s left\n");
}

TEST(progress, time_left_follows_the_fraction_and_rounds_up) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::lines, "replay", "records", 1000, clock.source());
  clock.now += 65s;
  meter.update(300);  // no fraction source: the records are the fraction; 700 left at 300 per 65 s = 151.67 s
  EXPECT_EQ(out.str(), "replay: 30% 300 records, 4 records/s, 2m32s left\n");
}

TEST(progress, done_beyond_total_shows_100_percent_and_no_time_left) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::lines, "ingest", "lines", 100, clock.source());
  clock.now += 2s;
  meter.update(7, 150);  // the file grew after its size was taken
  EXPECT_EQ(out.str(), "ingest: 100% 7 lines, 3 lines/s\n");
}

TEST(progress, unknown_total_has_no_percent) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::lines, "ingest", "lines", std::nullopt, clock.source());
  clock.now += 4s;
  meter.update(1'234'567, 999);
  EXPECT_EQ(out.str(), "ingest: 1,234,567 lines, 308,641 lines/s\n");
  EXPECT_EQ(out.str().find('%'), std::string::npos);
  EXPECT_EQ(out.str().find("left"), std::string::npos);
}

TEST(progress, finish_prints_count_elapsed_and_mean_rate) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::terminal, "backup", "records", 5'000'000, clock.source());
  clock.now += 65s;
  meter.finish(3'900'000);
  EXPECT_EQ(out.str(), "\rbackup: 3,900,000 records in 1m05s, 60,000 records/s\x1b[K\n");
  clock.now += 10s;
  meter.update(4'000'000);
  meter.finish(4'000'000);
  EXPECT_EQ(count_of(out.str(), "\n"), 1u) << "printed after finish";
}

TEST(progress, finish_at_once_has_no_rate) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::lines, "export", "records", {}, clock.source());
  meter.finish(0);
  EXPECT_EQ(out.str(), "export: 0 records in 0s\n");
}

TEST(progress, clear_and_destruction_erase_a_shown_line) {
  fake_clock clock;
  std::ostringstream out;
  {
    progress_meter meter(out, progress_mode::terminal, "ingest", "lines", {}, clock.source());
    clock.now += 1s;
    meter.update(10);
    meter.clear();
    EXPECT_EQ(out.str(), "\ringest: 10 lines, 10 lines/s\x1b[K\r\x1b[K");
    meter.clear();  // nothing shown: nothing to erase
    clock.now += 1s;
    meter.update(20);
  }
  EXPECT_EQ(out.str(), "\ringest: 10 lines, 10 lines/s\x1b[K\r\x1b[K\ringest: 20 lines, 10 lines/s\x1b[K\r\x1b[K");
}

TEST(progress, large_counts_do_not_overflow) {
  fake_clock clock;
  std::ostringstream out;
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  progress_meter meter(out, progress_mode::lines, "ingest", "lines", max, clock.source());
  clock.now += 1000h;
  // (max - done) * elapsed ms passes 2^64; the exact answer is about 1000 h more.
  meter.update(max / 2, max / 2);
  EXPECT_EQ(out.str(), "ingest: 49% " + thousands_text(max / 2) + " lines, " + thousands_text(max / 2 / 3'600'000) +
                           " lines/s, 1000h00m left\n");
}

TEST(progress, long_labels_are_cut) {
  fake_clock clock;
  std::ostringstream out;
  progress_meter meter(out, progress_mode::lines, std::string(100, 'w'), "lines", {}, clock.source());
  meter.finish(1);
  EXPECT_EQ(out.str(), std::string(progress_label_max_bytes, 'w') + ": 1 lines in 0s\n");
}

}  // namespace
}  // namespace pevledger::cli
