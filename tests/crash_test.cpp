// A child process ingesting commands is killed with SIGKILL; the database it leaves must hold every
// line it had acknowledged as durable, with an intact hash chain, and accept the rest on a re-run.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>

#include "pevledger/engine.hpp"
#include "storage/event_log.hpp"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

constexpr int topup_lines = 60000;

std::string scenario() {
  std::ostringstream s;
  s << R"({"type":"utility.register","id":"u","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})" << '\n';
  s << R"({"type":"account.open","id":"a","at":"2024-03-01T00:00:01Z","utility":"u","account":"acct","customer":"c"})"
    << '\n';
  for (int i = 1; i <= topup_lines; ++i)
    s << R"({"type":"account.topup","id":"t)" << i << R"(","at":"2024-03-01T00:00:02Z","account":"acct","amount":)"
      << i << "}\n";
  return s.str();
}

TEST(crash, sigkill_mid_ingest_keeps_every_acknowledged_line) {
  testing::temp_dir dir;
  const std::string db = dir.file("db");
  const std::string text = scenario();
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Child: ingest and report every durable line count; never returns to the test runner.
    close(pipe_fds[0]);
    auto engine = engine::open(db);
    if (!engine) _exit(10);
    std::istringstream in(text);
    auto summary = engine.value()->ingest(in, {}, [&](std::uint64_t lines) {
      const auto n = static_cast<std::uint64_t>(lines);
      if (write(pipe_fds[1], &n, sizeof n) != sizeof n) _exit(11);
    });
    _exit(summary ? 0 : 12);
  }
  close(pipe_fds[1]);
  // Parent: wait until a few group commits are acknowledged, then kill without warning.
  std::uint64_t acked = 0, n = 0;
  int acks = 0;
  while (acks < 3 && read(pipe_fds[0], &n, sizeof n) == sizeof n) {
    acked = n;
    ++acks;
  }
  kill(child, SIGKILL);
  // Acknowledgements already in the pipe were given before the kill: they count too.
  while (read(pipe_fds[0], &n, sizeof n) == sizeof n) acked = n;
  close(pipe_fds[0]);
  int wstatus = 0;
  waitpid(child, &wstatus, 0);
  ASSERT_GT(acked, 2u) << "the child acknowledged nothing before it was killed";
  // The kill must land mid-ingest for the test to mean anything.
  ASSERT_LT(acked, static_cast<std::uint64_t>(topup_lines + 2)) << "the child finished before the kill";
  ::testing::Test::RecordProperty("acknowledged_lines_before_kill", std::to_string(acked));

  {
    auto log = storage::event_log::open(db);
    ASSERT_TRUE(log.has_value()) << log.error().describe();
    // Every acknowledged line (lines 3.. are top-ups t1..) is in the idempotency index.
    for (std::uint64_t line = 3; line <= acked; ++line) {
      auto known = log.value()->find_command("t" + std::to_string(line - 2));
      ASSERT_TRUE(known.has_value());
      ASSERT_TRUE(known->has_value()) << "acknowledged line " << line << " was lost";
    }
    const status chain = log.value()->scan(log_seq(1), log.value()->last_seq(),
                                           [](const schema::Record&) { return status::ok(); });
    EXPECT_TRUE(chain.is_ok()) << chain.describe();
  }

  // Re-running the whole file applies exactly what is missing: nothing lost, nothing twice.
  auto engine = engine::open(db);
  ASSERT_TRUE(engine.has_value());
  std::istringstream in(text);
  auto summary = engine.value()->ingest(in, {});
  ASSERT_TRUE(summary.has_value()) << summary.error().describe();
  EXPECT_EQ(summary->accepted + summary->duplicates, static_cast<std::uint64_t>(topup_lines + 2));
  EXPECT_EQ(summary->refused, 0u);
  EXPECT_GE(summary->duplicates, acked);
  const std::int64_t expected = static_cast<std::int64_t>(topup_lines) * (topup_lines + 1) / 2;
  auto balance = engine.value()->balance("acct");
  ASSERT_TRUE(balance.has_value());
  EXPECT_NE(balance->find("\"balance_micro\":" + std::to_string(expected)), std::string::npos) << *balance;
}

}  // namespace
}  // namespace pevledger
