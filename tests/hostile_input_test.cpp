// Hostile input and a full disk (issue 23, "cases found"): a settlement core answers every byte
// sequence with a refusal or a result, and a storage error with exit 2 and a message, never an
// abort. Each case runs after the lines of a small fleet scenario (fleet_gen), through the
// pevledger binary, and checks the exit code, the refusal's code and that nothing of a refused
// line was applied (the log's length is unchanged and `replay --verify` passes).

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <flatbuffers/flatbuffers.h>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "storage/event_log.hpp"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

using json = nlohmann::json;
using testing::run_pevledger;

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::size_t count_lines(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

std::string generate_fleet(const std::string& path, int premises_per_utility, int days) {
  const std::string cmd = std::string(PEVLEDGER_FLEET_GEN) + " --seed 1 --premises-per-utility " +
                          std::to_string(premises_per_utility) + " --days " + std::to_string(days) + " >" + path;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("fleet_gen failed");
  return testing::detail::slurp(path);
}

// A database holding the small scenario, and the lines sent after it.
class hostile_input : public ::testing::Test {
 protected:
  void SetUp() override {
    scenario_ = generate_fleet(dir_.file("scenario.jsonl"), 3, 4);
    db_ = dir_.file("db");
    auto r = run_pevledger("ingest --quiet --db " + db_ + " " + dir_.file("scenario.jsonl"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    records_ = export_count();
    ASSERT_GT(records_, 0u);
  }

  std::size_t export_count() {
    auto r = run_pevledger("export --quiet --db " + db_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return count_lines(r.out);
  }

  // The first scenario line of `type`, as JSON.
  json first_of(const std::string& type) const {
    for (const json& line : json_lines(scenario_))
      if (line["type"] == type) return line;
    throw std::runtime_error("the scenario has no " + type);
  }

  // Sends `lines` (one per element) after the scenario; each must be refused with the code given
  // beside it. Nothing of them may be applied, and the log must still verify.
  void expect_refused(const std::vector<std::pair<std::string, std::string>>& lines) {
    std::string text;
    for (const auto& [line, code] : lines) text += line + "\n";
    auto r = run_pevledger("ingest --quiet --db " + db_ + " -", text);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    const json summary = json::parse(r.out);
    EXPECT_EQ(summary["accepted"], 0) << r.out;
    EXPECT_EQ(summary["refused"], lines.size()) << r.out;
    const auto errors = json_lines(r.err);
    ASSERT_EQ(errors.size(), lines.size()) << r.err;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      EXPECT_EQ(errors[i]["line"], i + 1) << errors[i];
      EXPECT_EQ(errors[i]["error"], lines[i].second) << lines[i].first << "\n" << errors[i];
      EXPECT_TRUE(errors[i]["message"].is_string());
    }
    EXPECT_EQ(export_count(), records_) << "a refused line left records";
    expect_verifies();
  }

  void expect_verifies() {
    auto v = run_pevledger("replay --quiet --db " + db_ + " --verify");
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }

  testing::temp_dir dir_;
  std::string scenario_;
  std::string db_;
  std::size_t records_ = 0;
};

// Issue 23, case 1: an account "\u0000" ended ingest with an uncaught exception (exit 134).
// The events were built from C strings, which end at the NUL: the log recorded account "" under
// the stream "account/\0", and the next lookup of the stream's entity found none. Every identifier
// field, the line's id and a whitelist's cards now refuse control characters (U+0000 to U+001F,
// U+007F) and the empty string, in one check of the parser.
TEST_F(hostile_input, identifiers_holding_a_control_character_are_invalid_fields_in_every_field) {
  const json plug = first_of("session.plug");
  const std::string premise = plug["premise"];
  const json enroll = first_of("pev.enroll");
  const json commission = first_of("device.commission");
  expect_refused({
      {R"({"type":"account.open","id":"x1","at":"2024-02-25T15:00:20Z","utility":"u_west","account":"\u0000","customer":"u_west-operator"})", "invalid_field"},
      {R"({"type":"session.plug","id":"x2","at":"2024-03-13T17:45:52Z","session":"\u0000","premise":")" + premise + R"("})", "invalid_field"},
      {R"({"type":"session.plug","id":"x3\u0000","at":"2024-03-13T17:45:52Z","session":"hx3","premise":")" + premise + R"("})", "invalid_field"},
      {R"({"type":"session.plug","id":"","at":"2024-03-13T17:45:52Z","session":"hx4","premise":")" + premise + R"("})", "invalid_field"},
      {R"({"type":"session.plug","id":"x5","at":"2024-03-13T17:45:52Z","session":"","premise":")" + premise + R"("})", "invalid_field"},
      {R"({"type":"account.open","id":"x6","at":"2024-03-13T17:45:52Z","utility":"u_west","account":"hx6","customer":"c\u007f"})", "invalid_field"},
      {R"({"type":"account.open","id":"x7","at":"2024-03-13T17:45:52Z","utility":"u_we\u001fst","account":"hx7","customer":"c"})", "invalid_field"},
      {R"({"type":"device.commission","id":"x8","at":"2024-03-13T17:45:52Z","premise":")" + std::string(commission["premise"]) + R"(","device":"d\nx","kind":"eumd"})", "invalid_field"},
      {R"({"type":"pev.enroll","id":"x9","at":"2024-03-13T17:45:52Z","account":")" + std::string(enroll["account"]) + R"(","pev":"1HGCM82633A00435\u0000","tariff":")" + std::string(enroll["tariff"]) + R"(","home_premise":")" + std::string(enroll["home_premise"]) + R"("})", "invalid_field"},
      {R"({"type":"tariff.publish","id":"x10","at":"2024-03-13T17:45:52Z","utility":"u_west","tariff":"hx10","kind":"tou","price":1,"periods":[{"name":"\t","days":["Mon"],"from":"00:00","to":"01:00","price":1}]})", "invalid_field"},
      {R"({"type":"whitelist.push","id":"x11","at":"2024-03-13T17:45:52Z","premise":"u_west-st0","version":1000,"cards":["u_west-card1","\u0000"]})", "invalid_field"},
      {R"({"type":"card.assign","id":"x12","at":"2024-03-13T17:45:52Z","card":"\r","account":"u_west-op"})", "invalid_field"},
  });
  // The refused lines took no id: the same id, corrected, is accepted.
  auto r = run_pevledger("ingest --quiet --db " + db_ + " -",
                         R"({"type":"account.open","id":"x1","at":"2024-02-25T15:00:20Z","utility":"u_west","account":"hx1","customer":"u_west-operator"})"
                         "\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["accepted"], 1);
  expect_verifies();
}

// Below the parser, the log itself: a stream's name ends at the first NUL of its index keys, so
// the log refuses to write a stream whose name holds one (or is empty), that batch alone, and
// finds no stream by such a name (the prefix filters would cut it at the NUL).
TEST(event_log_streams, a_stream_name_holding_a_nul_is_refused_and_never_found) {
  testing::temp_dir dir;
  auto opened = storage::event_log::open(dir.file("db"));
  ASSERT_TRUE(opened.has_value()) << opened.error().describe();
  storage::event_log& log = *opened.value();
  const auto body = [](const std::string& account) {
    flatbuffers::FlatBufferBuilder fbb;
    auto e = schema::CreateAccountToppedUpDirect(fbb, account.c_str(), 5);
    fbb.Finish(schema::CreateEventBody(fbb, schema::Event::AccountToppedUp, e.Union()));
    return std::vector<std::uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  };
  const auto batch = [&](const std::string& id, const std::string& stream) {
    storage::append_batch b;
    b.commands.push_back({id, unix_seconds(1700000000), {{stream, body("a")}}});
    return b;
  };
  ASSERT_TRUE(log.append_and_wait(batch("c1", "account/a")).has_value());
  for (const std::string& bad : {std::string("account/\0", 9), std::string("account/a\0x", 11), std::string()}) {
    auto r = log.append_and_wait(batch("c2", bad));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), errc::usage) << r.error().describe();
    storage::append_batch snap = batch("c3", "account/a");
    snap.snapshots.push_back({bad, 1, "state"});
    EXPECT_FALSE(log.append_and_wait(std::move(snap)).has_value());
    auto length = log.stream_length(bad);
    ASSERT_TRUE(length.has_value());
    EXPECT_EQ(length.value(), 0u);
    auto records = log.stream_records(bad);
    ASSERT_TRUE(records.has_value());
    EXPECT_TRUE(records->empty());
    auto snapshot = log.newest_snapshot(bad, log_seq(100));
    ASSERT_TRUE(snapshot.has_value());
    EXPECT_FALSE(snapshot->has_value());
  }
  // "account/a\0x" is not "account/a": a lookup by it visits none of account/a's events.
  int visited = 0;
  EXPECT_TRUE(log.scan_stream(std::string("account/a\0x", 11), 0, log_seq(100), [&](const schema::Record&) {
                   ++visited;
                   return status::ok();
                 }).is_ok());
  EXPECT_EQ(visited, 0);
  // The refusals left the log open and unchanged.
  EXPECT_EQ(log.last_seq().value(), 1u);
  auto r = log.append_and_wait(batch("c4", "account/a"));
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  EXPECT_EQ(r->first.value(), 2u);
  EXPECT_EQ(log.stream_length("account/a").value(), 2u);
}

// A bind's VIN is free text, never refused (SPEC section 3): one holding a NUL gives the fallback
// row, and the log records it as received. Built from a C string, "<an enrolled VIN>\u0000x" was
// recorded as the enrolled VIN itself, with the reason invalid_vin beside it.
TEST_F(hostile_input, a_vin_holding_a_nul_is_the_fallback_row_and_is_recorded_as_received) {
  const json enroll = first_of("pev.enroll");
  const std::string vin = enroll["pev"];
  const std::string premise = enroll["home_premise"];
  auto r = run_pevledger(
      "ingest --quiet --db " + db_ + " -",
      R"({"type":"session.plug","id":"v1","at":"2024-03-13T17:45:52Z","session":"hv1","premise":")" + premise + "\"}\n" +
          R"({"type":"session.bind","id":"v2","at":"2024-03-13T17:45:53Z","session":"hv1","pev":")" + vin + R"(\u0000x"})" + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto s = run_pevledger("session --db " + db_ + " --session hv1 --format json");
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const json report = json::parse(s.out);
  EXPECT_EQ(report["pev"], vin + std::string("\0x", 2));
  EXPECT_EQ(report["payer"], "main_meter");
  EXPECT_EQ(report["reason"], "invalid_vin");
  expect_verifies();
}

// Issue 23, case 2: an interval starting at the epoch reached an invariant in apply (its local
// month in Los Angeles is December 1969). The class: every time a command carries, and every
// number, is checked by the parser so that apply never meets a month outside 1970-01..9999-12 or
// an amount outside its bounds.
TEST_F(hostile_input, times_and_numbers_outside_their_range_are_invalid_fields) {
  const json interval = first_of("meter.interval");
  const std::string device = interval["device"], session = interval["session"];
  auto meter = [&](const std::string& id, const std::string& at, const std::string& start, const std::string& seconds,
                   const std::string& wh, const std::string& extra = "") {
    return R"({"type":"meter.interval","id":")" + id + R"(","at":")" + at + R"(","device":")" + device +
           R"(","session":")" + session + R"(","start":")" + start + R"(","seconds":)" + seconds + R"(,"wh":)" + wh +
           extra + "}";
  };
  const std::string at = "2024-03-13T17:45:52Z";
  const std::string start = "2024-03-01T12:00:00Z";
  expect_refused({
      {meter("t1", at, "1970-01-01T00:00:00Z", "900", "894"), "invalid_field"},
      {meter("t2", at, "1970-01-02T23:59:59Z", "900", "894"), "invalid_field"},
      {meter("t3", at, "9999-12-31T23:59:59Z", "900", "894"), "invalid_field"},
      {meter("t4", "1970-01-01T00:00:00Z", start, "900", "894"), "invalid_field"},
      {meter("t5", "9999-12-31T23:59:59Z", start, "900", "894"), "invalid_field"},
      {meter("t6", at, "1969-12-31T23:59:59Z", "900", "894"), "invalid_field"},
      {meter("t7", at, "2024-02-30T00:00:00Z", "900", "894"), "invalid_field"},
      {meter("t8", at, start, "0", "894"), "invalid_field"},
      {meter("t9", at, start, "4611686018427387904", "894"), "invalid_field"},  // 2^62
      {meter("t10", at, start, "-900", "894"), "invalid_field"},
      {meter("t11", at, start, "900", "-1"), "invalid_field"},
      {meter("t12", at, start, "900", "9223372036854775807"), "invalid_field"},
      {meter("t13", at, start, "900", "18446744073709551615"), "invalid_field"},
      {meter("t14", at, start, "900", "1", R"(,"register_wh":-5)"), "invalid_field"},
      {meter("t15", at, start, "900", "894.5"), "invalid_field"},
      {R"({"type":"cpp.declare","id":"t16","at":"2024-03-13T17:45:52Z","utility":"u_west","start":"1970-01-01T00:00:00Z","end":"2024-03-14T00:00:00Z"})", "invalid_field"},
      {R"({"type":"account.topup","id":"t17","at":"2024-03-13T17:45:52Z","account":"u_west-op","amount":4611686018427387904})", "invalid_field"},
      {R"({"type":"account.topup","id":"t18","at":"2024-03-13T17:45:52Z","account":"u_west-op","amount":-1})", "invalid_field"},
      {R"({"type":"energy.request","id":"t19","at":"2024-03-13T17:45:52Z","session":")" + session + R"(","wh":5,"depart":"9999-12-31T23:59:59Z"})", "invalid_field"},
      {R"({"type":"device.configure","id":"t20","at":"2024-03-13T17:45:52Z","device":")" + device + R"(","interval_s":0})", "invalid_field"},
      {R"({"type":"utility.register","id":"t21","at":"2024-03-13T17:45:52Z","utility":"hu","timezone":"UTC\u0000"})", "invalid_field"},
      {R"({"type":"account.open","id":"t22","at":"2024-03-13T17:45:52Z","utility":"u_west","account":"\ud800","customer":"c"})", "invalid_json"},
  });
  // The edges themselves are accepted, and land in months a bill has.
  auto r = run_pevledger("ingest --quiet --db " + db_ + " -",
                         meter("t23", at, "1970-01-03T00:00:00Z", "900", "10") + "\n" +
                             meter("t24", "9999-12-29T23:59:59Z", "9999-12-29T23:59:59Z", "86400", "10") + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["accepted"], 2);
  expect_verifies();
}

// A bill.run of 9999-12 and then an interval of December 9999 made an adjustment of "10000-01",
// a month apply cannot read (an invariant, exit 134); a settlement.run of 9999-12 did the same to
// a roaming credit's settlement period. Runs of 9999-12 are invalid_field, so what arrives after
// a run of 9999-11 goes to 9999-12.
TEST_F(hostile_input, runs_of_the_last_month_are_refused_so_later_lines_always_have_a_period) {
  expect_refused({
      {R"({"type":"bill.run","id":"b1","at":"2024-03-13T17:45:52Z","utility":"u_west","period":"9999-12"})", "invalid_field"},
      {R"({"type":"settlement.run","id":"b2","at":"2024-03-13T17:45:52Z","period":"9999-12"})", "invalid_field"},
      {R"({"type":"bill.run","id":"b3","at":"2024-03-13T17:45:52Z","utility":"u_west","period":"10000-01"})", "invalid_field"},
      {R"({"type":"bill.run","id":"b4","at":"2024-03-13T17:45:52Z","utility":"u_west","period":"1969-12"})", "invalid_field"},
  });
  const json interval = first_of("meter.interval");
  const std::string device = interval["device"], session = interval["session"];
  auto r = run_pevledger(
      "ingest --quiet --db " + db_ + " -",
      R"({"type":"bill.run","id":"b5","at":"2024-03-13T17:45:52Z","utility":"u_west","period":"9999-11"})" "\n"
      R"({"type":"bill.run","id":"b5n","at":"2024-03-13T17:45:52Z","utility":"u_north","period":"9999-11"})" "\n"
      R"({"type":"bill.run","id":"b5e","at":"2024-03-13T17:45:52Z","utility":"u_east","period":"9999-11"})" "\n"
      R"({"type":"settlement.run","id":"b6","at":"2024-03-13T17:45:52Z","period":"9999-11"})" "\n"
      R"({"type":"meter.interval","id":"b7","at":"2024-03-13T17:45:52Z","device":")" + device + R"(","session":")" +
          session + R"(","start":"9999-11-15T00:00:00Z","seconds":900,"wh":894})" + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["accepted"], 5);
  expect_verifies();
  // The interval's lines are adjustments in 9999-12 on the bills of whoever they were booked to.
  auto e = run_pevledger("export --quiet --db " + db_);
  bool adjustment_in_9999_12 = false;
  for (const json& rec : json_lines(e.out))
    if (rec["command_id"] == "b7" && rec["type"] == "LineBooked") {
      EXPECT_EQ(rec["event"]["period"], "9999-12") << rec;
      EXPECT_EQ(rec["event"]["original_period"], "9999-11") << rec;
      adjustment_in_9999_12 = true;
    }
  EXPECT_TRUE(adjustment_in_9999_12);
}

// Runs pevledger with its files limited to `file_bytes` (RLIMIT_FSIZE, SIGXFSZ ignored): a write
// past the limit fails with EFBIG, a full disk for that process alone, and needs no root.
testing::command_result run_with_file_size_limit(const std::vector<std::string>& args, rlim_t file_bytes) {
  testing::temp_dir io;
  const std::string out = io.file("stdout"), err = io.file("stderr");
  // Everything the child needs is made before the fork: between fork and exec it only calls the
  // system.
  std::string bin = PEVLEDGER_BIN;
  std::vector<std::string> copies(args);
  std::vector<char*> argv;
  argv.push_back(bin.data());
  for (std::string& a : copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  const rlimit limit{file_bytes, file_bytes};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const int in_fd = ::open("/dev/null", O_RDONLY);
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) ::_exit(126);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (pid < 0) throw std::runtime_error("fork failed");
  int raw = 0;
  while (::waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  testing::command_result r;
  r.exit_code = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = testing::detail::slurp(out);
  r.err = testing::detail::slurp(err);
  return r;
}

// Issue 23: a full disk (a 3 MB tmpfs) stopped ingest with RocksDB's assertion
// `sync_without_flush_called_` (exit 134): RocksDB's info log wrote again through a file writer
// whose write had failed, and the close flushed memtables to the disk that had just refused a
// write. Now: exit 2 naming the failed write, and the log verifies; an ingest with room again
// completes it. Limits from one that fails at the info log (64 KB) to ones that fail in the WAL.
TEST(full_disk, ingest_on_a_full_disk_exits_two_with_a_message_and_the_log_verifies) {
  testing::temp_dir dir;
  const std::string fleet = dir.file("fleet.jsonl");
  const std::string text = generate_fleet(fleet, 20, 10);
  std::size_t lines = 0;
  for (const json& line : json_lines(text)) lines += line.is_object() ? 1 : 0;
  for (const rlim_t limit : {rlim_t{64} << 10, rlim_t{256} << 10, rlim_t{1} << 20}) {
    for (const char* group : {"16384", "256"}) {
      SCOPED_TRACE("file size limit " + std::to_string(limit) + ", --group-lines " + group);
      const std::string db = dir.file("db-" + std::to_string(limit) + "-" + group);
      auto r = run_with_file_size_limit({"ingest", "--quiet", "--group-lines", group, "--db", db, fleet}, limit);
      EXPECT_EQ(r.exit_code, 2) << r.err;
      EXPECT_NE(r.err.find("io_error"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("Assertion"), std::string::npos) << r.err;
      auto v = run_pevledger("replay --quiet --db " + db + " --verify");
      EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
      // With room again, the same file completes the log: what was acknowledged is a duplicate.
      auto again = run_pevledger("ingest --quiet --group-lines " + std::string(group) + " --db " + db + " " + fleet);
      EXPECT_EQ(again.exit_code, 0) << again.err;
      const json summary = json::parse(again.out);
      EXPECT_EQ(summary["accepted"].get<std::size_t>() + summary["duplicates"].get<std::size_t>(), lines);
      EXPECT_EQ(run_pevledger("replay --quiet --db " + db + " --verify").exit_code, 0);
    }
  }
}

// A backup onto a full disk fails the same way: exit 2, and no half copy under the final name.
TEST(full_disk, backup_onto_a_full_disk_exits_two) {
  testing::temp_dir dir;
  const std::string fleet = dir.file("fleet.jsonl");
  generate_fleet(fleet, 20, 10);
  const std::string db = dir.file("db");
  ASSERT_EQ(run_pevledger("ingest --quiet --db " + db + " " + fleet).exit_code, 0);
  for (const rlim_t limit : {rlim_t{64} << 10, rlim_t{512} << 10}) {
    SCOPED_TRACE("file size limit " + std::to_string(limit));
    const std::string copy = dir.file("copy-" + std::to_string(limit));
    auto r = run_with_file_size_limit({"backup", "--quiet", "--db", db, "--to", copy}, limit);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("Assertion"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(copy));
  }
}

}  // namespace
}  // namespace pevledger
