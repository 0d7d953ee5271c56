// Zones pinned in the log (core/zone_rules.hpp): a table built from the host's tz database reads
// every instant of business time as the database does; a malformed table is refused; and rating
// reads the table an event carries, whatever the host's database says about the zone's name; a
// utility whose event predates pinned zones is read with the host's table, or refused by name.

#include <gtest/gtest.h>

#include <date/tz.h>
#include <flatbuffers/flatbuffers.h>

#include <optional>
#include <random>

#include "core/apply.hpp"
#include "core/rating.hpp"
#include "core/zone_rules.hpp"
#include "base/limits.hpp"
#include "engine/host_zones.hpp"
#include "engine/residency.hpp"
#include "storage/event_log.hpp"
#include "tests/test_support.hpp"

namespace {

using namespace pevledger;
using core::zone_rules;
namespace fb = pevledger::schema;

std::int32_t database_offset(const date::time_zone* zone, std::int64_t t) {
  return static_cast<std::int32_t>(zone->get_info(date::sys_seconds{std::chrono::seconds(t)}).offset.count());
}

// Zones with every kind of rule: none, northern and southern DST, a half-hour DST (Lord Howe), a
// quarter-hour offset (Kathmandu), a day skipped (Apia), DST rules that end (Sao Paulo), yearly
// irregular DST listed far ahead (Casablanca) and a two-hour DST (Troll).
const char* const zones[] = {"UTC",          "America/New_York",  "Europe/London",  "Europe/Helsinki",
                             "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Apia", "America/Sao_Paulo",
                             "Africa/Casablanca", "Antarctica/Troll"};

TEST(zones, a_pinned_table_reads_every_instant_as_the_tz_database_does) {
  std::mt19937_64 rng(20241204);
  std::uniform_int_distribution<std::int64_t> any_time(0, limits::unix_seconds_max);
  for (const char* name : zones) {
    SCOPED_TRACE(name);
    auto pinned = engine_detail::host_zone_rules(name);
    ASSERT_TRUE(pinned.has_value()) << pinned.error().message();
    const zone_rules& table = *pinned.value();
    const date::time_zone* zone = date::locate_zone(name);
    // Around every change of offset the database makes before the table's end...
    std::int64_t t = 0;
    std::size_t changes = 0;
    for (int period = 0; period < 100000 && t < zone_rules::table_end(); ++period) {
      for (std::int64_t at : {t - 1, t, t + 1}) {
        if (at >= 0) {
          ASSERT_EQ(table.offset_at(unix_seconds(at)), database_offset(zone, at)) << at;
        }
      }
      const auto next = zone->get_info(date::sys_seconds{std::chrono::seconds(t)}).end.time_since_epoch().count();
      ASSERT_GT(next, t);
      t = next;
      ++changes;
    }
    EXPECT_GT(changes, 0u);
    // ...and anywhere up to 9999, where the table repeats its last 400 years.
    for (int i = 0; i < 20000; ++i) {
      const std::int64_t at = any_time(rng);
      ASSERT_EQ(table.offset_at(unix_seconds(at)), database_offset(zone, at)) << at;
    }
  }
}

TEST(zones, a_zone_the_database_lacks_is_invalid_field) {
  for (const char* name : {"Mars/Olympus_Mons", "", "America/New_York/x", "../../etc/passwd"}) {
    auto pinned = engine_detail::host_zone_rules(name);
    ASSERT_FALSE(pinned.has_value()) << name;
    EXPECT_EQ(pinned.error().code(), errc::invalid_field);
    EXPECT_NE(pinned.error().message().find("unknown time zone"), std::string::npos);
  }
}

TEST(zones, a_malformed_table_is_refused) {
  using t = zone_rules::transition;
  const std::int64_t first = zone_rules::first_at;
  EXPECT_TRUE(zone_rules::from_transitions({{first, 0}}).has_value());
  EXPECT_TRUE(zone_rules::from_transitions({{first, -18000}, {100, -14400}}).has_value());
  const std::vector<std::vector<t>> bad = {
      {},                                   // no transition
      {{0, 0}},                             // does not start business time
      {{first, 0}, {100, 3600}, {100, 0}},  // two at one instant
      {{first, 0}, {200, 3600}, {100, 0}},  // out of order
      {{first, 86401}},                     // more than a day
      {{first, -86401}},
  };
  for (const auto& table : bad) {
    auto r = zone_rules::from_transitions(table);
    ASSERT_FALSE(r.has_value()) << table.size();
    EXPECT_EQ(r.error().code(), errc::invalid_field);
  }
  std::vector<t> too_many{{first, 0}};
  for (std::int64_t i = 1; i <= static_cast<std::int64_t>(zone_rules::transitions_max); ++i)
    too_many.push_back({i, static_cast<std::int32_t>(i % 2 * 3600)});
  EXPECT_FALSE(zone_rules::from_transitions(too_many).has_value());
}

// An instant read a whole number of 400-year cycles past the table's end is read as the matching
// instant inside it: same offset, and the same local weekday and time of day.
TEST(zones, past_the_tables_end_the_last_four_hundred_years_repeat) {
  const std::int64_t end = zone_rules::table_end();
  auto table = zone_rules::from_transitions({{zone_rules::first_at, 0}, {end - 1000, 3600}, {end - 500, 7200}});
  ASSERT_TRUE(table.has_value());
  for (std::int64_t cycles = 1; cycles <= 20; ++cycles) {
    const std::int64_t shift = cycles * zone_rules::cycle_s;
    for (std::int64_t inside : {end - 1001, end - 1000, end - 600, end - 500, end - 1}) {
      const unix_seconds later(inside + shift), earlier(inside);
      EXPECT_EQ(table->offset_at(later), table->offset_at(earlier));
      const auto a = core::to_local(*table, later), b = core::to_local(*table, earlier);
      EXPECT_EQ(a.weekday, b.weekday);
      EXPECT_EQ(a.minute_of_day, b.minute_of_day);
      EXPECT_EQ(a.month.month, b.month.month);
      EXPECT_EQ(a.month.year, b.month.year + 400 * cycles);
    }
  }
}

// The event names New York but carries a constant +05:30: the billing month and the local time of
// day come from the table it carries. 2024-03-31T20:00:00Z is 16:00 in New York, in March; with
// the carried table it is 01:30 on April 1st.
TEST(zones, rating_reads_the_table_the_log_carries_not_the_hosts) {
  flatbuffers::FlatBufferBuilder fbb;
  const std::vector<fb::ZoneTransition> table{{zone_rules::first_at, 19800}};
  auto e = fb::CreateUtilityRegisteredDirect(fbb, "u", "America/New_York", 60, 5'000'000, &table);
  fbb.Finish(fb::CreateEventBody(fbb, fb::Event::UtilityRegistered, e.Union()));
  core::ledger_state state;
  core::apply(state, *flatbuffers::GetRoot<fb::EventBody>(fbb.GetBufferPointer()), unix_seconds(0));
  const core::utility_state& u = state.utilities.at("u");
  ASSERT_NE(u.zone, nullptr);
  const auto local = core::to_local(core::zone_of(u), unix_seconds(1711915200));
  EXPECT_EQ(local.month, (month_period{2024, 4}));
  EXPECT_EQ(local.minute_of_day, 90);
  EXPECT_EQ(local.weekday, 0);  // a Monday
  const auto host = engine_detail::host_zone_rules("America/New_York");
  ASSERT_TRUE(host.has_value());
  EXPECT_EQ(core::to_local(*host.value(), unix_seconds(1711915200)).month, (month_period{2024, 3}));
}

}  // namespace

namespace {

// A log whose UtilityRegistered events carry no table, as builds before pinned zones wrote them.
void write_unpinned_utilities(const std::string& dir, const std::vector<std::pair<std::string, std::string>>& utilities) {
  auto log = storage::event_log::open(dir, {});
  ASSERT_TRUE(log.has_value()) << log.error().describe();
  storage::append_batch batch;
  for (const auto& [id, zone] : utilities) {
    flatbuffers::FlatBufferBuilder fbb;
    auto e = fb::CreateUtilityRegisteredDirect(fbb, id.c_str(), zone.c_str(), 60, 5'000'000);
    fbb.Finish(fb::CreateEventBody(fbb, fb::Event::UtilityRegistered, e.Union()));
    batch.commands.push_back(
        {"register-" + id, unix_seconds(1700000000), {{"utility/" + id, {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()}}}});
  }
  ASSERT_TRUE(log.value()->append_and_wait(std::move(batch)).has_value());
}

// Such a log, opened by the engine's residency as a writing engine opens it.
struct unpinned_log {
  pevledger::testing::temp_dir dir;
  std::unique_ptr<storage::event_log> log;
  std::optional<engine_detail::residency> resident;

  status open(const std::vector<std::pair<std::string, std::string>>& utilities) {
    write_unpinned_utilities(dir.path(), utilities);
    auto opened = storage::event_log::open(dir.path(), {});
    if (!opened) return opened.error();
    log = std::move(opened.value());
    resident.emplace(*log, engine_detail::residency_options{});
    return resident->open();
  }
};

TEST(zones, a_utility_registered_before_zones_were_pinned_is_read_with_the_hosts_table) {
  unpinned_log db;
  ASSERT_TRUE(db.open({{"east", "America/New_York"}, {"north", "Europe/Helsinki"}}).is_ok());
  for (const char* id : {"east", "north"}) {
    const core::utility_state& u = db.resident->state().utilities.at(id);
    ASSERT_NE(u.zone, nullptr) << id;
    EXPECT_EQ(*u.zone, *engine_detail::host_zone_rules(u.timezone).value()) << id;
  }
}

TEST(zones, an_unpinned_zone_this_machine_lacks_is_refused_by_name) {
  unpinned_log db;
  const status opened = db.open({{"east", "America/New_York"}, {"far", "Mars/Olympus_Mons"}});
  EXPECT_EQ(opened.code(), errc::corruption);
  EXPECT_NE(opened.message().find("'far'"), std::string::npos) << opened.message();
  EXPECT_NE(opened.message().find("Mars/Olympus_Mons"), std::string::npos) << opened.message();
}

}  // namespace
