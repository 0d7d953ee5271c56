// Residency and snapshots (docs/design.md, "Residency"): entity snapshots keep every field and
// refuse corrupt bytes; an engine keeps no more entities resident than its bound, yet answers as
// one that keeps everything; replay from snapshots equals replay from zero, also at a past point.

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/entity_table.hpp"
#include "core/ledger_state.hpp"
#include "core/snapshot_codec.hpp"
#include "pevledger/engine.hpp"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

using json = nlohmann::json;
using testing::run_pevledger;
namespace fb = pevledger::schema;

core::session_state rich_session() {
  core::session_state s;
  s.premise = "p1";
  s.utility = "u1";
  s.eumd = "m1";
  s.began = unix_seconds(1'709'251'200);
  s.bound = true;
  s.bound_pev = "1HG8NAW39M673BW7N";
  core::session_decision d;
  d.payer = fb::Payer::pev_account;
  d.reason = fb::FallbackReason::none;
  d.pev = s.bound_pev;
  d.payer_account = "a-home";
  d.tariff = "ev";
  d.roaming = true;
  d.reserved_micro = 5'000'000;
  s.decision = d;
  s.reading_devices = {"m1", "m2"};
  s.readings.push_back({1'709'251'200, 1250, 88'001, 900, 0});
  s.readings.push_back({1'709'252'100, -0, std::nullopt, 900, 0});
  s.readings.push_back({1'709'253'000, 77, 5, 300, 1});
  s.held = {1'709'252'100};
  s.eumd_wh = 1250;
  s.duplicates = 3;
  s.anomalies.push_back({fb::AnomalyKind::register_mismatch, unix_seconds(1'709'251'200), 10, -7, "detail"});
  s.pev_total_wh = 1300;
  s.grants.push_back({7000, unix_seconds(1'709'280'000), unix_seconds(1'709'252'000), std::int64_t{-42}});
  return s;
}

TEST(snapshot_codec, a_session_survives_the_round_trip_field_by_field) {
  const core::session_state s = rich_session();
  const std::string bytes = core::encode_snapshot(s);
  core::session_state back;
  ASSERT_TRUE(core::decode_snapshot(bytes, back).is_ok());
  EXPECT_EQ(core::encode_snapshot(back), bytes);
  EXPECT_EQ(back.bound_pev, s.bound_pev);
  ASSERT_TRUE(back.decision.has_value());
  EXPECT_EQ(back.decision->payer, fb::Payer::pev_account);
  EXPECT_TRUE(back.decision->roaming);
  EXPECT_EQ(back.decision->reserved_micro, 5'000'000);
  EXPECT_EQ(back.reading_devices, s.reading_devices);
  EXPECT_EQ(back.readings, s.readings);
  EXPECT_EQ(back.held, s.held);
  EXPECT_EQ(back.duplicates, 3u);
  ASSERT_EQ(back.anomalies.size(), 1u);
  EXPECT_EQ(back.anomalies[0].observed_wh, -7);
  EXPECT_EQ(back.grants.at(0).price, -42);
  EXPECT_EQ(back.pev_total_wh, 1300);
}

// Version 1 repeated the EUMD and the session in every reading; databases written by it still open.
TEST(snapshot_codec, a_version_1_session_reads_as_the_compact_readings) {
  // rich_session() as version 1 encoded it, written by that encoder.
  const std::string hex =
      "01027031027531026d310080ea88de0c0000000111314847384e415733394d3637334257374e0001000011314847384e415733394d3637"
      "334257374e06612d686f6d65000265760000000180ade204000380ea88de0c026d3180ea88de0c027331880ec4130182df0a88f888de0c"
      "026d3188f888de0c027331880e0000908689de0c026d32908689de0c027331d8049a01010a0188f888de0cc41303010480ea88de0c140d"
      "0664657461696c01a81401b06d80ac8cde0cc0f688de0c0153";
  std::string v1;
  for (std::size_t i = 0; i < hex.size(); i += 2) v1.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  core::session_state back;
  ASSERT_TRUE(core::decode_snapshot(v1, back).is_ok());
  const core::session_state s = rich_session();
  EXPECT_EQ(back.reading_devices, s.reading_devices);
  EXPECT_EQ(back.readings, s.readings);
  EXPECT_EQ(back.held, s.held);
  EXPECT_EQ(back.grants.at(0).price, -42);
  // Written again, it is the current encoding of the same state.
  EXPECT_EQ(core::encode_snapshot(back), core::encode_snapshot(s));
}

TEST(snapshot_codec, readings_out_of_order_or_naming_no_device_are_refused) {
  for (int broken = 0; broken < 2; ++broken) {
    core::session_state s = rich_session();
    if (broken == 0) std::swap(s.readings[0], s.readings[1]);
    else s.readings[2].device = 2;
    core::session_state back;
    EXPECT_EQ(core::decode_snapshot(core::encode_snapshot(s), back).code(), errc::corruption) << broken;
  }
}

TEST(snapshot_codec, an_account_and_a_utility_survive_the_round_trip) {
  core::account_state a;
  a.utility = "u1";
  a.kind = fb::AccountKind::prepaid;
  a.topups_micro = 9'000'000'000;
  a.posted_micro = -12;
  a.reservations["s1"] = 5'000'000;
  a.lines[24 * 2024 + 2][{"s1", fb::LineKind::adjustment, "ev", "peak", fb::LineKind::credit, 24 * 2024 + 1}] = {
      -300, -51'000};
  a.bills[24 * 2024 + 1] = {123, 0, 4};
  const std::string bytes = core::encode_snapshot(a);
  core::account_state back;
  ASSERT_TRUE(core::decode_snapshot(bytes, back).is_ok());
  EXPECT_EQ(core::encode_snapshot(back), bytes);
  EXPECT_EQ(back.available_micro(), a.available_micro());
  EXPECT_EQ(back.lines.at(24 * 2024 + 2).begin()->second.amount_micro, -51'000);

  core::utility_state u;
  u.timezone = "Europe/Helsinki";
  u.zone = std::make_shared<const core::zone_rules>(
      core::zone_rules::from_transitions({{core::zone_rules::first_at, 7200}, {1'000, 10'800}}).value());
  u.tariffs["tou"].versions.push_back({unix_seconds(5), fb::TariffKind::tou, 220'000,
                                       {{"peak", 0x1f, 960, 1260, 480'000}}, std::int64_t{950'000}});
  u.tariffs["rtp"].hourly[3600] = 7;
  u.accounts = {"a2", "a1"};
  u.undecided_sessions = {"s9"};
  u.billed_periods = {24 * 2024};
  const std::string ubytes = core::encode_snapshot(u);
  core::utility_state uback;
  ASSERT_TRUE(core::decode_snapshot(ubytes, uback).is_ok());
  EXPECT_EQ(core::encode_snapshot(uback), ubytes);
  ASSERT_NE(uback.zone, nullptr);  // the table is stored, not looked up again
  EXPECT_EQ(*uback.zone, *u.zone);
  EXPECT_EQ(uback.accounts, u.accounts);
  EXPECT_EQ(uback.tariffs.at("tou").versions.at(0).windows.at(0).price, 480'000);
}

TEST(snapshot_codec, corrupt_snapshots_are_refused_not_trusted) {
  const std::string bytes = core::encode_snapshot(rich_session());
  core::session_state out;
  EXPECT_EQ(core::decode_snapshot(bytes.substr(0, bytes.size() - 1), out).code(), errc::corruption);
  EXPECT_EQ(core::decode_snapshot(bytes + "x", out).code(), errc::corruption);
  EXPECT_EQ(core::decode_snapshot("", out).code(), errc::corruption);
  std::string other_version = bytes;
  other_version[0] = 9;
  EXPECT_EQ(core::decode_snapshot(other_version, out).code(), errc::corruption);
  // A device's kind outside the enum.
  core::device_state d{"p1", fb::DeviceKind::eumd, 900};
  std::string dbytes = core::encode_snapshot(d);
  dbytes[1 + 1 + 2] = 0x7e;  // version, length of "p1", "p1", then the kind
  core::device_state dout;
  EXPECT_EQ(core::decode_snapshot(dbytes, dout).code(), errc::corruption);
}

TEST(snapshot_codec, an_eumds_open_sessions_round_trip_and_a_version_2_device_has_none) {
  core::device_state d{"p1", fb::DeviceKind::eumd, 900, {"s1", "s2"}};
  core::device_state back;
  ASSERT_TRUE(core::decode_snapshot(core::encode_snapshot(d), back).is_ok());
  EXPECT_EQ(back.open_sessions, d.open_sessions);
  EXPECT_EQ(back.premise, "p1");
  // Version 2 wrote a device's premise, kind and interval length, and nothing after them.
  d.open_sessions.clear();
  std::string v2 = core::encode_snapshot(d);
  ASSERT_EQ(v2.back(), '\0') << "an empty set is one length byte";
  v2.pop_back();
  v2[0] = 2;
  back.open_sessions = {"stale"};
  ASSERT_TRUE(core::decode_snapshot(v2, back).is_ok());
  EXPECT_TRUE(back.open_sessions.empty());
  EXPECT_EQ(back.interval_s, 900);
}

// A small fleet (three utilities, 17 accounts, guests, roaming, stations, bill runs) from the
// repository's seeded generator, made once per run of this test program.
std::string sample_path() {
  static const testing::temp_dir dir;
  static const std::string path = [] {
    const std::string out = dir.file("fleet.jsonl");
    const std::string cmd =
        std::string(PEVLEDGER_FLEET_GEN) + " --seed 3 --premises-per-utility 4 --days 10 >" + out;
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("fleet_gen failed");
    return out;
  }();
  return path;
}

std::vector<std::string> sample_accounts() {
  std::ifstream in(sample_path());
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("type", "") == "account.open" && j.contains("account") && j["account"].is_string())
      out.push_back(j["account"]);
  }
  return out;
}

TEST(entity_table, a_parked_entity_comes_back_as_it_was_until_its_group_is_durable) {
  core::entity_table<core::account_state> accounts("account");
  accounts.create("a1", core::account_state{}).topups_micro = 7;
  accounts.create("a2", core::account_state{});
  accounts.resident("a1")->meta.stream_seq = 5;
  accounts.park("a1", /*group=*/1);
  accounts.park("a2", /*group=*/1);
  EXPECT_EQ(accounts.resident("a1"), nullptr);
  EXPECT_EQ(accounts.parked_count(), 2u);

  // Unparked in the next group, state and stream position intact, then parked again for group 2.
  ASSERT_TRUE(accounts.unpark("a1"));
  EXPECT_FALSE(accounts.unpark("a1"));
  ASSERT_NE(accounts.resident("a1"), nullptr);
  EXPECT_EQ(accounts.resident("a1")->state.topups_micro, 7);
  EXPECT_EQ(accounts.resident("a1")->meta.stream_seq, 5u);
  accounts.park("a1", /*group=*/2);

  // Group 1 durable: a2 leaves; a1 waits for group 2, although group 1 parked it first.
  accounts.release_parked(1);
  EXPECT_EQ(accounts.parked_count(), 1u);
  EXPECT_FALSE(accounts.unpark("a2"));
  accounts.release_parked(2);
  EXPECT_EQ(accounts.parked_count(), 0u);
  EXPECT_FALSE(accounts.unpark("a1"));
}

TEST(residency, a_bounded_engine_answers_like_one_that_keeps_everything) {
  testing::temp_dir dir;
  engine_options bounded;
  bounded.resident_entities_max = 3;
  bounded.group_lines = 5;
  auto small = engine::open(dir.file("small"), bounded);
  auto large = engine::open(dir.file("large"));
  ASSERT_TRUE(small && large);
  for (auto* e : {&small.value(), &large.value()}) {
    std::ifstream in(sample_path());
    ASSERT_TRUE(in);
    auto summary = (*e)->ingest(in, [](const line_refusal&) {});
    ASSERT_TRUE(summary) << summary.error().describe();
  }
  const residency_stats stats = small.value()->residency();
  EXPECT_LE(stats.resident_entities, 3u);
  EXPECT_GT(stats.passivations, 0u);
  EXPECT_GT(stats.activations, 0u);
  const auto accounts = sample_accounts();
  ASSERT_GT(accounts.size(), 3u);
  for (const auto& account : accounts) {
    for (const char* period : {"2024-01", "2024-02", "2024-03", "2024-04"}) {
      auto a = small.value()->bill(account, period), b = large.value()->bill(account, period);
      ASSERT_EQ(a.has_value(), b.has_value()) << account;
      if (a) {
        EXPECT_EQ(a.value(), b.value()) << account << " " << period;
      }
    }
    auto a = small.value()->balance(account), b = large.value()->balance(account);
    ASSERT_EQ(a.has_value(), b.has_value());
    if (a) {
      EXPECT_EQ(a.value(), b.value()) << account;
    }
  }
  for (const char* period : {"2024-01", "2024-02", "2024-03"}) {
    EXPECT_EQ(small.value()->period_report(period).value(), large.value()->period_report(period).value());
    EXPECT_EQ(small.value()->settlement(period).value(), large.value()->settlement(period).value());
  }
}

// Whatever is resident, prefetch brings in what decide reads, so the decisions, and with them the
// log, are the same byte for byte: one resident entity against the default, on a month of a fleet
// with guests, roaming, stations, cards, SMS starts, prepaid accounts and bill and settlement runs.
TEST(residency, one_resident_entity_writes_the_log_that_keeping_everything_writes) {
  testing::temp_dir dir;
  const std::string month = dir.file("month.jsonl");
  const std::string generate =
      std::string(PEVLEDGER_FLEET_GEN) + " --seed 11 --premises-per-utility 40 --month 2024-03 >" + month;
  ASSERT_EQ(std::system(generate.c_str()), 0);
  std::vector<std::string> heads;
  for (const std::string resident : {"200000", "1"}) {
    const std::string db = dir.file("db-" + resident);
    const auto ingest =
        run_pevledger("ingest --db " + db + " --quiet --group-lines 512 --resident-entities " + resident + " " + month);
    ASSERT_EQ(ingest.exit_code, 0) << resident << ": " << ingest.err;
    const auto stats = json::parse(run_pevledger("stats --db " + db + " --format json").out);
    EXPECT_GT(stats["records"].get<std::uint64_t>(), 30000u);
    heads.push_back(stats["last_hash"].get<std::string>());
  }
  EXPECT_EQ(heads[0], heads[1]) << "one resident entity decided the month differently";
}

std::string digest_of(const std::string& args) {
  auto r = run_pevledger(args + " --format json");
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  return json::parse(r.out, nullptr, false).value("digest", std::string("(none)"));
}

TEST(residency, replay_from_snapshots_equals_replay_from_zero_at_every_point) {
  testing::temp_dir dir;
  const std::string db = dir.file("db");
  auto ingest = run_pevledger("ingest --db " + db + " --resident-entities 2 " + sample_path());
  ASSERT_TRUE(ingest.exit_code == 0 || ingest.exit_code == 3) << ingest.err;
  auto exported = run_pevledger("export --db " + db);
  ASSERT_EQ(exported.exit_code, 0);
  std::uint64_t records = 0;
  std::istringstream lines(exported.out);
  for (std::string line; std::getline(lines, line);) ++records;
  ASSERT_GT(records, 100u);
  const std::string base = "replay --db " + db;
  EXPECT_EQ(digest_of(base + " --verify"), digest_of(base + " --from-snapshots"));
  for (std::uint64_t until : {records / 3, records / 2, records - 7})
    EXPECT_EQ(digest_of(base + " --until " + std::to_string(until)),
              digest_of(base + " --from-snapshots --until " + std::to_string(until)))
        << "until " << until;
  EXPECT_EQ(digest_of(base + " --until 2024-03-05T00:00:00Z"),
            digest_of(base + " --from-snapshots --until 2024-03-05T00:00:00Z"));
}

}  // namespace
}  // namespace pevledger
