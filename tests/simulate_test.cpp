// `pevledger simulate` against `pevledger serve`: a fleet's month through the device gateway, with
// resends, connections dropped before their ack, EUMD restarts and reconnects, gives the same
// bills, balances, sessions, settlement and report as its `--record` file fed to `pevledger
// ingest`; and the record holds every line of the fleet, each decided once.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "pevledger/engine.hpp"
#include "tests/served.hpp"
#include "tests/test_support.hpp"

namespace pevledger {
namespace {

using json = nlohmann::json;

std::unique_ptr<engine> reader(const std::string& db) {
  engine_options options;
  options.read_only = true;
  auto e = engine::open(db, options);
  if (!e) throw std::runtime_error(e.error().describe());
  return std::move(e.value());
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(simulate, a_fleet_through_the_gateway_bills_as_its_record_through_ingest) {
  testing::temp_dir dir;
  const std::string served_db = dir.file("served"), ingested_db = dir.file("ingested");
  const std::string key = dir.file("operator.key"), record = dir.file("record.jsonl");
  testing::write_file(key, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
  const std::string fleet = "--seed 11 --days 10";

  testing::served server(served_db, {"--operator-key", key, "--clock", "back-office"});
  const auto simulated = testing::run_pevledger("simulate --format json --connect 127.0.0.1:" +
                                                std::to_string(server.port()) + " --operator-key " + key +
                                                " --premises 90 --connections 4 --record " + record + " " + fleet);
  ASSERT_EQ(simulated.exit_code, 0) << simulated.err;
  const json summary = json::parse(simulated.out);
  const auto [code, served_summary] = server.stop();
  ASSERT_EQ(code, 0);
  EXPECT_EQ(served_summary["frame_errors"], 0);

  // The faults happened, and the gateway answered every frame a connection kept.
  EXPECT_GT(summary["faults"]["resends"].get<int>(), 0) << summary;
  EXPECT_GT(summary["faults"]["drops"].get<int>(), 0) << summary;
  EXPECT_GT(summary["faults"]["restarts"].get<int>(), 0) << summary;
  EXPECT_GT(summary["batch_frames"].get<int>(), 0);
  EXPECT_EQ(summary["accepted"].get<int>() + summary["duplicates"].get<int>() + summary["refused"].get<int>(),
            summary["frames"].get<int>() - summary["faults"]["drops"].get<int>());
  EXPECT_EQ(served_summary["accepted"].get<int>() + served_summary["duplicates"].get<int>() +
                served_summary["refused"].get<int>(),
            summary["frames"].get<int>());
  // The fleet's never-bound sessions and late binds: the gateway's timer decided them, and told
  // the back office; every energy request got its grant.
  EXPECT_GT(summary["timeouts"].get<int>(), 0) << summary;
  EXPECT_EQ(summary["timeouts"], served_summary["timeouts"]);
  EXPECT_GT(summary["clock_frames"].get<int>(), 0);
  EXPECT_GT(summary["grants"].get<int>(), 0);
  EXPECT_GT(summary["keys"].get<int>(), 0) << "set-up devices sign their frames";

  // The record holds each line of the fleet, and nothing else (lines resent by a restarted EUMD
  // are there again, as duplicates).
  const std::vector<std::string> recorded = lines_of(testing::detail::slurp(record));
  EXPECT_EQ(recorded.size(), summary["recorded"].get<std::size_t>());
  std::set<std::string> fleet_lines;
  {
    const std::string out = dir.file("fleet.jsonl");
    ASSERT_EQ(std::system((std::string(PEVLEDGER_FLEET_GEN) + " --premises-per-utility 30 --charging-profiles on " + fleet + " > " + out).c_str()),
              0);
    for (const std::string& line : lines_of(testing::detail::slurp(out))) fleet_lines.insert(line);
  }
  std::set<std::string> first_sent;
  std::size_t sent_again = 0, timeouts = 0, configures = 0;
  // A reconfigured EUMD's 5-minute readings: "<line id>#<k>", put back together into the fleet's line.
  std::map<std::string, std::vector<nlohmann::ordered_json>> parts;
  auto rejoined = [](const std::vector<nlohmann::ordered_json>& readings, const std::string& id) {
    nlohmann::ordered_json whole = readings.front();
    whole["id"] = id;
    std::int64_t wh = 0, seconds = 0;
    for (const auto& r : readings) {
      wh += r["wh"].get<std::int64_t>();
      seconds += r["seconds"].get<std::int64_t>();
    }
    whole["seconds"] = seconds;
    whole["wh"] = wh;
    if (whole.contains("register_wh")) whole["register_wh"] = readings.back()["register_wh"];
    return whole.dump();
  };
  for (const std::string& line : recorded) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(line);
    const std::string id = j["id"];
    if (j["type"] == "session.timeout") {  // the gateway's own decision, not a fleet line
      ++timeouts;
      EXPECT_EQ(id, "timeout:" + j["session"].get<std::string>());
    } else if (j["type"] == "device.configure") {  // the back office's fault, not a fleet line
      ++configures;
      EXPECT_EQ(id.rfind("configure-", 0), 0u) << line;
      EXPECT_EQ(j["interval_s"], 300) << line;
    } else if (id[0] == 'r') {  // a restarted EUMD's resend: "r<n>-<batch id>.<line id>", a fleet line under a new id
      ++sent_again;
      j["id"] = id.substr(id.find('.') + 1);
      if (j["id"].get<std::string>().find('#') == std::string::npos) {
        EXPECT_EQ(fleet_lines.count(j.dump()), 1u) << line;
      }
    } else if (const auto hash = id.find('#'); hash != std::string::npos) {
      EXPECT_EQ(j["seconds"], 300) << line;
      parts[id.substr(0, hash)].push_back(j);
    } else {
      first_sent.insert(line);
    }
  }
  for (const auto& [id, readings] : parts) {
    ASSERT_EQ(readings.size() % 3, 0u) << id;  // three for each time the line was sent and applied
    std::vector<nlohmann::ordered_json> once(readings.begin(), readings.begin() + 3);
    first_sent.insert(rejoined(once, id));
  }
  EXPECT_GT(sent_again, 0u);
  EXPECT_EQ(timeouts, summary["timeouts"].get<std::size_t>());
  EXPECT_EQ(configures, summary["faults"]["reconfigures"].get<std::size_t>());
  EXPECT_GT(configures, 0u) << summary;
  EXPECT_GT(summary["faults"]["configures_heard"].get<int>(), 0) << summary;
  EXPECT_GT(parts.size(), 0u) << "a reconfigured EUMD reports every 5 minutes";
  EXPECT_EQ(first_sent, fleet_lines);

  const auto ingested = testing::run_pevledger("ingest --db " + ingested_db + " " + record);
  ASSERT_TRUE(ingested.exit_code == 0 || ingested.exit_code == 3) << ingested.err;

  auto served_engine = reader(served_db);
  auto ingested_engine = reader(ingested_db);
  std::size_t accounts = 0, sessions = 0;
  for (const std::string& line : fleet_lines) {
    const json j = json::parse(line);
    const std::string type = j["type"];
    if (type == "account.open") {
      const std::string account = j["account"];
      ++accounts;
      EXPECT_EQ(served_engine->bill(account, "2024-03").value(), ingested_engine->bill(account, "2024-03").value())
          << account;
      EXPECT_EQ(served_engine->balance(account).value(), ingested_engine->balance(account).value()) << account;
    } else if (type == "session.plug" || type == "session.start") {
      const std::string session = j["session"];
      ++sessions;
      const auto s = served_engine->session(session);
      ASSERT_TRUE(s) << session;
      EXPECT_EQ(s.value(), ingested_engine->session(session).value()) << session;
    }
  }
  EXPECT_GT(accounts, 90u);
  EXPECT_GT(sessions, 100u);
  EXPECT_EQ(served_engine->settlement("2024-03").value(), ingested_engine->settlement("2024-03").value());
  EXPECT_EQ(served_engine->period_report("2024-03").value(), ingested_engine->period_report("2024-03").value());
  const json report = json::parse(served_engine->period_report("2024-03").value());
  for (const json& u : report["utilities"]) EXPECT_EQ(u["status"], "issued") << "the bill runs came through the back office";

  const auto replay = testing::run_pevledger("replay --verify --db " + served_db);
  EXPECT_EQ(replay.exit_code, 0) << replay.out << replay.err;
}

// The fleet's charging profiles: every quarter hour a 120 V outlet's (300 to 360 Wh) or a 240 V
// charger's (1,400 to 1,900 Wh), and time-of-use PEVs starting at their utility's local midnight.
TEST(fleet, charging_profiles_give_120_v_and_240_v_sessions_and_night_starts) {
  testing::temp_dir dir;
  const std::string out = dir.file("fleet.jsonl");
  ASSERT_EQ(std::system((std::string(PEVLEDGER_FLEET_GEN) + " --seed 3 --premises-per-utility 20 --days 10 "
                                                            "--charging-profiles on > " + out).c_str()),
            0);
  std::map<std::string, std::string> first_start;  // session -> its earliest interval's start
  std::size_t slow = 0, fast = 0;
  for (const std::string& line : lines_of(testing::detail::slurp(out))) {
    const json j = json::parse(line);
    if (j["type"] != "meter.interval") continue;
    const std::int64_t wh = j["wh"];
    if (j["device"].get<std::string>().find("-st0") != std::string::npos) continue;  // stations charge as before
    EXPECT_TRUE((wh >= 300 && wh <= 360) || (wh >= 1400 && wh <= 1900)) << line;
    (wh <= 360 ? slow : fast) += 1;
    auto& first = first_start[j["session"]];
    if (first.empty() || j["start"].get<std::string>() < first) first = j["start"];
  }
  EXPECT_GT(slow, 0u);
  EXPECT_GT(fast, slow / 4);
  // Local midnight in UTC: Los Angeles (UTC-8 in the generator's plan) 08:00, Helsinki 22:00, Tokyo 15:00.
  std::size_t at_midnight = 0;
  for (const auto& [session, start] : first_start) {
    const std::string clock = start.substr(11, 8);
    at_midnight += clock == "08:00:00" || clock == "22:00:00" || clock == "15:00:00";
  }
  EXPECT_GT(at_midnight, first_start.size() / 10);
}

// Without the operator key, a gateway, or a back office at the gateway, simulate stops with a clear error.
TEST(simulate, a_missing_key_or_gateway_is_a_clear_error) {
  testing::temp_dir dir;
  const auto no_key = testing::run_pevledger("simulate --connect 127.0.0.1:1 --operator-key " + dir.file("none"));
  EXPECT_EQ(no_key.exit_code, 2);
  EXPECT_NE(no_key.err.find("cannot read the key file"), std::string::npos) << no_key.err;
  testing::write_file(dir.file("k"), std::string(64, 'a'));
  const auto no_gateway = testing::run_pevledger("simulate --format json --connect 127.0.0.1:1 --operator-key " + dir.file("k"));
  EXPECT_EQ(no_gateway.exit_code, 2);
  EXPECT_NE(no_gateway.err.find("io_error"), std::string::npos) << no_gateway.err;
  // A gateway without a back office refuses the first signed line, and simulate says so.
  testing::served server(dir.file("db"));
  const auto no_back_office = testing::run_pevledger("simulate --premises 3 --days 4 --connect 127.0.0.1:" +
                                                     std::to_string(server.port()) + " --operator-key " + dir.file("k"));
  EXPECT_EQ(no_back_office.exit_code, 2);
  EXPECT_NE(no_back_office.err.find("unexpected_mac"), std::string::npos) << no_back_office.err;
  // A gateway on the wall clock would time out every plug-in of a past month: simulate refuses it.
  testing::served on_the_wall_clock(dir.file("db2"), {"--operator-key", dir.file("k")});
  const auto wall = testing::run_pevledger("simulate --premises 3 --days 4 --connect 127.0.0.1:" +
                                           std::to_string(on_the_wall_clock.port()) + " --operator-key " + dir.file("k"));
  EXPECT_EQ(wall.exit_code, 2);
  EXPECT_NE(wall.err.find("--clock back-office"), std::string::npos) << wall.err;
}

}  // namespace
}  // namespace pevledger
