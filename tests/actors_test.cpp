// The CAF shell, driven deterministically by CAF's test coordinator: an entity actor recovers its
// state from its own stream, applies durable events once and in order, and the directory keeps at
// most its bound of actors live without losing anything.

#define CAF_SUITE actors
#include "caf/test/dsl.hpp"
#include "caf/test/unit_test_impl.hpp"

#include <nlohmann/json.hpp>
#include <sstream>

#include "actors/entity_actors.hpp"
#include "pevledger/engine.hpp"
#include "schema/events_generated.h"
#include "tests/test_support.hpp"

using namespace pevledger;
using pevledger::actors::durable_atom;
using pevledger::actors::render_atom;
using pevledger::actors::stats_atom;
using json = nlohmann::json;

namespace {

// A database with three accounts of one utility, written by the engine and then closed.
struct ledger_fixture {
  testing::temp_dir dir;
  std::unique_ptr<storage::event_log> log;

  ledger_fixture() {
    {
      auto engine = engine::open(dir.file("db"));
      CAF_REQUIRE(engine);
      std::istringstream in(
          R"({"type":"utility.register","id":"c1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})"
          "\n"
          R"({"type":"account.open","id":"c2","at":"2024-03-01T00:00:01Z","utility":"u","account":"a1","customer":"x","kind":"prepaid"})"
          "\n"
          R"({"type":"account.open","id":"c3","at":"2024-03-01T00:00:02Z","utility":"u","account":"a2","customer":"y"})"
          "\n"
          R"({"type":"account.open","id":"c4","at":"2024-03-01T00:00:03Z","utility":"u","account":"a3","customer":"z"})"
          "\n"
          R"({"type":"account.topup","id":"c5","at":"2024-03-01T00:00:04Z","account":"a1","amount":7000000})"
          "\n");
      auto summary = engine.value()->ingest(in, {});
      CAF_REQUIRE(summary);
      CAF_REQUIRE_EQUAL(summary->accepted, 5u);
    }
    storage::log_options options;
    options.create_if_missing = false;
    auto opened = storage::event_log::open(dir.file("db"), options);
    CAF_REQUIRE(opened);
    log = std::move(opened.value());
  }

  // Appends a top-up of `account` as the engine would; returns the receipt.
  storage::append_receipt top_up(const std::string& account, std::int64_t amount, const std::string& id) {
    flatbuffers::FlatBufferBuilder fbb;
    fbb.Finish(schema::CreateEventBody(fbb, schema::Event::AccountToppedUp,
                                       schema::CreateAccountToppedUpDirect(fbb, account.c_str(), amount).Union()));
    storage::append_batch batch;
    storage::command_to_append cmd{id, unix_seconds(1'709'251'300), {}, true};
    cmd.events.push_back({"account/" + account, {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()}});
    batch.commands.push_back(std::move(cmd));
    auto receipt = log->append_and_wait(std::move(batch));
    CAF_REQUIRE(receipt);
    return receipt.value();
  }

  // The events of `stream` in records first..last, as the directory forwards them.
  actors::durable_events events_of(const std::string& stream, storage::append_receipt r) {
    actors::durable_events out;
    auto s = log->scan(r.first, r.last, [&](const schema::Record& rec) {
      if (rec.stream()->str() == stream)
        out.push_back({rec.stream_seq(), rec.at(), {rec.body()->begin(), rec.body()->end()}});
      return status::ok();
    });
    CAF_REQUIRE(s.is_ok());
    return out;
  }
};

struct fixture : ledger_fixture, test_coordinator_fixture<> {
  std::string ask(const caf::actor& who, const std::string& what) {
    self->send(caf::actor_cast<caf::actor>(who), render_atom::value, what);
    run();
    std::string got = "(no reply)";
    self->receive([&](const std::string& s) { got = s; });
    return got;
  }
  std::string ask_directory(const actors::directory_actor& d, const std::string& stream, const std::string& what) {
    self->send(d, render_atom::value, stream, what);
    run();
    std::string got = "(no reply)";
    self->receive([&](const std::string& s) { got = s; });
    return got;
  }
  static std::int64_t balance_of(const std::string& balance_json) {
    return json::parse(balance_json)["balance_micro"].get<std::int64_t>();
  }
};

}  // namespace

CAF_TEST_FIXTURE_SCOPE(entity_actor_tests, fixture)

CAF_TEST(an entity actor recovers its state from its own stream) {
  auto a1 = sys.spawn(actors::entity_behavior, log.get(), std::string("account/a1"));
  run();
  const json balance = json::parse(ask(caf::actor_cast<caf::actor>(a1), "balance"));
  CAF_CHECK_EQUAL(balance["account"].get<std::string>(), "a1");
  CAF_CHECK_EQUAL(balance["kind"].get<std::string>(), "prepaid");
  CAF_CHECK_EQUAL(balance["balance_micro"].get<std::int64_t>(), 7'000'000);
  // An entity with no stream does not exist: no projection.
  auto nobody = sys.spawn(actors::entity_behavior, log.get(), std::string("account/nobody"));
  run();
  CAF_CHECK_EQUAL(ask(caf::actor_cast<caf::actor>(nobody), "balance"), "");
}

CAF_TEST(durable events apply once and in stream order) {
  auto a1 = sys.spawn(actors::entity_behavior, log.get(), std::string("account/a1"));
  run();
  const auto receipt = top_up("a1", 500, "t1");
  // The actor recovered before this event was appended: it sees it only when told it is durable.
  CAF_CHECK_EQUAL(balance_of(ask(caf::actor_cast<caf::actor>(a1), "balance")), 7'000'000);
  const auto events = events_of("account/a1", receipt);
  CAF_REQUIRE_EQUAL(events.size(), 1u);
  self->send(a1, actors::apply_atom::value, events);
  self->send(a1, actors::apply_atom::value, events);  // delivered twice: applied once
  run();
  CAF_CHECK_EQUAL(balance_of(ask(caf::actor_cast<caf::actor>(a1), "balance")), 7'000'500);
  // A fresh actor recovers the same state from the log alone.
  auto again = sys.spawn(actors::entity_behavior, log.get(), std::string("account/a1"));
  run();
  CAF_CHECK_EQUAL(ask(caf::actor_cast<caf::actor>(again), "balance"),
                  ask(caf::actor_cast<caf::actor>(a1), "balance"));
}

CAF_TEST(the directory keeps its bound of live actors and loses nothing) {
  auto directory = sys.spawn(actors::directory_behavior, log.get(), std::size_t{2});
  run();
  for (const char* account : {"account/a1", "account/a2", "account/a3"})
    CAF_CHECK_NOT_EQUAL(ask_directory(directory, account, "balance"), "");
  self->send(directory, stats_atom::value);
  run();
  self->receive([&](const actors::directory_stats& s) {
    CAF_CHECK_EQUAL(s.live, 2u);
    CAF_CHECK_EQUAL(s.spawned, 3u);
    CAF_CHECK_EQUAL(s.stopped, 1u);
  });
  // a1 was stopped (least recently used); a3 is live. Both see a durable top-up.
  const auto receipt = top_up("a1", 11, "t2");
  const auto receipt3 = top_up("a3", 13, "t3");
  self->send(directory, durable_atom::value, receipt.first.value(), receipt3.last.value());
  run();
  CAF_CHECK_EQUAL(balance_of(ask_directory(directory, "account/a3", "balance")), 13);
  CAF_CHECK_EQUAL(balance_of(ask_directory(directory, "account/a1", "balance")), 7'000'011);
  self->send(directory, stats_atom::value);
  run();
  self->receive([&](const actors::directory_stats& s) {
    CAF_CHECK_EQUAL(s.live, 2u);
    CAF_CHECK_EQUAL(s.durable_through, receipt3.last.value());
  });
}

CAF_TEST_FIXTURE_SCOPE_END()
