// The binary batch path (include/pevledger/interval_batch.hpp): a batch of one EUMD's readings is
// the meter.interval lines that spell them, under one id, applied whole or not at all; bad bytes are
// refused with a stable code and change nothing.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "base/time.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"
#include "schema/interval_batch_generated.h"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

using namespace std::chrono;
using json = nlohmann::json;
namespace cmd = commands;

constexpr const char* vin = "1HGCM82633A004352";

sys_seconds at(int day, hours h, minutes m = 0min) { return sys_seconds(sys_days(2024y / March / day) + h + m); }

std::unique_ptr<engine> open_or_fail(const std::string& dir, engine_options options = {}) {
  options.sync = false;  // what is checked here is meaning, not durability
  auto e = engine::open(dir, options);
  if (!e) throw std::runtime_error(e.error().describe());
  return std::move(e.value());
}

std::vector<command_outcome> submit_or_fail(engine& e, const std::vector<command>& commands) {
  auto out = e.submit(commands);
  if (!out) throw std::runtime_error(out.error().describe());
  for (std::size_t i = 0; i < out->size(); ++i)
    if (out.value()[i].what == command_outcome::kind::refused)
      throw std::runtime_error("command " + commands[i].id + " refused: " + out.value()[i].refusal.message());
  return out.value();
}

std::vector<command_outcome> submit_batches(engine& e, const std::vector<std::vector<std::uint8_t>>& batches) {
  std::vector<std::span<const std::uint8_t>> spans(batches.begin(), batches.end());
  auto out = e.submit_interval_batches(spans);
  if (!out) throw std::runtime_error(out.error().describe());
  return out.value();
}

command_outcome submit_one(engine& e, const std::vector<std::uint8_t>& batch) { return submit_batches(e, {batch}).at(0); }

// A TOU utility, one residential premise with its EUMD, a PEV bound to a session plugged on the
// 4th at 16:00 UTC.
std::vector<command> a_plugged_session() {
  std::vector<command> w;
  w.push_back({"c1", at(1, 0h), cmd::utility_register{"u", "America/New_York", {}, {}}});
  w.push_back({"c2", at(1, 0h, 1min),
               cmd::tariff_publish{"u", "tou", tariff_kind::tou, 200'000,
                                   {{"peak", {Monday, Tuesday, Wednesday, Thursday, Friday}, 16h, 21h, 400'000}}, {}}});
  w.push_back({"c3", at(1, 0h, 2min), cmd::tariff_publish{"u", "ev", tariff_kind::tou, 120'000,
                                                         {{"night", {Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday}, 0h, 6h, 60'000}}, {}}});
  w.push_back({"c4", at(1, 0h, 3min), cmd::account_open{"u", "a1", "Ada", account_kind::postpaid}});
  w.push_back({"c5", at(1, 0h, 4min), cmd::premise_register{"u", "p1", "a1", "tou", {}, {}}});
  w.push_back({"c6", at(1, 0h, 5min), cmd::device_commission{"p1", "m1", device_kind::eumd, {}}});
  w.push_back({"c7", at(1, 0h, 6min), cmd::pev_enroll{"a1", vin, "ev", "p1", true}});
  w.push_back({"c8", at(4, 16h), cmd::session_plug{"s1", "p1", {}}});
  w.push_back({"c9", at(4, 16h, 1min), cmd::session_bind{"s1", vin}});
  return w;
}

// `count` quarter hours from the plug on, with a register counting from 10,000 Wh.
std::vector<interval_reading> quarter_hours(int count, int first = 0) {
  std::vector<interval_reading> r;
  for (int i = first; i < first + count; ++i)
    r.push_back({at(4, 16h) + minutes(15 * i), 900, 200 + 7 * i, 10'000 + 200 * i + 7 * i * (i + 1) / 2});
  return r;
}

interval_batch batch_of(std::string id, std::vector<interval_reading> readings) {
  return {std::move(id), at(5, 12h), "m1", "s1", std::move(readings)};
}

std::string bill_of(engine& e) {
  auto b = e.bill("a1", "2024-03");
  if (!b) throw std::runtime_error(b.error().describe());
  return b.value();
}

TEST(interval_batch, a_batch_bills_what_the_lines_of_its_readings_bill) {
  testing::temp_dir dir;
  auto by_lines = open_or_fail(dir.file("lines"));
  auto by_batch = open_or_fail(dir.file("batch"));
  for (engine* e : {by_lines.get(), by_batch.get()}) submit_or_fail(*e, a_plugged_session());
  // 60 quarter hours: peak and off-peak on the premise's tariff, night on the PEV's, two local days.
  const std::vector<interval_reading> readings = quarter_hours(60);
  std::vector<command> lines;
  for (const interval_reading& r : readings)
    lines.push_back({"i" + std::to_string(lines.size()), at(5, 12h),
                     cmd::meter_interval{"m1", "s1", r.start, r.seconds, r.wh, r.register_wh}});
  submit_or_fail(*by_lines, lines);
  const command_outcome o = submit_one(*by_batch, encode(batch_of("b1", readings)));
  EXPECT_EQ(o.what, command_outcome::kind::accepted) << o.refusal.message();
  for (engine* e : {by_lines.get(), by_batch.get()}) submit_or_fail(*e, {{"u1", at(6, 0h), cmd::session_unplug{"s1"}}});

  const json bill = json::parse(bill_of(*by_batch));
  // The PEV's tariff charged, the premise's credited, each in more than one window.
  EXPECT_NE(bill["total_micro"].get<std::int64_t>(), 0);
  EXPECT_GE(bill["lines"].size(), 4u) << bill.dump();
  EXPECT_EQ(bill_of(*by_batch), bill_of(*by_lines));
  EXPECT_EQ(by_batch->session("s1").value(), by_lines->session("s1").value());
  EXPECT_EQ(by_batch->balance("a1").value(), by_lines->balance("a1").value());
}

TEST(interval_batch, a_batch_is_applied_once_and_whole_or_not_at_all) {
  testing::temp_dir dir;
  auto e = open_or_fail(dir.file("db"));
  submit_or_fail(*e, a_plugged_session());
  const auto first = encode(batch_of("b1", quarter_hours(4)));
  ASSERT_EQ(submit_one(*e, first).what, command_outcome::kind::accepted);
  const std::string billed = bill_of(*e);

  // Its id again, whatever it holds: a duplicate, never billed twice.
  EXPECT_EQ(submit_one(*e, first).what, command_outcome::kind::duplicate);
  EXPECT_EQ(submit_one(*e, encode(batch_of("b1", quarter_hours(2, 10)))).what, command_outcome::kind::duplicate);
  // A new id with readings all recorded: a duplicate too.
  EXPECT_EQ(submit_one(*e, encode(batch_of("b2", quarter_hours(3, 1)))).what, command_outcome::kind::duplicate);
  EXPECT_EQ(bill_of(*e), billed);

  // A new reading and one that conflicts with a recorded one: refused whole, the new one unrecorded.
  std::vector<interval_reading> mixed = quarter_hours(1, 2);
  mixed[0].wh += 1;
  const auto more = quarter_hours(1, 8);
  mixed.insert(mixed.end(), more.begin(), more.end());
  const command_outcome conflict = submit_one(*e, encode(batch_of("b3", mixed)));
  EXPECT_EQ(conflict.what, command_outcome::kind::refused);
  EXPECT_EQ(conflict.refusal.code(), errc::interval_conflict);
  EXPECT_EQ(bill_of(*e), billed);
  const json session = json::parse(e->session("s1").value());
  EXPECT_NE(session.dump().find("interval_conflict"), std::string::npos) << "auditors see the second version";

  // The refused id was not taken: the device sends its batch again, corrected.
  EXPECT_EQ(submit_one(*e, encode(batch_of("b3", quarter_hours(3, 4)))).what, command_outcome::kind::accepted);
  EXPECT_NE(bill_of(*e), billed);
}

// Readings that overlap each other in one batch, and a batch over readings recorded by lines: the
// same anomalies, duplicates and bill as the lines of the same readings.
TEST(interval_batch, overlaps_and_readings_recorded_by_lines_meet_the_rules_of_lines) {
  testing::temp_dir dir;
  auto by_lines = open_or_fail(dir.file("lines"));
  auto by_batch = open_or_fail(dir.file("batch"));
  for (engine* e : {by_lines.get(), by_batch.get()}) submit_or_fail(*e, a_plugged_session());
  std::vector<interval_reading> readings = quarter_hours(6);
  readings[3].seconds = 1800;  // overlaps the reading after it
  auto line_of = [&](std::size_t i) {
    const interval_reading& r = readings[i];
    return command{"i" + std::to_string(i), at(5, 12h), cmd::meter_interval{"m1", "s1", r.start, r.seconds, r.wh, r.register_wh}};
  };
  std::vector<command> all, first_two;
  for (std::size_t i = 0; i < readings.size(); ++i) all.push_back(line_of(i));
  first_two = {line_of(0), line_of(1)};
  submit_or_fail(*by_lines, all);
  submit_or_fail(*by_batch, first_two);  // recorded by lines; the batch then repeats them
  EXPECT_EQ(submit_one(*by_batch, encode(batch_of("b1", readings))).what, command_outcome::kind::accepted);
  const json session = json::parse(by_batch->session("s1").value());
  EXPECT_NE(session.dump().find("interval_overlap"), std::string::npos) << session.dump();
  EXPECT_EQ(session["intervals"], 6);
  EXPECT_EQ(session["duplicates"], 2);
  // The lines' engine saw no repeats: the same session but for those two duplicates.
  json lines_session = json::parse(by_lines->session("s1").value());
  EXPECT_EQ(lines_session["duplicates"], 0);
  lines_session["duplicates"] = 2;
  EXPECT_EQ(session, lines_session);
  EXPECT_EQ(bill_of(*by_batch), bill_of(*by_lines));
}

TEST(interval_batch, a_mixed_call_decides_each_batch_on_its_own) {
  testing::temp_dir dir;
  auto e = open_or_fail(dir.file("db"));
  submit_or_fail(*e, a_plugged_session());
  interval_batch unknown = batch_of("b2", quarter_hours(2, 10));
  unknown.device = "nope";
  const std::vector<std::vector<std::uint8_t>> batches = {
      encode(batch_of("b1", quarter_hours(2))), {1, 2, 3}, encode(unknown), encode(batch_of("b3", quarter_hours(2, 4)))};
  const auto out = submit_batches(*e, batches);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].what, command_outcome::kind::accepted);
  EXPECT_EQ(out[1].refusal.code(), errc::invalid_field);
  EXPECT_EQ(out[2].refusal.code(), errc::unknown_device);
  EXPECT_EQ(out[3].what, command_outcome::kind::accepted);
  EXPECT_EQ(json::parse(e->session("s1").value())["intervals"], 4);
}

TEST(interval_batch, bad_bytes_and_broken_rules_are_refused_with_a_stable_code) {
  testing::temp_dir dir;
  auto e = open_or_fail(dir.file("db"));
  submit_or_fail(*e, a_plugged_session());
  const std::string before = e->session("s1").value();
  auto code_of = [&](const std::vector<std::uint8_t>& bytes) {
    const command_outcome o = submit_one(*e, bytes);
    EXPECT_EQ(o.what, command_outcome::kind::refused);
    return o.refusal.code();
  };
  auto code_of_batch = [&](const interval_batch& b) { return code_of(encode(b)); };
  const auto valid = encode(batch_of("ok", quarter_hours(3)));

  EXPECT_EQ(code_of({}), errc::invalid_field);
  std::vector<std::uint8_t> cut(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(valid.size() / 2));
  EXPECT_EQ(code_of(cut), errc::invalid_field) << "a batch cut mid-way";
  std::vector<std::uint8_t> other = valid;
  other[4] = 'X';
  EXPECT_EQ(code_of(other), errc::invalid_field) << "another file identifier";
  EXPECT_EQ(code_of(std::vector<std::uint8_t>((256u << 10) + 1, 0)), errc::invalid_field) << "oversize";

  auto broken = [&](auto change) {
    interval_batch b = batch_of("x", quarter_hours(3));
    change(b);
    return code_of_batch(b);
  };
  EXPECT_EQ(broken([](interval_batch& b) { b.id.clear(); }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.id = std::string(257, 'i'); }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.session = "s\x01"; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.device = "\xff\xfe"; }), errc::invalid_field) << "not UTF-8";
  EXPECT_EQ(broken([](interval_batch& b) { b.at = sys_seconds(0s); }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings.clear(); }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings = quarter_hours(4097); }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { std::swap(b.readings[0], b.readings[1]); }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[1].start = b.readings[0].start; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[2].seconds = 0; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[2].seconds = 86401; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[2].seconds = std::int64_t{1} << 32; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[0].wh = -1; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[0].wh = 1'000'000'001; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.readings[0].register_wh = -5; }), errc::invalid_field);
  EXPECT_EQ(broken([](interval_batch& b) { b.session = "s9"; }), errc::unknown_session);
  EXPECT_EQ(broken([](interval_batch& b) { b.id = std::string("b\0x", 3); }), errc::invalid_field)
      << "an id holding a NUL is refused whole, never cut at the NUL";

  // Fields left out: missing_field, naming the batch once its id is readable.
  auto without = [&](bool id, bool device, bool session, bool readings) {
    flatbuffers::FlatBufferBuilder fbb;
    const std::vector<wire::IntervalRow> rows = {{at(4, 16h).time_since_epoch().count(), 100, 0, 900, false}};
    const auto i = id ? fbb.CreateString("lacking") : flatbuffers::Offset<flatbuffers::String>();
    const auto d = device ? fbb.CreateString("m1") : flatbuffers::Offset<flatbuffers::String>();
    const auto s = session ? fbb.CreateString("s1") : flatbuffers::Offset<flatbuffers::String>();
    const auto r = readings ? fbb.CreateVectorOfStructs(rows) : flatbuffers::Offset<flatbuffers::Vector<const wire::IntervalRow*>>();
    wire::FinishIntervalBatchBuffer(fbb, wire::CreateIntervalBatch(fbb, i, at(5, 0h).time_since_epoch().count(), d, s, r));
    return submit_batches(*e, {std::vector<std::uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize())})
        .at(0);
  };
  EXPECT_EQ(without(false, true, true, true).refusal.code(), errc::missing_field);
  const command_outcome no_readings = without(true, true, true, false);
  EXPECT_EQ(no_readings.refusal.code(), errc::missing_field);
  EXPECT_NE(no_readings.refusal.message().find("readings"), std::string::npos);
  EXPECT_EQ(without(true, false, true, true).refusal.code(), errc::missing_field);
  EXPECT_EQ(without(true, true, false, true).refusal.code(), errc::missing_field);

  EXPECT_EQ(e->session("s1").value(), before) << "nothing refused left a trace";
  EXPECT_EQ(without(true, true, true, true).what, command_outcome::kind::accepted) << "the control: all there";

  // Random damage to a valid batch: refused with a code of the batch's rules, or decided; never a
  // crash, and the engine answers after it.
  const std::set<errc> batch_codes = {errc::invalid_field, errc::missing_field,   errc::unknown_device,
                                      errc::not_eumd,      errc::unknown_session, errc::device_mismatch,
                                      errc::interval_conflict};
  std::mt19937 rng(11);
  int refused = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<std::uint8_t> damaged = valid;
    for (int k = 0; k < 3; ++k) damaged[rng() % damaged.size()] = static_cast<std::uint8_t>(rng());
    const command_outcome o = submit_one(*e, damaged);
    if (o.what == command_outcome::kind::refused) {
      ++refused;
      EXPECT_EQ(batch_codes.count(o.refusal.code()), 1u) << o.refusal.message();
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_TRUE(json::parse(e->session("s1").value()).is_object());
}

TEST(interval_batch, batches_are_durable_and_replay_verifies) {
  testing::temp_dir dir;
  const std::string db = dir.file("db");
  std::string billed;
  {
    auto e = engine::open(db);
    ASSERT_TRUE(e) << e.error().describe();
    submit_or_fail(*e.value(), a_plugged_session());
    ASSERT_EQ(submit_one(*e.value(), encode(batch_of("b1", quarter_hours(40)))).what, command_outcome::kind::accepted);
    billed = bill_of(*e.value());
  }
  auto again = engine::open(db);
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_EQ(bill_of(*again.value()), billed);
  again.value().reset();
  const auto replay = testing::run_pevledger("replay --verify --db " + db);
  EXPECT_EQ(replay.exit_code, 0) << replay.out << replay.err;
}

// A small fleet from the repository's generator: every run of consecutive interval lines of one
// EUMD and session goes as one batch. Bills, balances and sessions come out as the lines give them,
// also when the batches' engine keeps two entities resident (passivating at each group's end) and
// closes a group every seven readings.
TEST(interval_batch, a_fleet_through_batches_bills_as_through_lines) {
  testing::temp_dir dir;
  const std::string fleet = dir.file("fleet.jsonl");
  const std::string gen = std::string(PEVLEDGER_FLEET_GEN) + " --seed 5 --premises-per-utility 4 --days 12 >" + fleet;
  ASSERT_EQ(std::system(gen.c_str()), 0);
  auto by_lines = open_or_fail(dir.file("lines"));
  engine_options bounded;
  bounded.resident_entities_max = 2;
  bounded.group_lines = 7;
  auto by_batch = open_or_fail(dir.file("batch"), bounded);
  {
    std::ifstream in(fleet);
    ASSERT_TRUE(by_lines->ingest(in, {}));
  }
  std::ifstream in(fleet);
  std::string text;                // non-interval lines waiting to be ingested
  std::optional<interval_batch> run;  // interval lines waiting as one batch
  std::vector<std::string> accounts, sessions;
  std::size_t batches = 0, readings = 0;
  auto flush_text = [&] {
    std::istringstream lines(text);
    ASSERT_TRUE(by_batch->ingest(lines, {}));
    text.clear();
  };
  auto flush_run = [&] {
    if (!run) return;
    const command_outcome o = submit_one(*by_batch, encode(*run));
    EXPECT_NE(o.what, command_outcome::kind::refused) << o.refusal.message();
    ++batches;
    readings += run->readings.size();
    run.reset();
  };
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    const std::string type = j["type"];
    if (type == "account.open") accounts.push_back(j["account"]);
    if (type == "session.plug" || type == "session.start") sessions.push_back(j["session"]);
    if (type != "meter.interval") {
      flush_run();
      text += line + "\n";
      continue;
    }
    if (!text.empty()) flush_text();
    auto time_of = [](const json& t) {
      return sys_seconds(seconds(parse_timestamp(t.get<std::string>()).value().value()));
    };
    const interval_reading r{time_of(j["start"]), j["seconds"], j["wh"],
                             j.contains("register_wh") ? std::optional<std::int64_t>(j["register_wh"]) : std::nullopt};
    if (run && (run->device != j["device"] || run->session != j["session"] || run->readings.back().start >= r.start))
      flush_run();
    if (!run) run = interval_batch{j["id"], time_of(j["at"]), j["device"], j["session"], {}};
    run->readings.push_back(r);
  }
  flush_run();
  if (!text.empty()) flush_text();
  ASSERT_GT(batches, 100u);
  ASSERT_GT(readings, batches) << "some batches carry several readings";
  ASSERT_GT(accounts.size(), 5u);
  for (const std::string& a : accounts) {
    EXPECT_EQ(by_batch->balance(a).value(), by_lines->balance(a).value()) << a;
    for (const char* period : {"2024-02", "2024-03", "2024-04"}) {
      auto x = by_batch->bill(a, period), y = by_lines->bill(a, period);
      ASSERT_EQ(x.has_value(), y.has_value());
      if (x) {
        EXPECT_EQ(x.value(), y.value()) << a << " " << period;
      }
    }
  }
  for (const std::string& s : sessions) EXPECT_EQ(by_batch->session(s).value(), by_lines->session(s).value()) << s;
  for (const char* period : {"2024-02", "2024-03"})
    EXPECT_EQ(by_batch->settlement(period).value(), by_lines->settlement(period).value()) << period;
  EXPECT_GT(by_batch->residency().passivations, 0u);
}

}  // namespace
}  // namespace pevledger
