// The pevledger binary as the acceptance tests drive it (SPEC section 7): outputs, stderr format,
// exit codes and --help.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <filesystem>
#include <sstream>

#include "tests/test_support.hpp"

namespace pevledger {
namespace {

using json = nlohmann::json;
using testing::run_pevledger;

const std::string good =
    R"({"type":"utility.register","id":"L1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})" "\n"
    R"({"type":"account.open","id":"L2","at":"2024-03-01T00:00:01Z","utility":"u","account":"a","customer":"c","kind":"prepaid"})" "\n"
    R"({"type":"account.topup","id":"L3","at":"2024-03-01T00:00:02Z","account":"a","amount":2500000})" "\n";

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

TEST(cli, ingest_prints_a_summary_and_exits_zero_when_nothing_is_refused) {
  testing::temp_dir dir;
  testing::write_file(dir.file("in.jsonl"), good);
  auto r = run_pevledger("ingest --db " + dir.file("db") + " " + dir.file("in.jsonl"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"accepted":3,"duplicates":0,"refused":0})"));
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(cli, ingest_reports_each_refusal_on_stderr_and_exits_three) {
  testing::temp_dir dir;
  const std::string text = good + "\n" + "not json\n" +
                           R"({"type":"account.topup","id":"L9","at":"2024-03-01T00:00:02Z","account":"zz","amount":1})" + "\n" +
                           R"({"type":"account.topup","id":"L3","at":"2024-03-01T00:00:02Z","account":"a","amount":1})" + "\n";
  auto r = run_pevledger("ingest --db " + dir.file("db") + " -", text);
  EXPECT_EQ(r.exit_code, 3);
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["accepted"], 3);
  EXPECT_EQ(summary["duplicates"], 1);
  EXPECT_EQ(summary["refused"], 2);
  const auto errors = json_lines(r.err);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0]["line"], 5);  // physical lines, the blank line 4 included
  EXPECT_TRUE(errors[0]["id"].is_null());
  EXPECT_EQ(errors[0]["error"], "invalid_json");
  EXPECT_TRUE(errors[0]["message"].is_string());
  EXPECT_EQ(errors[1]["line"], 6);
  EXPECT_EQ(errors[1]["id"], "L9");
  EXPECT_EQ(errors[1]["error"], "unknown_account");
}

TEST(cli, usage_and_storage_errors_exit_two) {
  testing::temp_dir dir;
  EXPECT_EQ(run_pevledger("ingest").exit_code, 2);
  EXPECT_EQ(run_pevledger("frobnicate").exit_code, 2);
  EXPECT_EQ(run_pevledger("ingest --db " + dir.file("db") + " " + dir.file("missing.jsonl")).exit_code, 2);
  testing::write_file(dir.file("not-a-dir"), "x");
  EXPECT_EQ(run_pevledger("ingest --db " + dir.file("not-a-dir") + " -", good).exit_code, 2);
  // Queries never create a database.
  EXPECT_EQ(run_pevledger("balance --db " + dir.file("nothing") + " --account a").exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir.file("nothing")));
}

TEST(cli, every_command_has_help) {
  for (const char* sub : {"", "ingest", "bill", "balance", "settlement", "session", "replay", "export"}) {
    auto r = run_pevledger(std::string(sub) + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub;
    EXPECT_NE(r.out.find("--help"), std::string::npos) << sub;
  }
}

TEST(cli, version_and_missing_subcommand) {
  auto v = run_pevledger("--version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("pevledger ", 0), 0u) << v.out;
  EXPECT_EQ(run_pevledger("").exit_code, 2);
}

TEST(cli, balance_and_bill_as_json) {
  testing::temp_dir dir;
  ASSERT_EQ(run_pevledger("ingest --db " + dir.file("db") + " -", good).exit_code, 0);
  auto b = run_pevledger("balance --db " + dir.file("db") + " --account a --format json");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const json balance = json::parse(b.out);
  EXPECT_EQ(balance["account"], "a");
  EXPECT_EQ(balance["balance_micro"], 2500000);
  EXPECT_EQ(balance["reserved_micro"], 0);
  auto bill = run_pevledger("bill --db " + dir.file("db") + " --account a --period 2024-03 --format json");
  ASSERT_EQ(bill.exit_code, 0) << bill.err;
  const json doc = json::parse(bill.out);
  EXPECT_EQ(doc["status"], "preview");
  EXPECT_EQ(doc["period"], "2024-03");
  EXPECT_EQ(doc["utility"], "u");
  EXPECT_TRUE(doc["lines"].is_array());
  EXPECT_EQ(doc["total_micro"], 0);
  EXPECT_EQ(doc["total_cents"], 0);
  auto unknown = run_pevledger("balance --db " + dir.file("db") + " --account nobody --format json");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.err;  // unknown_account; not any failure (an abort is -1)
}

TEST(cli, export_prints_every_event_in_log_order_and_replay_verifies) {
  testing::temp_dir dir;
  ASSERT_EQ(run_pevledger("ingest --db " + dir.file("db") + " -", good).exit_code, 0);
  auto r = run_pevledger("export --db " + dir.file("db"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto events = json_lines(r.out);
  // Opening an account records it on its own stream and in its utility's list.
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0]["seq"], 1);
  EXPECT_EQ(events[0]["type"], "UtilityRegistered");
  EXPECT_EQ(events[1]["type"], "AccountOpened");
  EXPECT_EQ(events[2]["type"], "UtilityAccountAdded");
  EXPECT_EQ(events[2]["stream"], events[0]["stream"]);
  EXPECT_EQ(events[3]["type"], "AccountToppedUp");
  EXPECT_EQ(events[3]["event"]["amount_micro"], 2500000);
  EXPECT_EQ(events[1]["prev_hash"], events[0]["hash"]);
  auto replay = run_pevledger("replay --db " + dir.file("db") + " --verify --format json");
  EXPECT_EQ(replay.exit_code, 0) << replay.out << replay.err;
  EXPECT_EQ(json::parse(replay.out)["verified"], true);
}

}  // namespace
}  // namespace pevledger
