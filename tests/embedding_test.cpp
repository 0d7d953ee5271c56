// The public API as an embedding program uses it: typed commands and results, failures as values,
// and the threads an engine starts.

#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <sstream>

#include "pevledger/engine.hpp"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

using namespace std::chrono;
namespace cmd = commands;

constexpr const char* vin = "1HGCM82633A004352";

sys_seconds at(int day, hours h, minutes m = 0min) { return sys_seconds(sys_days(2024y / March / day) + h + m); }

// Two utilities, a home charge and a roaming charge, a top-up and a bill run.
std::vector<command> a_small_world() {
  std::vector<command> w;
  w.push_back({"c1", at(1, 0h), cmd::utility_register{"u_a", "America/New_York", 60, {}}});
  w.push_back({"c2", at(1, 0h, 1min), cmd::utility_register{"u_b", "Europe/Berlin", {}, {}}});
  w.push_back({"c3", at(1, 0h, 2min),
               cmd::tariff_publish{"u_a", "tou", tariff_kind::tou, 200'000,
                                   {{"peak", {Monday, Tuesday, Wednesday, Thursday, Friday}, 16h, 21h, 400'000}}, {}}});
  w.push_back({"c4", at(1, 0h, 3min), cmd::tariff_publish{"u_a", "ev", tariff_kind::flat, 120'000, {}, {}}});
  w.push_back({"c5", at(1, 0h, 4min), cmd::tariff_publish{"u_b", "house", tariff_kind::flat, 300'000, {}, {}}});
  w.push_back({"c6", at(1, 0h, 5min), cmd::account_open{"u_a", "a1", "Ada", account_kind::postpaid}});
  w.push_back({"c7", at(1, 0h, 6min), cmd::account_open{"u_b", "b1", "Bea", account_kind::prepaid}});
  w.push_back({"c8", at(1, 0h, 7min), cmd::account_topup{"b1", 9'000'000}});
  w.push_back({"c9", at(1, 0h, 8min), cmd::premise_register{"u_a", "pa", "a1", "tou", guest_policy::guest_pays, {}}});
  w.push_back({"c10", at(1, 0h, 9min), cmd::premise_register{"u_b", "pb", "b1", "house", {}, {}}});
  w.push_back({"c11", at(1, 0h, 10min), cmd::device_commission{"pa", "ea", device_kind::eumd, {}}});
  w.push_back({"c12", at(1, 0h, 11min), cmd::device_commission{"pb", "eb", device_kind::eumd, 900}});
  w.push_back({"c13", at(1, 0h, 12min), cmd::pev_enroll{"a1", vin, "ev", "pa", true}});
  w.push_back({"c14", at(4, 17h), cmd::session_plug{"s1", "pa", {}}});
  w.push_back({"c15", at(4, 17h, 1min), cmd::session_bind{"s1", vin}});
  w.push_back({"c16", at(4, 17h, 20min), cmd::meter_interval{"ea", "s1", at(4, 17h), 900, 1800, 1800}});
  w.push_back({"c17", at(4, 17h, 35min), cmd::meter_interval{"ea", "s1", at(4, 17h, 15min), 900, 1700, 3500}});
  w.push_back({"c18", at(4, 18h), cmd::session_unplug{"s1"}});
  w.push_back({"c19", at(9, 10h), cmd::session_plug{"s2", "pb", "eb"}});
  w.push_back({"c20", at(9, 10h, 0min) + 30s, cmd::session_bind{"s2", vin}});
  w.push_back({"c21", at(9, 10h, 20min), cmd::meter_interval{"eb", "s2", at(9, 10h), 900, 2500, {}}});
  w.push_back({"c22", at(9, 11h), cmd::session_unplug{"s2"}});
  w.push_back({"c23", sys_seconds(sys_days(2024y / April / 2)), cmd::bill_run{"u_a", 2024y / March}});
  w.push_back({"c24", sys_seconds(sys_days(2024y / April / 2)) + 1min, cmd::bill_run{"u_b", 2024y / March}});
  w.push_back({"c25", sys_seconds(sys_days(2024y / April / 3)), cmd::settlement_run{2024y / March}});
  w.push_back({"c26", sys_seconds(sys_days(2024y / April / 4)), cmd::phone_assign{"+12025550123", "a1"}});
  w.push_back({"c27", sys_seconds(sys_days(2024y / April / 5)), cmd::phone_revoke{"+12025550123"}});
  return w;
}

std::unique_ptr<engine> open_or_fail(const std::string& dir, engine_options options = {}) {
  auto e = engine::open(dir, options);
  if (!e) throw std::runtime_error(e.error().describe());
  return std::move(e.value());
}

std::size_t threads_now() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return 0;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

TEST(embedding, typed_commands_are_applied_and_answered_as_their_json_lines_are) {
  testing::temp_dir dir;
  const auto world = a_small_world();
  std::string lines;
  for (const auto& c : world) lines += to_json_line(c) + "\n";
  {
    auto typed = open_or_fail(dir.file("typed"));
    auto outcomes = typed->submit(world);
    ASSERT_TRUE(outcomes) << outcomes.error().describe();
    for (std::size_t i = 0; i < world.size(); ++i)
      EXPECT_EQ(outcomes.value()[i].what, command_outcome::kind::accepted)
          << world[i].id << ": " << outcomes.value()[i].refusal.describe();
    // What a device waits to hear: a plug-in's bind deadline (u_a's comm_timeout_s is 60), and
    // nothing for other commands.
    EXPECT_EQ(outcomes.value()[13].bind_deadline, at(4, 17h) + 60s);
    EXPECT_EQ(outcomes.value()[18].bind_deadline, at(9, 10h) + 60s);
    EXPECT_FALSE(outcomes.value()[14].bind_deadline);
    EXPECT_FALSE(outcomes.value()[14].grant);
  }
  {
    // An energy request on a decided session: its grant, priced now (ev: flat 0.12/kWh).
    auto typed = open_or_fail(dir.file("answers"));
    ASSERT_TRUE(typed->submit(world));
    const std::vector<command> request = {{"c30", at(20, 17h), cmd::session_plug{"s3", "pa", {}}},
                                          {"c31", at(20, 17h, 1min), cmd::session_bind{"s3", vin}},
                                          {"c32", at(20, 17h, 5min), cmd::energy_request{"s3", 9000, at(21, 7h)}}};
    auto granted = typed->submit(request);
    ASSERT_TRUE(granted);
    ASSERT_TRUE(granted.value()[2].grant) << granted.value()[2].refusal.describe();
    EXPECT_EQ(granted.value()[2].grant->wh, 9000);
    EXPECT_EQ(granted.value()[2].grant->start, at(20, 17h, 5min));
    EXPECT_EQ(granted.value()[2].grant->depart, at(21, 7h));
    EXPECT_EQ(granted.value()[2].grant->price_micro_per_kwh, 120'000);
    // Sent again: a duplicate, answered with the grant recorded for the first (its sender heard
    // no answer), not with a new one.
    auto again = typed->submit(std::span(request).last(1));
    ASSERT_TRUE(again);
    EXPECT_EQ(again.value()[0].what, command_outcome::kind::duplicate);
    ASSERT_TRUE(again.value()[0].grant);
    EXPECT_EQ(again.value()[0].grant->start, granted.value()[2].grant->start);
    EXPECT_EQ(again.value()[0].grant->depart, granted.value()[2].grant->depart);
    EXPECT_EQ(again.value()[0].grant->price_micro_per_kwh, 120'000);
    EXPECT_FALSE(again.value()[0].bind_deadline);
  }
  {
    auto text = open_or_fail(dir.file("text"));
    std::istringstream in(lines);
    auto summary = text->ingest(in, [](const line_refusal& r) { ADD_FAILURE() << r.message; });
    ASSERT_TRUE(summary);
    EXPECT_EQ(summary->accepted, world.size());
  }
  // A session started by SMS sends its phone, and neither a card nor `online`.
  EXPECT_EQ(to_json_line({"m1", at(5, 12h), cmd::session_start{"m1", "st", "ignored", false, "+12025550123"}}),
            R"({"id":"m1","at":"2024-03-05T12:00:00Z","type":"session.start","session":"m1","premise":"st",)"
            R"("phone":"+12025550123"})");
  engine_options reader;
  reader.read_only = true;
  auto typed = open_or_fail(dir.file("typed"), reader);
  auto text = open_or_fail(dir.file("text"), reader);
  for (const std::string account : {"a1", "b1"}) {
    auto typed_bill = typed->bill(account, "2024-03");
    ASSERT_TRUE(typed_bill);
    EXPECT_EQ(typed_bill.value(), text->bill(account, "2024-03").value());
    EXPECT_EQ(typed->balance(account).value(), text->balance(account).value());
  }
  std::ostringstream a, b;
  ASSERT_TRUE(typed->export_events(a).is_ok());
  ASSERT_TRUE(text->export_events(b).is_ok());
  EXPECT_EQ(a.str(), b.str());
}

TEST(embedding, typed_results_carry_the_bill_the_balance_and_the_settlement) {
  testing::temp_dir dir;
  auto e = open_or_fail(dir.file("db"));
  ASSERT_TRUE(e->submit(a_small_world()));
  auto bill = e->bill_of("a1", 2024y / March);
  ASSERT_TRUE(bill) << bill.error().describe();
  EXPECT_TRUE(bill->issued);
  EXPECT_EQ(bill->utility, "u_a");
  EXPECT_EQ(bill->period, 2024y / March);
  std::int64_t sum = 0;
  for (const auto& line : bill->lines) sum += line.amount_micro;
  EXPECT_EQ(sum, bill->total_micro);
  // Home (Monday 4 March, 17:00 UTC, noon in New York): 3,500 Wh charged at 0.12 and credited at
  // the house tariff's base price (the peak is 16:00 to 21:00 local), 0.20. Roaming into u_b:
  // 2,500 Wh charged at 0.12 on a1's bill.
  bool home_charge = false, roaming_charge = false;
  for (const auto& line : bill->lines) {
    if (line.session == "s1" && line.kind == "charge") home_charge = line.wh == 3500 && line.amount_micro == 420'000;
    if (line.session == "s1" && line.kind == "credit") {
      EXPECT_EQ(line.amount_micro, -700'000);
    }
    if (line.session == "s2" && line.kind == "charge") roaming_charge = line.wh == 2500 && line.amount_micro == 300'000;
  }
  EXPECT_TRUE(home_charge);
  EXPECT_TRUE(roaming_charge);
  auto balance = e->balance_of("b1");
  ASSERT_TRUE(balance);
  EXPECT_EQ(balance->account, "b1");
  EXPECT_EQ(balance->balance_micro, 9'000'000 + 750'000);  // the top-up and the credit for s2 at 0.30
  auto settlement = e->settlement_of(2024y / March);
  ASSERT_TRUE(settlement);
  const auto gross = std::find_if(settlement->begin(), settlement->end(), [](const auto& s) { return !s.net; });
  ASSERT_NE(gross, settlement->end());
  EXPECT_EQ(gross->home_utility, "u_a");
  EXPECT_EQ(gross->roaming_utility, "u_b");
  EXPECT_EQ(gross->wh, 2500);
  EXPECT_EQ(gross->amount_micro, 750'000);
}

TEST(embedding, refusals_and_duplicates_are_reported_per_command) {
  testing::temp_dir dir;
  auto e = open_or_fail(dir.file("db"));
  auto world = a_small_world();
  world.resize(8);
  ASSERT_TRUE(e->submit(world));
  const std::vector<command> again = {
      world[5],                                                                  // the same id: a duplicate
      {"x1", at(2, 0h), cmd::account_topup{"nobody", 1}},                        // unknown account
      {"x2", at(2, 0h), cmd::account_topup{"a1", 0}},                            // not positive
      {"x3", at(2, 0h), cmd::pev_enroll{"a1", "1HGCM82633A004353", "ev", "p", true}},  // unknown premise first
      {"x4", at(2, 0h), cmd::account_topup{"a1", 5}},
  };
  auto outcomes = e->submit(again);
  ASSERT_TRUE(outcomes);
  const auto& o = outcomes.value();
  EXPECT_EQ(o[0].what, command_outcome::kind::duplicate);
  EXPECT_EQ(o[1].what, command_outcome::kind::refused);
  EXPECT_EQ(o[1].refusal.code(), errc::unknown_account);
  EXPECT_EQ(o[2].refusal.code(), errc::invalid_field);
  EXPECT_EQ(o[3].what, command_outcome::kind::refused);
  EXPECT_EQ(o[4].what, command_outcome::kind::accepted);
  EXPECT_TRUE(o[4].refusal.is_ok());
}

TEST(embedding, command_lines_are_decided_one_by_one_and_a_line_that_is_not_one_is_refused) {
  testing::temp_dir dir;
  auto typed = open_or_fail(dir.file("typed"));
  auto lines = open_or_fail(dir.file("lines"));
  const auto world = a_small_world();
  ASSERT_TRUE(typed->submit(world));
  std::vector<std::string> text;
  for (const command& c : world) text.push_back(to_json_line(c));
  // Between the lines: a blank one, one with a line break inside (two lines in one), garbage, and
  // a resend; each is refused or a duplicate on its own and the others are decided.
  text.insert(text.begin() + 3, "   ");
  text.insert(text.begin() + 5, to_json_line(world[3]) + "\n" + to_json_line(world[4]));
  text.insert(text.begin() + 7, "{not json");
  text.push_back(to_json_line(world[0]));
  const auto outcomes = lines->submit_lines(text);
  ASSERT_TRUE(outcomes);
  ASSERT_EQ(outcomes->size(), text.size());
  const auto& o = outcomes.value();
  EXPECT_EQ(o[3].refusal.code(), errc::invalid_json);
  EXPECT_EQ(o[5].refusal.code(), errc::invalid_json);
  EXPECT_EQ(o[7].refusal.code(), errc::invalid_json);
  EXPECT_EQ(o.back().what, command_outcome::kind::duplicate);
  std::size_t accepted = 0;
  for (const auto& outcome : o) accepted += outcome.what == command_outcome::kind::accepted;
  EXPECT_EQ(accepted, world.size());
  for (const char* account : {"a1", "b1"})
    EXPECT_EQ(lines->bill(account, "2024-03").value(), typed->bill(account, "2024-03").value()) << account;
  EXPECT_EQ(lines->settlement("2024-03").value(), typed->settlement("2024-03").value());
}

TEST(embedding, failures_are_values_and_reading_a_missing_value_throws_instead_of_aborting) {
  testing::temp_dir dir;
  engine_options reader;
  reader.read_only = true;
  auto missing = engine::open(dir.file("none"), reader);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::io_error);
  EXPECT_THROW(static_cast<void>(missing.value()), bad_result_access);
  try {
    static_cast<void>(missing.value());
  } catch (const bad_result_access& e) {
    EXPECT_EQ(e.error().code(), errc::io_error);
  }
  engine_options bad;
  bad.actor_threads = 0;
  EXPECT_EQ(engine::open(dir.file("db"), bad).error().code(), errc::usage);
  auto e = open_or_fail(dir.file("db"));
  EXPECT_EQ(e->balance_of("nobody").error().code(), errc::unknown_account);
  EXPECT_EQ(e->bill_of("nobody", 2024y / March).error().code(), errc::unknown_account);
  EXPECT_EQ(e->bill_of("nobody", 2024y / month(13)).error().code(), errc::usage);
  auto ro = open_or_fail(dir.file("db"), reader);
  EXPECT_EQ(ro->submit(a_small_world()).error().code(), errc::log_closed);
}

TEST(embedding, a_read_only_engine_starts_no_thread_and_a_writer_the_ones_its_options_state) {
  testing::temp_dir dir;
  {
    auto e = open_or_fail(dir.file("db"));
    ASSERT_TRUE(e->submit(a_small_world()));
  }
  const std::size_t before = threads_now();
  ASSERT_GT(before, 0u);
  {
    engine_options reader;
    reader.read_only = true;
    auto ro = open_or_fail(dir.file("db"), reader);
    ASSERT_TRUE(ro->bill_of("a1", 2024y / April));  // a preview: recovered on this thread
    ASSERT_TRUE(ro->balance_of("a1"));
    EXPECT_EQ(threads_now(), before);
  }
  engine_options writer;
  writer.actor_threads = 1;
  auto w = open_or_fail(dir.file("db"), writer);
  ASSERT_TRUE(w->bill_of("a1", 2024y / April));
  // Sealer, syncer and one actor thread (CAF adds its own timer and printer threads), plus
  // RocksDB's flush and compaction threads and its timer.
  EXPECT_LE(threads_now(), before + 2 + writer.actor_threads + 2 + 3);
  EXPECT_GE(threads_now(), before + 2 + writer.actor_threads);
}

}  // namespace
}  // namespace pevledger
