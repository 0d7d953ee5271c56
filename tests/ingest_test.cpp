// The ingest path: every class of bad input is refused with its stable code while the lines around
// it are applied; ids are idempotency keys; refused ids are not taken.

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <sstream>

#include "engine/line_reader.hpp"
#include "engine/parse_ahead.hpp"
#include "pevledger/engine.hpp"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

struct ingest_run {
  ingest_summary summary;
  std::vector<line_refusal> refusals;
};

ingest_run ingest(engine& e, const std::string& text) {
  ingest_run run;
  std::istringstream in(text);
  auto s = e.ingest(in, [&](const line_refusal& r) { run.refusals.push_back(r); });
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().describe());
  if (s) run.summary = s.value();
  return run;
}

std::unique_ptr<engine> open_engine(const testing::temp_dir& dir) {
  auto e = engine::open(dir.file("db"));
  EXPECT_TRUE(e.has_value());
  return std::move(e.value());
}

const std::string utility =
    R"({"type":"utility.register","id":"L1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"America/Los_Angeles"})";
const std::string account =
    R"({"type":"account.open","id":"L2","at":"2024-03-01T00:00:01Z","utility":"u","account":"a","customer":"c"})";

std::string topup(const std::string& id, std::int64_t amount) {
  return R"({"type":"account.topup","id":")" + id + R"(","at":"2024-03-01T00:00:02Z","account":"a","amount":)" +
         std::to_string(amount) + "}";
}

// A source that has one line at a time, like a pipe a device gateway writes to: asking it for more
// before its line was taken would block a real reader.
class one_line_at_a_time : public std::streambuf {
 public:
  explicit one_line_at_a_time(std::vector<std::string> lines) : lines_(std::move(lines)) {}
  std::size_t underflows = 0;

 protected:
  int_type underflow() override {
    if (next_ == lines_.size()) return traits_type::eof();
    ++underflows;
    current_ = lines_[next_++];
    setg(current_.data(), current_.data(), current_.data() + current_.size());
    return traits_type::to_int_type(current_[0]);
  }

 private:
  std::vector<std::string> lines_;
  std::size_t next_ = 0;
  std::string current_;
};

TEST(ingest, a_line_is_read_as_soon_as_it_has_arrived) {
  one_line_at_a_time source({"first\n", "second\n", "third"});
  std::istream in(&source);
  engine_detail::line_reader reader(in, 100);
  std::string line;
  bool too_long = false;
  ASSERT_TRUE(reader.next(line, too_long));
  EXPECT_EQ(line, "first");
  EXPECT_EQ(source.underflows, 1u);  // the second line was not waited for
  ASSERT_TRUE(reader.next(line, too_long));
  EXPECT_EQ(line, "second");
  EXPECT_EQ(source.underflows, 2u);
  ASSERT_TRUE(reader.next(line, too_long));
  EXPECT_EQ(line, "third");
  EXPECT_FALSE(reader.next(line, too_long));
}

// A source whose second line arrives only when the test says so, like a device that has sent one
// line and waits for its acknowledgement.
class second_line_on_release : public std::streambuf {
 public:
  void release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    changed_.notify_all();
  }

 protected:
  int_type underflow() override {
    if (served_ == 2) return traits_type::eof();
    if (served_ == 1) {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return released_; });
    }
    current_ = served_ == 0 ? topup("first", 1) + "\n" : topup("second", 2) + "\n";
    ++served_;
    setg(current_.data(), current_.data(), current_.data() + current_.size());
    return traits_type::to_int_type(current_[0]);
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool released_ = false;
  int served_ = 0;
  std::string current_;
};

TEST(ingest, a_parsed_line_is_handed_over_before_the_next_line_arrives) {
  auto parser = schema::command_parser::create();
  ASSERT_TRUE(parser.has_value());
  second_line_on_release source;
  std::istream in(&source);
  std::vector<engine_detail::parsed_line> chunk;
  {
    engine_detail::parse_ahead lines(in, *parser.value());
    // The reader is blocked on the second line; the first is already available.
    ASSERT_TRUE(lines.next(chunk));
    ASSERT_EQ(chunk.size(), 1u);
    EXPECT_EQ(chunk[0].line_no, 1u);
    ASSERT_TRUE(chunk[0].command.has_value());
    EXPECT_EQ(chunk[0].command->id, "first");
    source.release();
    ASSERT_TRUE(lines.next(chunk));
    ASSERT_EQ(chunk.size(), 1u);
    EXPECT_EQ(chunk[0].command->id, "second");
    EXPECT_FALSE(lines.next(chunk));
    EXPECT_FALSE(lines.input_failed());
  }
}

TEST(ingest, bad_lines_are_refused_with_their_code_and_the_rest_applied) {
  testing::temp_dir dir;
  auto e = open_engine(dir);
  const std::string text = utility + "\n" +                                     // 1
                           "{\"type\":\"account.open\",\n" +                     // 2 invalid_json
                           account + "\n" +                                      // 3
                           "\n" +                                                // 4 blank
                           R"({"type":"account.topup","id":"m","at":"2024-03-01T00:00:02Z","account":"a"})" + "\n" +  // 5
                           R"({"type":"account.topup","id":"w","at":"2024-03-01T00:00:02Z","account":"a","amount":"7"})" + "\n" +  // 6
                           R"({"type":"account.close","id":"k","at":"2024-03-01T00:00:02Z","account":"a"})" + "\n" +  // 7
                           R"({"type":"account.topup","id":"x","at":"2024-03-01T00:00:02Z","account":"nobody","amount":7})" + "\n" +  // 8
                           topup("L3", 1000) + "\n" +                            // 9
                           "{\"type\":\"account.topup\",\"id\":\"" + std::string(70000, 'x') + "\"}\n" +  // 10 too long
                           "{\"type\":\"account.topup\",\"id\":\"u8\",\"at\":\"2024-03-01T00:00:02Z\",\"account\":\"a\xc3\x28\",\"amount\":1}\n" +  // 11
                           "   \t\r\n" +                                         // 12 blank
                           topup("L4", 234);                                     // 13, no final newline
  const ingest_run run = ingest(*e, text);
  EXPECT_EQ(run.summary.accepted, 4u);
  EXPECT_EQ(run.summary.duplicates, 0u);
  EXPECT_EQ(run.summary.refused, 7u);
  const std::vector<std::pair<std::uint64_t, errc>> expected = {
      {2, errc::invalid_json},  {5, errc::missing_field},   {6, errc::invalid_field}, {7, errc::unknown_type},
      {8, errc::unknown_account}, {10, errc::line_too_long}, {11, errc::invalid_json}};
  ASSERT_EQ(run.refusals.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(run.refusals[i].line, expected[i].first) << i;
    EXPECT_EQ(run.refusals[i].error, expected[i].second) << "line " << expected[i].first;
    EXPECT_FALSE(run.refusals[i].message.empty());
  }
  EXPECT_EQ(run.refusals[2].id.value_or(""), "w");
  EXPECT_FALSE(run.refusals[0].id.has_value());
  auto balance = e->balance("a");
  ASSERT_TRUE(balance.has_value());
  EXPECT_NE(balance->find("\"balance_micro\":1234"), std::string::npos) << *balance;
}

TEST(ingest, ids_are_idempotency_keys_across_runs_and_reopens) {
  testing::temp_dir dir;
  {
    auto e = open_engine(dir);
    const ingest_run first = ingest(*e, utility + "\n" + account + "\n" + topup("T1", 500) + "\n" + topup("T1", 900));
    EXPECT_EQ(first.summary.accepted, 3u);
    EXPECT_EQ(first.summary.duplicates, 1u);  // same id, even with other content
  }
  auto e = open_engine(dir);
  const ingest_run again = ingest(*e, topup("T1", 500) + "\n" + topup("T2", 1));
  EXPECT_EQ(again.summary.accepted, 1u);
  EXPECT_EQ(again.summary.duplicates, 1u);
  auto balance = e->balance("a");
  ASSERT_TRUE(balance.has_value());
  EXPECT_NE(balance->find("\"balance_micro\":501"), std::string::npos) << *balance;
}

// The reader looks ids and interval identities up ahead of the sequencer, often before the groups
// that take them are durable: a repeat must still be a duplicate however early it was looked up.
TEST(ingest, a_repeat_looked_up_before_its_first_is_durable_is_still_a_duplicate) {
  testing::temp_dir dir;
  engine_options options;
  options.group_lines = 1;                    // a synced group per line: the reader runs far ahead
  options.interval_identities_known_max = 2;  // identities are forgotten and read back from the log
  auto opened = engine::open(dir.file("db"), options);
  ASSERT_TRUE(opened.has_value());
  engine& e = *opened.value();
  const std::string vin = "1HG8NAW39M673BW7N";
  auto line = [](const std::string& id, const std::string& type, const std::string& fields) {
    return R"({"type":")" + type + R"(","id":")" + id + R"(","at":"2024-03-05T20:00:00Z",)" + fields + "}\n";
  };
  std::string text = utility + "\n" + account + "\n" +
                     line("S1", "tariff.publish", R"("utility":"u","tariff":"ev","kind":"flat","price":150000)") +
                     line("S2", "premise.register", R"("utility":"u","premise":"p","account":"a","default_tariff":"ev")") +
                     line("S3", "device.commission", R"("premise":"p","device":"esci","kind":"esci")") +
                     line("S4", "device.commission", R"("premise":"p","device":"eumd","kind":"eumd")") +
                     line("S5", "pev.enroll", R"("account":"a","pev":")" + vin + R"(","tariff":"ev","home_premise":"p")") +
                     line("S6", "pev.setup", R"("pev":")" + vin + R"(","premise":"p","esci":"esci","eumd":"eumd")") +
                     line("S7", "session.plug", R"("session":"s","premise":"p")") +
                     line("S8", "session.bind", R"("session":"s","pev":")" + vin + "\"");
  constexpr int n = 300;
  auto reading = [&](const std::string& id, int i, int wh) {
    char start[32];
    std::snprintf(start, sizeof start, "2024-03-%02dT%02d:%02d:00Z", 6 + i / 96, i % 96 / 4, i % 4 * 15);
    return line(id, "meter.interval", R"("device":"eumd","session":"s","start":")" + std::string(start) +
                                          R"(","seconds":900,"wh":)" + std::to_string(wh));
  };
  for (int i = 0; i < n; ++i) text += topup("T" + std::to_string(i), 1) + "\n" + reading("I" + std::to_string(i), i, 10);
  // The same ids again (duplicates whatever their content), and the same readings under new ids.
  for (int i = 0; i < n; ++i) text += topup("T" + std::to_string(i), 1000) + "\n" + reading("J" + std::to_string(i), i, 10);
  text += reading("K", 7, 11);  // other content for a recorded interval
  const ingest_run run = ingest(e, text);
  EXPECT_EQ(run.summary.accepted, 10u + 2 * n);
  EXPECT_EQ(run.summary.duplicates, 2u * n);
  ASSERT_EQ(run.refusals.size(), 1u);
  EXPECT_EQ(run.refusals[0].error, errc::interval_conflict);
  auto balance = e.balance("a");
  ASSERT_TRUE(balance.has_value());
  EXPECT_NE(balance->find("\"balance_micro\":300"), std::string::npos) << *balance;
  auto session = e.session("s");
  ASSERT_TRUE(session.has_value());
  EXPECT_NE(session->find("\"wh\":3000,"), std::string::npos) << *session;
  EXPECT_NE(session->find("\"duplicates\":300,"), std::string::npos) << *session;
}

TEST(ingest, a_refused_id_is_not_taken_and_may_be_sent_again_corrected) {
  testing::temp_dir dir;
  auto e = open_engine(dir);
  const ingest_run run = ingest(
      *e, utility + "\n" + R"({"type":"account.topup","id":"R","at":"2024-03-01T00:00:02Z","account":"a","amount":5})" +
              "\n" + account + "\n" + topup("R", 5));
  EXPECT_EQ(run.summary.refused, 1u);
  EXPECT_EQ(run.summary.accepted, 3u);
  ASSERT_EQ(run.refusals.size(), 1u);
  EXPECT_EQ(run.refusals[0].error, errc::unknown_account);
}

TEST(ingest, entity_rules_refuse_with_spec_codes) {
  testing::temp_dir dir;
  auto e = open_engine(dir);
  const std::string base =
      utility + "\n" + account + "\n" +
      R"({"type":"tariff.publish","id":"T","at":"2024-03-01T00:00:02Z","utility":"u","tariff":"flat","kind":"flat","price":100000})" + "\n" +
      R"({"type":"premise.register","id":"P","at":"2024-03-01T00:00:03Z","utility":"u","premise":"p","account":"a","default_tariff":"flat"})" + "\n" +
      R"({"type":"device.commission","id":"D","at":"2024-03-01T00:00:04Z","premise":"p","device":"esci","kind":"esci"})" + "\n";
  ASSERT_EQ(ingest(*e, base).summary.accepted, 5u);
  const std::vector<std::pair<std::string, errc>> cases = {
      {R"({"type":"utility.register","id":"x1","at":"2024-03-01T00:01:00Z","utility":"u","timezone":"UTC"})", errc::utility_exists},
      {R"({"type":"utility.register","id":"x2","at":"2024-03-01T00:01:00Z","utility":"v","timezone":"Mars/Olympus"})", errc::invalid_field},
      {R"({"type":"account.open","id":"x3","at":"2024-03-01T00:01:00Z","utility":"nope","account":"b","customer":"c"})", errc::unknown_utility},
      {R"({"type":"account.open","id":"x4","at":"2024-03-01T00:01:00Z","utility":"u","account":"a","customer":"c"})", errc::account_exists},
      {R"({"type":"premise.register","id":"x5","at":"2024-03-01T00:01:00Z","utility":"u","premise":"q","account":"a","default_tariff":"nope"})", errc::unknown_tariff},
      {R"({"type":"premise.register","id":"x6","at":"2024-03-01T00:01:00Z","utility":"u","premise":"p","account":"a","default_tariff":"flat"})", errc::premise_exists},
      {R"({"type":"device.commission","id":"x7","at":"2024-03-01T00:01:00Z","premise":"p","device":"esci","kind":"eumd"})", errc::device_exists},
      {R"({"type":"device.configure","id":"x8","at":"2024-03-01T00:01:00Z","device":"esci","interval_s":300})", errc::not_eumd},
      {R"({"type":"device.configure","id":"x9","at":"2024-03-01T00:01:00Z","device":"ghost","interval_s":300})", errc::unknown_device},
      {R"({"type":"pev.enroll","id":"x10","at":"2024-03-01T00:01:00Z","account":"a","pev":"1hg8naw39m673bw7n","tariff":"flat","home_premise":"p"})", errc::invalid_vin},
      {R"({"type":"pev.enroll","id":"x11","at":"2024-03-01T00:01:00Z","account":"a","pev":"1HG8NAW38M673BW7N","tariff":"flat","home_premise":"p"})", errc::invalid_vin},
      {R"({"type":"station.boot","id":"x12","at":"2024-03-01T00:01:00Z","premise":"p"})", errc::not_public},
      {R"({"type":"session.start","id":"x13","at":"2024-03-01T00:01:00Z","session":"s","premise":"p","card":"c","online":true})", errc::not_public},
      {R"({"type":"session.bind","id":"x14","at":"2024-03-01T00:01:00Z","session":"none","pev":"1HG8NAW39M673BW7N"})", errc::unknown_session},
      {R"({"type":"card.revoke","id":"x15","at":"2024-03-01T00:01:00Z","card":"c"})", errc::unknown_card},
      {R"({"type":"pev.setup","id":"x16","at":"2024-03-01T00:01:00Z","pev":"1HG8NAW39M673BW7N","premise":"p","esci":"esci","eumd":"esci"})", errc::unknown_pev},
      {R"({"type":"price.publish","id":"x17","at":"2024-03-01T00:01:00Z","utility":"u","tariff":"flat","hour":"2024-03-01T01:00:00Z","price":1})", errc::tariff_not_rtp},
  };
  for (const auto& [line, code] : cases) {
    const ingest_run run = ingest(*e, line);
    ASSERT_EQ(run.refusals.size(), 1u) << line;
    EXPECT_EQ(run.refusals[0].error, code) << line << ": " << run.refusals[0].message;
  }
  // The valid VIN of the cases above enrols once, then is refused as enrolled.
  const std::string enroll =
      R"({"type":"pev.enroll","id":"E1","at":"2024-03-01T00:02:00Z","account":"a","pev":"1HG8NAW39M673BW7N","tariff":"flat","home_premise":"p"})";
  EXPECT_EQ(ingest(*e, enroll).summary.accepted, 1u);
  const ingest_run twice = ingest(*e, R"({"type":"pev.enroll","id":"E2","at":"2024-03-01T00:02:00Z","account":"a","pev":"1HG8NAW39M673BW7N","tariff":"flat","home_premise":"p"})");
  ASSERT_EQ(twice.refusals.size(), 1u);
  EXPECT_EQ(twice.refusals[0].error, errc::pev_enrolled);
}

}  // namespace
}  // namespace pevledger
