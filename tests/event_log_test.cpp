#include <gtest/gtest.h>

#include <flatbuffers/flatbuffers.h>

#include <future>

#include "storage/event_log.hpp"
#include "tests/test_support.hpp"

namespace pevledger::storage {
namespace {

std::vector<std::uint8_t> topup_body(const std::string& account, std::int64_t amount) {
  flatbuffers::FlatBufferBuilder fbb;
  auto e = schema::CreateAccountToppedUpDirect(fbb, account.c_str(), amount);
  fbb.Finish(schema::CreateEventBody(fbb, schema::Event::AccountToppedUp, e.Union()));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

append_batch topups(const std::string& id_prefix, int n, int first = 0) {
  append_batch b;
  for (int i = first; i < first + n; ++i)
    b.commands.push_back({id_prefix + std::to_string(i), unix_seconds(1700000000 + i),
                          {{"account/a" + std::to_string(i % 3), topup_body("a" + std::to_string(i % 3), i + 1)}}});
  return b;
}

std::unique_ptr<event_log> open_log(const std::string& dir, log_options options = {}) {
  auto log = event_log::open(dir, options);
  EXPECT_TRUE(log.has_value()) << (log ? "" : log.error().describe());
  return std::move(log.value());
}

TEST(event_log, appends_and_reopens_with_chain_and_streams) {
  testing::temp_dir dir;
  digest head{};
  {
    auto log = open_log(dir.path());
    auto r = log->append_and_wait(topups("c", 10));
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r->first.value(), 1u);
    EXPECT_EQ(r->last.value(), 10u);
    head = log->last_hash();
  }
  auto log = open_log(dir.path());
  EXPECT_EQ(log->last_seq().value(), 10u);
  EXPECT_EQ(log->last_hash(), head);
  auto r = log->append_and_wait(topups("c", 5, 10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first.value(), 11u);

  std::vector<std::uint64_t> seen;
  digest prev{};
  ASSERT_TRUE(log->scan(log_seq(1), log->last_seq(), [&](const schema::Record& rec) {
                  seen.push_back(rec.global_seq());
                  EXPECT_EQ(record_prev_hash(rec), prev);
                  prev = record_hash(rec);
                  return status::ok();
                }).is_ok());
  ASSERT_EQ(seen.size(), 15u);
  EXPECT_EQ(seen.front(), 1u);
  EXPECT_EQ(seen.back(), 15u);
  // Stream a0 holds commands 0, 3, 6, ..., each with its stream sequence in order.
  auto stream = log->stream_records("account/a0");
  ASSERT_TRUE(stream.has_value());
  ASSERT_EQ(stream->size(), 5u);  // 0 3 6 9 12
  for (std::size_t i = 0; i < stream->size(); ++i) {
    auto rec = log->read((*stream)[i]);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->record().stream_seq(), i + 1);
    EXPECT_EQ(rec->record().stream()->str(), "account/a0");
  }
}

TEST(event_log, a_record_marked_first_of_its_stream_starts_it_and_the_next_continues_it) {
  testing::temp_dir dir;
  // The first append takes the marked stream's head as 0 without reading it; heads are forgotten
  // after every group, so the second append, unmarked, must read the head the first one stored.
  log_options options;
  options.stream_heads_cached_max = 1;
  auto log = open_log(dir.path(), options);
  append_batch first;
  first.commands.push_back({"c1", unix_seconds(1700000000), {{"account/new", topup_body("new", 1), true}}});
  ASSERT_TRUE(log->append_and_wait(std::move(first)).has_value());
  append_batch second;
  second.commands.push_back({"c2", unix_seconds(1700000001), {{"account/new", topup_body("new", 2), false}}});
  ASSERT_TRUE(log->append_and_wait(std::move(second)).has_value());

  auto length = log->stream_length("account/new");
  ASSERT_TRUE(length.has_value());
  EXPECT_EQ(*length, 2u);
  auto stream = log->stream_records("account/new");
  ASSERT_TRUE(stream.has_value());
  ASSERT_EQ(stream->size(), 2u);
  for (std::size_t i = 0; i < stream->size(); ++i) {
    auto rec = log->read((*stream)[i]);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->record().stream_seq(), i + 1);
  }
}

TEST(event_log, forgetting_stream_heads_never_splits_a_group) {
  // With two cached heads at most, every group touches more streams than the cache holds; the
  // sealer may forget heads only between groups, or a stream would get one sequence twice.
  testing::temp_dir dir;
  log_options options;
  options.stream_heads_cached_max = 2;
  auto opened = open_log(dir.path(), options);
  ASSERT_NE(opened, nullptr);
  auto& log = *opened;
  for (int g = 0; g < 4; ++g) {
    append_batch b;
    for (int i = 0; i < 12; ++i) {
      const std::string account = "a" + std::to_string(i % 5);
      b.commands.push_back({"g" + std::to_string(g) + "-" + std::to_string(i), unix_seconds(1700000000 + i),
                            {{"account/" + account, topup_body(account, 1)}}});
    }
    b.snapshots.push_back({"account/a1", 0, "x"});  // filled in below: must cover the stream's head
    b.snapshots.back().stream_seq = static_cast<std::uint64_t>((g + 1) * 3);  // a1 gets 3 events a group
    ASSERT_TRUE(log.append_and_wait(std::move(b)).has_value());
  }
  for (int a = 0; a < 5; ++a) {
    std::uint64_t events = 0;
    ASSERT_TRUE(log.scan_stream("account/a" + std::to_string(a), 0, log_seq(~std::uint64_t{0}),
                                [&](const schema::Record&) {
                                  ++events;
                                  return status::ok();
                                })
                    .is_ok());
    EXPECT_EQ(events, a < 2 ? 12u : 8u) << a;
  }
  auto snap = log.newest_snapshot("account/a1", log_seq(~std::uint64_t{0}));
  ASSERT_TRUE(snap.has_value() && snap->has_value());
  EXPECT_EQ((*snap)->stream_seq, 12u);
  EXPECT_EQ((*snap)->state, "x");
}

TEST(event_log, command_index_remembers_first_outcome) {
  testing::temp_dir dir;
  auto log = open_log(dir.path());
  ASSERT_TRUE(log->append_and_wait(topups("c", 3)).has_value());
  auto known = log->find_command("c1");
  ASSERT_TRUE(known.has_value());
  ASSERT_TRUE(known->has_value());
  EXPECT_EQ((*known)->first.value(), 2u);
  EXPECT_EQ((*known)->events, 1u);
  auto unknown = log->find_command("c9");
  ASSERT_TRUE(unknown.has_value());
  EXPECT_FALSE(unknown->has_value());
}

TEST(event_log, unindexed_commands_do_not_take_their_id) {
  testing::temp_dir dir;
  auto log = open_log(dir.path());
  append_batch b = topups("audit", 1);
  b.commands[0].indexed = false;
  ASSERT_TRUE(log->append_and_wait(std::move(b)).has_value());
  EXPECT_EQ(log->last_seq().value(), 1u);
  EXPECT_FALSE(log->find_command("audit0")->has_value());
}

TEST(event_log, projections_and_watermark_land_with_their_events) {
  testing::temp_dir dir;
  {
    auto log = open_log(dir.path());
    append_batch b = topups("c", 4);
    b.projections.push_back({"balance/a0", "{\"balance_micro\":5}"});
    ASSERT_TRUE(log->append_and_wait(std::move(b)).has_value());
  }
  auto log = open_log(dir.path());
  auto value = log->get_projection("balance/a0");
  ASSERT_TRUE(value.has_value() && value->has_value());
  EXPECT_EQ(**value, "{\"balance_micro\":5}");
  EXPECT_EQ(log->projection_watermark().value().value(), 4u);
}

// A group writes projections in key order, not in the order they were put: the later put of a key
// must still win, within one append and across appends (queued together, so usually one group).
TEST(event_log, the_last_projection_put_of_a_key_wins_whatever_the_key_order) {
  testing::temp_dir dir;
  {
    auto log = open_log(dir.path());
    append_batch b = topups("c", 2);
    for (const char* key : {"z", "b", "m", "a"}) b.projections.push_back({key, std::string("first ") + key});
    b.projections.push_back({"m", "second m"});
    b.projections.push_back({"a", "second a"});
    std::vector<std::future<result<append_receipt>>> appends;
    appends.push_back(log->append(std::move(b)));
    append_batch later = topups("d", 1);
    later.projections.push_back({"z", "later z"});
    appends.push_back(log->append(std::move(later)));
    for (auto& a : appends) ASSERT_TRUE(a.get().has_value());
  }
  auto log = open_log(dir.path());
  for (const auto& [key, want] : std::vector<std::pair<std::string, std::string>>{
           {"a", "second a"}, {"b", "first b"}, {"m", "second m"}, {"z", "later z"}}) {
    auto value = log->get_projection(key);
    ASSERT_TRUE(value.has_value() && value->has_value()) << key;
    EXPECT_EQ(**value, want) << key;
  }
}

TEST(event_log, concurrent_appenders_share_group_commits_and_keep_one_chain) {
  testing::temp_dir dir;
  auto log = open_log(dir.path());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto r = log->append_and_wait(topups("t" + std::to_string(t) + "-" + std::to_string(i) + "-", 4));
        EXPECT_TRUE(r.has_value());
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(log->last_seq().value(), 400u);
  std::uint64_t n = 0;
  EXPECT_TRUE(log->scan(log_seq(1), log->last_seq(), [&](const schema::Record&) {
                   ++n;
                   return status::ok();
                 }).is_ok());
  EXPECT_EQ(n, 400u);
}

class tamper_test : public ::testing::Test {
 protected:
  void SetUp() override {
    log = open_log(dir.path());
    ASSERT_TRUE(log->append_and_wait(topups("c", 6)).has_value());
  }
  status scan_all() {
    return log->scan(log_seq(1), log->last_seq(), [](const schema::Record&) { return status::ok(); });
  }
  testing::temp_dir dir;
  std::unique_ptr<event_log> log;
};

TEST_F(tamper_test, a_changed_byte_is_detected_and_named) {
  auto rec = log->read(log_seq(4));
  ASSERT_TRUE(rec.has_value());
  std::vector<std::uint8_t> bytes = rec->bytes;
  // Change one byte of the account name inside the body: structure stays valid, the hash does not.
  const std::string needle = "a0";
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  ASSERT_NE(it, bytes.end());
  *(it + 1) = '7';
  ASSERT_TRUE(log->overwrite_record_for_test(log_seq(4), bytes).is_ok());
  const status s = scan_all();
  EXPECT_EQ(s.code(), errc::corruption);
  EXPECT_NE(s.message().find("record 4"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("hash"), std::string::npos) << s.message();
  EXPECT_EQ(log->read(log_seq(4)).error().code(), errc::corruption);
}

TEST_F(tamper_test, a_deleted_record_is_detected_and_named) {
  ASSERT_TRUE(log->delete_record_for_test(log_seq(3)).is_ok());
  const status s = scan_all();
  EXPECT_EQ(s.code(), errc::corruption);
  EXPECT_NE(s.message().find("record 3 is missing"), std::string::npos) << s.message();
}

TEST_F(tamper_test, swapped_records_are_detected_and_named) {
  auto two = log->read(log_seq(2)), three = log->read(log_seq(3));
  ASSERT_TRUE(two.has_value() && three.has_value());
  ASSERT_TRUE(log->overwrite_record_for_test(log_seq(2), three->bytes).is_ok());
  ASSERT_TRUE(log->overwrite_record_for_test(log_seq(3), two->bytes).is_ok());
  const status s = scan_all();
  EXPECT_EQ(s.code(), errc::corruption);
  EXPECT_NE(s.message().find("record 2"), std::string::npos) << s.message();
}

TEST_F(tamper_test, a_rewritten_record_with_a_fresh_hash_breaks_the_chain) {
  // A forger who recomputes the record's own hash still cannot fix the next record's prev_hash.
  auto rec = log->read(log_seq(3));
  ASSERT_TRUE(rec.has_value());
  flatbuffers::FlatBufferBuilder fbb;
  const auto& r = rec->record();
  build_record(fbb, {log_seq(3), r.stream_seq(), record_prev_hash(r)}, r.stream()->string_view(),
               unix_seconds(r.at()), r.command_id()->string_view(), topup_body("a0", 999999));
  ASSERT_TRUE(log->overwrite_record_for_test(log_seq(3), {fbb.GetBufferPointer(), fbb.GetSize()}).is_ok());
  const status s = scan_all();
  EXPECT_EQ(s.code(), errc::corruption);
  EXPECT_NE(s.message().find("record 4"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("chain"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace pevledger::storage
