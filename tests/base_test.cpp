#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "base/json_writer.hpp"
#include "base/money.hpp"
#include "base/time.hpp"

namespace pevledger {
namespace {

TEST(money, interval_charge_rounds_half_to_even) {
  // 1 Wh at 500 micro/kWh = 0.5 micro: a tie, rounds to the even 0.
  EXPECT_EQ(interval_charge(energy_wh(1), price_micro_per_kwh(500)).value(), 0);
  // 3 Wh at 500 = 1.5 micro -> 2 (even).
  EXPECT_EQ(interval_charge(energy_wh(3), price_micro_per_kwh(500)).value(), 2);
  // 5 Wh at 500 = 2.5 -> 2.
  EXPECT_EQ(interval_charge(energy_wh(5), price_micro_per_kwh(500)).value(), 2);
  // 1 Wh at 501 = 0.501 -> 1 (not a tie).
  EXPECT_EQ(interval_charge(energy_wh(1), price_micro_per_kwh(501)).value(), 1);
  // 2_500 Wh at 171_750 micro/kWh = 429_375 exactly.
  EXPECT_EQ(interval_charge(energy_wh(2500), price_micro_per_kwh(171750)).value(), 429375);
}

TEST(money, large_products_do_not_overflow) {
  // 10^12 Wh at 10^9 micro/kWh: the product passes 2^63 before the division.
  EXPECT_EQ(interval_charge(energy_wh(1'000'000'000'000), price_micro_per_kwh(1'000'000'000)).value(),
            1'000'000'000'000'000'000);
}

TEST(money, total_cents_rounds_half_to_even_both_signs) {
  EXPECT_EQ(total_cents(amount_micro(15000)), 2);    // 1.5 cents -> 2
  EXPECT_EQ(total_cents(amount_micro(25000)), 2);    // 2.5 -> 2
  EXPECT_EQ(total_cents(amount_micro(-15000)), -2);  // -1.5 -> -2
  EXPECT_EQ(total_cents(amount_micro(-25000)), -2);  // -2.5 -> -2
  EXPECT_EQ(total_cents(amount_micro(-961507)), -96);
  EXPECT_EQ(total_cents(amount_micro(14999)), 1);
}

TEST(time, parses_and_formats_timestamps) {
  auto t = parse_timestamp("2024-03-10T10:00:00Z");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->value(), 1710064800);
  EXPECT_EQ(format_timestamp(t.value()), "2024-03-10T10:00:00Z");
  EXPECT_TRUE(parse_timestamp("2024-02-29T23:59:59Z").has_value());
}

TEST(time, refuses_malformed_timestamps) {
  for (const char* bad : {"2024-03-10 10:00:00Z", "2024-03-10T10:00:00", "2023-02-29T00:00:00Z",
                          "2024-13-01T00:00:00Z", "2024-03-10T24:00:00Z", "2024-03-10T10:00:00+01:00", ""}) {
    auto t = parse_timestamp(bad);
    ASSERT_FALSE(t.has_value()) << bad;
    EXPECT_EQ(t.error().code(), errc::invalid_field);
  }
}

TEST(time, months_and_clock_times) {
  auto m = parse_month("2024-12");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->next().to_string(), "2025-01");
  EXPECT_FALSE(parse_month("2024-13").has_value());
  EXPECT_EQ(parse_clock("24:00").value(), 1440);
  EXPECT_EQ(parse_clock("07:30").value(), 450);
  EXPECT_FALSE(parse_clock("24:01").has_value());
  EXPECT_FALSE(parse_clock("7:30").has_value());
}

TEST(time, weekdays) {
  EXPECT_EQ(weekday_from_days(0), 3);  // 1970-01-01 was a Thursday
  EXPECT_EQ(weekday_from_days(days_from_civil({2024, 3, 11})), 0);  // a Monday
}

// The projections are compared byte for byte with stored ones, so the writer must give exactly
// nlohmann's dump() of the same document.
TEST(json_writer, escapes_every_ascii_byte_as_nlohmann_does) {
  for (int c = 0; c < 0x80; ++c) {
    const std::string text = std::string("a") + static_cast<char>(c) + "z";
    json_writer j;
    j.begin_object().key(text).string(text).end_object();
    nlohmann::ordered_json expected;
    expected[text] = text;
    EXPECT_EQ(j.take(), expected.dump()) << "byte " << c;
  }
}

TEST(json_writer, keeps_utf8_and_writes_numbers_and_nesting_as_nlohmann_does) {
  json_writer j;
  j.begin_object();
  j.key("name").string("Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x94\x8c");
  j.key("min").number(std::numeric_limits<std::int64_t>::min());
  j.key("max").number_unsigned(std::numeric_limits<std::uint64_t>::max());
  j.key("zero").number(0);
  j.key("flags").begin_array().boolean(true).boolean(false).null().end_array();
  j.key("empty_list").begin_array().end_array();
  j.key("empty_object").begin_object().end_object();
  j.key("nested").begin_array().begin_object().key("a").begin_array().number(-1).end_array().end_object().end_array();
  j.end_object();

  nlohmann::ordered_json expected;
  expected["name"] = "Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x94\x8c";
  expected["min"] = std::numeric_limits<std::int64_t>::min();
  expected["max"] = std::numeric_limits<std::uint64_t>::max();
  expected["zero"] = 0;
  expected["flags"] = nlohmann::ordered_json::array({true, false, nullptr});
  expected["empty_list"] = nlohmann::ordered_json::array();
  expected["empty_object"] = nlohmann::ordered_json::object();
  expected["nested"] = nlohmann::ordered_json::parse(R"([{"a":[-1]}])");
  EXPECT_EQ(j.take(), expected.dump());
}

}  // namespace
}  // namespace pevledger
