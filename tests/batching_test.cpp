// Batched records (engine/record_batcher.hpp): runs of interval and line events on one stream in
// one group commit become one record, every stream keeps its order, and nothing a user or an
// auditor sees changes: the same bills, balances and sessions as one record per event, and a log
// that replays and verifies.

#include <flatbuffers/flatbuffers.h>

#include <map>

#include "engine/record_batcher.hpp"
#include "tests/scenario.hpp"

namespace pevledger {
namespace {

namespace fb = pevledger::schema;
using engine_detail::record_batcher;
using testing::json;
using testing::q;
using testing::scenario;

std::vector<std::uint8_t> finish(flatbuffers::FlatBufferBuilder& fbb, fb::Event type, flatbuffers::Offset<void> table) {
  fbb.Finish(fb::CreateEventBody(fbb, type, table));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

storage::event_to_append reading(const std::string& session, std::int64_t start, std::int64_t wh) {
  flatbuffers::FlatBufferBuilder fbb;
  auto r = fb::CreateIntervalReadingDirect(fbb, "e1", session.c_str(), start, 900, wh);
  return {"session/" + session, finish(fbb, fb::Event::IntervalRecorded, fb::CreateIntervalRecorded(fbb, r).Union())};
}

storage::event_to_append line(const std::string& account, std::int64_t start, std::int64_t amount) {
  flatbuffers::FlatBufferBuilder fbb;
  auto l = fb::CreateLineBookedDirect(fbb, account.c_str(), "u", "2024-03", "s1", fb::LineKind::charge,
                                      fb::LineKind::charge, nullptr, "ev", "flat", 1000, amount, start);
  return {"account/" + account, finish(fbb, fb::Event::LineBooked, l.Union())};
}

storage::event_to_append unplugged(const std::string& session) {
  flatbuffers::FlatBufferBuilder fbb;
  return {"session/" + session,
          finish(fbb, fb::Event::SessionUnplugged, fb::CreateSessionUnpluggedDirect(fbb, session.c_str()).Union())};
}

storage::command_to_append command(const std::string& id, std::vector<storage::event_to_append> events,
                                   bool indexed = true) {
  return {id, unix_seconds(1709251200), std::move(events), indexed};
}

const fb::EventBody& body(const storage::event_to_append& e) { return *flatbuffers::GetRoot<fb::EventBody>(e.body.data()); }

std::vector<std::string> ids(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>& v) {
  std::vector<std::string> out;
  for (const auto* s : v) out.push_back(s->str());
  return out;
}

struct batching : ::testing::Test {
  record_batcher batcher;
  storage::append_batch group;
  std::map<std::string, int> records;  // per stream, as the callback counted them
  // Like the residency: a stream's first record is the first this callback counts for it.
  record_batcher::on_record count = [this](std::string_view stream) { return ++records[std::string(stream)] == 1; };
};

TEST_F(batching, a_run_of_intervals_becomes_one_record_and_an_other_event_of_the_stream_closes_it) {
  batcher.add(command("c1", {reading("s1", 0, 100), line("a", 0, 15000)}), group, count);
  batcher.add(command("c2", {reading("s1", 900, 200), line("a", 900, 30000)}), group, count);
  batcher.add(command("c3", {unplugged("s1")}), group, count);
  batcher.close_all(group, count);

  // c1 and c2 keep their idempotency entries, with no events of their own; the session's batch
  // comes before the unplug that closed it; the account's batch closes with the group.
  ASSERT_EQ(group.commands.size(), 5u);
  EXPECT_EQ(group.commands[0].command_id, "c1");
  EXPECT_TRUE(group.commands[0].indexed);
  EXPECT_TRUE(group.commands[0].events.empty());
  EXPECT_EQ(group.commands[1].command_id, "c2");
  EXPECT_TRUE(group.commands[1].events.empty());

  const auto& session_batch = group.commands[2];
  EXPECT_FALSE(session_batch.indexed);  // a batch takes no command id
  ASSERT_EQ(session_batch.events.size(), 1u);
  EXPECT_EQ(session_batch.events[0].stream, "session/s1");
  const auto* recorded = body(session_batch.events[0]).event_as_IntervalsRecorded();
  ASSERT_NE(recorded, nullptr);
  ASSERT_EQ(recorded->readings()->size(), 2u);
  EXPECT_EQ(recorded->readings()->Get(0)->wh(), 100);
  EXPECT_EQ(recorded->readings()->Get(1)->start(), 900);
  EXPECT_EQ(ids(*recorded->command_ids()), (std::vector<std::string>{"c1", "c2"}));

  EXPECT_EQ(group.commands[3].command_id, "c3");
  ASSERT_EQ(group.commands[3].events.size(), 1u);
  EXPECT_EQ(body(group.commands[3].events[0]).event_type(), fb::Event::SessionUnplugged);

  const auto* booked = body(group.commands[4].events[0]).event_as_LinesBooked();
  ASSERT_NE(booked, nullptr);
  ASSERT_EQ(booked->lines()->size(), 2u);
  EXPECT_EQ(booked->lines()->Get(0)->amount_micro(), 15000);
  EXPECT_EQ(booked->lines()->Get(1)->amount_micro(), 30000);
  EXPECT_EQ(booked->lines()->Get(1)->account()->str(), "a");

  EXPECT_EQ(records, (std::map<std::string, int>{{"session/s1", 2}, {"account/a", 1}}));
  EXPECT_TRUE(batcher.empty());
}

TEST_F(batching, a_lone_event_is_recorded_as_itself) {
  batcher.add(command("c1", {reading("s1", 0, 100)}), group, count);
  batcher.close_all(group, count);
  ASSERT_EQ(group.commands.size(), 2u);
  ASSERT_EQ(group.commands[1].events.size(), 1u);
  EXPECT_EQ(group.commands[1].command_id, "c1");
  EXPECT_EQ(body(group.commands[1].events[0]).event_type(), fb::Event::IntervalRecorded);
}

TEST_F(batching, a_refused_command_and_a_stream_written_twice_by_one_command_stay_unbatched) {
  // A refusal's events carry its id and are not batched with accepted lines.
  batcher.add(command("bad", {reading("s1", 0, 100)}, /*indexed=*/false), group, count);
  // The unplug goes first in this command, so the reading after it must follow it, unbatched.
  batcher.add(command("c2", {unplugged("s2"), reading("s2", 0, 100)}), group, count);
  batcher.close_all(group, count);
  ASSERT_EQ(group.commands.size(), 2u);
  EXPECT_EQ(group.commands[0].command_id, "bad");
  EXPECT_EQ(body(group.commands[0].events[0]).event_type(), fb::Event::IntervalRecorded);
  ASSERT_EQ(group.commands[1].events.size(), 2u);
  EXPECT_EQ(body(group.commands[1].events[0]).event_type(), fb::Event::SessionUnplugged);
  EXPECT_EQ(body(group.commands[1].events[1]).event_type(), fb::Event::IntervalRecorded);
  EXPECT_EQ(records, (std::map<std::string, int>{{"session/s1", 1}, {"session/s2", 2}}));
  // Each record says whether it is its stream's first, so the log need not look that up.
  EXPECT_TRUE(group.commands[0].events[0].first_of_stream);
  EXPECT_TRUE(group.commands[1].events[0].first_of_stream);
  EXPECT_FALSE(group.commands[1].events[1].first_of_stream);
}

TEST_F(batching, a_batch_record_is_first_of_its_stream_only_when_nothing_preceded_it) {
  records["account/a"] = 3;  // the account has records already; the session is new
  batcher.add(command("c1", {reading("s1", 0, 100), line("a", 0, 15000)}), group, count);
  batcher.add(command("c2", {reading("s1", 900, 200), line("a", 900, 30000)}), group, count);
  batcher.close_all(group, count);
  ASSERT_EQ(group.commands.size(), 4u);
  EXPECT_EQ(group.commands[2].events[0].stream, "account/a");
  EXPECT_FALSE(group.commands[2].events[0].first_of_stream);
  EXPECT_EQ(group.commands[3].events[0].stream, "session/s1");
  EXPECT_TRUE(group.commands[3].events[0].first_of_stream);
}

// One utility in UTC, tariffs res 0.20/kWh and ev 0.15/kWh; the PEV charges at home for six
// intervals of 1,000 Wh, one of them with a register that disagrees (an anomaly in the middle of
// the run), then one more interval arrives after unplug and one is sent twice.
void charging_day(scenario& s) {
  const std::string vin = "1HG8NAW39M673BW7N";
  s.cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":"u","timezone":"UTC")")
      .cmd("tariff.publish", "2024-03-01T00:00:01Z", R"("utility":"u","tariff":"res","kind":"flat","price":200000)")
      .cmd("tariff.publish", "2024-03-01T00:00:02Z", R"("utility":"u","tariff":"ev","kind":"flat","price":150000)")
      .cmd("account.open", "2024-03-01T00:00:03Z", R"("utility":"u","account":"host","customer":"h")")
      .cmd("premise.register", "2024-03-01T00:00:04Z",
           R"("utility":"u","premise":"home","account":"host","default_tariff":"res")")
      .cmd("device.commission", "2024-03-01T00:00:05Z", R"("premise":"home","device":"esci","kind":"esci")")
      .cmd("device.commission", "2024-03-01T00:00:06Z", R"("premise":"home","device":"eumd","kind":"eumd")")
      .cmd("account.open", "2024-03-01T00:00:07Z", R"("utility":"u","account":"owner","customer":"o")")
      .cmd("pev.enroll", "2024-03-01T00:00:08Z",
           R"("account":"owner","pev":)" + q(vin) + R"(,"tariff":"ev","home_premise":"home")")
      .cmd("pev.setup", "2024-03-01T00:00:09Z",
           R"("pev":)" + q(vin) + R"(,"premise":"home","esci":"esci","eumd":"eumd")")
      .cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:30Z", R"("session":"s1","pev":)" + q(vin));
  auto interval = [&](int k, std::int64_t register_wh) {
    char start[32];
    std::snprintf(start, sizeof start, "2024-03-05T%02d:%02d:00Z", 20 + k * 15 / 60, k * 15 % 60);
    s.cmd("meter.interval", start,
          R"("device":"eumd","session":"s1","start":)" + q(start) + R"(,"seconds":900,"wh":1000,"register_wh":)" +
              std::to_string(register_wh));
  };
  // From reading 3 on, the register runs 5 Wh ahead: only reading 3 disagrees with its delta.
  for (int k = 0; k < 6; ++k) interval(k, (k + 1) * 1000 + (k >= 3 ? 5 : 0));
  s.cmd("session.unplug", "2024-03-05T21:30:00Z", R"("session":"s1")");
  interval(6, 7005);
  interval(2, 3000);  // sent again, same content: a duplicate
}

TEST(batched_log, bills_balances_and_sessions_are_those_of_one_record_per_event) {
  std::map<std::size_t, std::vector<json>> answers;
  for (std::size_t group_lines : {1u, 4096u}) {
    scenario s(group_lines);
    charging_day(s);
    s.run_ok();
    EXPECT_EQ(s.summary().duplicates, 1u);
    answers[group_lines] = {s.bill("owner", "2024-03"), s.bill("host", "2024-03"), s.balance("owner"),
                            s.balance("host"), s.session("s1")};
  }
  EXPECT_EQ(answers[1], answers[4096]);
  // By hand: 7 intervals of 1,000 Wh; the owner pays 7 * 1000 * 150000 / 1000 = 1,050,000 micro,
  // the host is credited 7 * 200,000 = 1,400,000 micro, all posted (unplug, then on arrival).
  const json& owner_bill = answers[4096][0];
  EXPECT_EQ(owner_bill["total_micro"], 1050000);
  EXPECT_EQ(answers[4096][1]["total_micro"], -1400000);
  EXPECT_EQ(answers[4096][2]["balance_micro"], -1050000);
  EXPECT_EQ(answers[4096][3]["balance_micro"], 1400000);
  EXPECT_EQ(answers[4096][4]["intervals"], 7);
  EXPECT_EQ(answers[4096][4]["duplicates"], 1);
}

TEST(batched_log, the_log_holds_batches_and_replays_and_verifies) {
  scenario s;  // one group: every run is batched
  charging_day(s);
  s.run_ok();
  std::ostringstream exported;
  ASSERT_TRUE(s.eng().export_events(exported, false).is_ok());
  // Readings 0..3 run until the anomaly of reading 3 closes the session's batch; readings 4 and 5
  // run until the unplug; reading 6, after it, is closed by the duplicate's event and is recorded
  // as itself. The owner's six lines are one run, closed when the unplug posts them.
  std::vector<std::size_t> session_batches, owner_batches;
  std::vector<std::vector<std::string>> batch_ids;
  std::istringstream in(exported.str());
  for (std::string text_line; std::getline(in, text_line);) {
    const json r = json::parse(text_line);
    if (r["type"] == "IntervalsRecorded") {
      session_batches.push_back(r["event"]["readings"].size());
      batch_ids.push_back(r["event"]["command_ids"].get<std::vector<std::string>>());
      EXPECT_EQ(r["command_id"], r["event"]["command_ids"][0]);
    }
    if (r["type"] == "LinesBooked" && r["stream"] == "account/owner") owner_batches.push_back(r["event"]["lines"].size());
  }
  EXPECT_EQ(session_batches, (std::vector<std::size_t>{4, 2}));
  EXPECT_EQ(owner_batches, (std::vector<std::size_t>{6}));
  // The interval lines are c13 to c18, in the order they were sent.
  EXPECT_EQ(batch_ids, (std::vector<std::vector<std::string>>{{"c13", "c14", "c15", "c16"}, {"c17", "c18"}}));

  s.close();
  const auto replayed = testing::run_pevledger("replay --db " + s.dir().file("db") + " --verify");
  EXPECT_EQ(replayed.exit_code, 0) << replayed.out << replayed.err;
  EXPECT_NE(replayed.out.find("every projection matches"), std::string::npos) << replayed.out;
}

}  // namespace
}  // namespace pevledger
