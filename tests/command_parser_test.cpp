#include <gtest/gtest.h>

#include <flatbuffers/idl.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "schema/command_parser.hpp"
#include "tests/test_support.hpp"

namespace pevledger::schema {

extern const std::string_view commands_fbs_text;  // the embedded schema (schema/schema_text.cpp.in)

namespace {

class parser_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = command_parser::create();
    ASSERT_TRUE(p.has_value()) << p.error().describe();
    parser = std::move(p.value());
  }
  // The refusal code of a line, or ok when it parses.
  errc code_of(std::string_view line) {
    parse_failure failure;
    auto cmd = parser->parse(line, failure);
    return cmd ? errc::ok : failure.error.code();
  }
  std::unique_ptr<command_parser> parser;
};

TEST_F(parser_test, parses_a_line_into_its_table_with_schema_defaults) {
  parse_failure failure;
  auto cmd = parser->parse(
      R"({"type":"utility.register","id":"L1","at":"2024-02-25T15:00:01Z","utility":"u","timezone":"Europe/Helsinki"})",
      failure);
  ASSERT_TRUE(cmd.has_value()) << failure.error.describe();
  EXPECT_EQ(cmd->kind, command_kind::utility_register);
  EXPECT_EQ(cmd->id, "L1");
  EXPECT_EQ(cmd->at.value(), 1708873201);
  const auto* t = cmd->as<UtilityRegister>();
  EXPECT_EQ(t->utility()->str(), "u");
  EXPECT_EQ(t->comm_timeout_s(), 60);         // SPEC default
  EXPECT_EQ(t->prepaid_reserve(), 5000000);   // SPEC default
}

TEST_F(parser_test, parses_nested_tou_windows_and_enums) {
  parse_failure failure;
  auto cmd = parser->parse(
      R"({"type":"tariff.publish","id":"T","at":"2024-02-25T15:00:05Z","utility":"u","tariff":"t","kind":"tou",)"
      R"("price":235000,"periods":[{"name":"peak","days":["Mon","Fri"],"from":"16:00","to":"21:00","price":453250}],)"
      R"("cpp_price":1147250})",
      failure);
  ASSERT_TRUE(cmd.has_value()) << failure.error.describe();
  const auto* t = cmd->as<TariffPublish>();
  EXPECT_EQ(t->kind(), TariffKind::tou);
  ASSERT_EQ(t->periods()->size(), 1u);
  EXPECT_EQ(t->periods()->Get(0)->days()->size(), 2u);
  EXPECT_EQ(t->periods()->Get(0)->days()->Get(1), Weekday::Fri);
  ASSERT_TRUE(t->cpp_price().has_value());
  EXPECT_EQ(*t->cpp_price(), 1147250);
}

TEST_F(parser_test, optional_register_is_absent_unless_sent) {
  parse_failure failure;
  auto without = parser->parse(
      R"({"type":"meter.interval","id":"m","at":"2024-03-01T00:15:00Z","device":"e","session":"s","start":"2024-03-01T00:00:00Z","seconds":900,"wh":10})",
      failure);
  ASSERT_TRUE(without.has_value());
  EXPECT_FALSE(without->as<MeterInterval>()->register_wh().has_value());
  auto with = parser->parse(
      R"({"type":"meter.interval","id":"m","at":"2024-03-01T00:15:00Z","device":"e","session":"s","start":"2024-03-01T00:00:00Z","seconds":900,"wh":10,"register_wh":0})",
      failure);
  ASSERT_TRUE(with.has_value());
  ASSERT_TRUE(with->as<MeterInterval>()->register_wh().has_value());
  EXPECT_EQ(*with->as<MeterInterval>()->register_wh(), 0);
}

// Identifiers become storage keys, where NUL ends a stream's name: a NUL in an account id ended
// an ingest with an uncaught exception (issue 23). Every identifier field, and the line's id,
// is refused invalid_field when it holds a control character; other strings may hold them.
TEST_F(parser_test, identifiers_holding_a_control_character_are_invalid_fields) {
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x1","at":"2024-02-25T15:00:20Z","utility":"u","account":"\u0000","customer":"c"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"session.plug","id":"x2","at":"2024-02-25T15:00:20Z","session":"\u0000","premise":"p"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"a\u001fb","at":"2024-03-01T00:00:00Z","account":"a","amount":5})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x3","at":"2024-02-25T15:00:20Z","utility":"u","account":"a\u007f","customer":"c"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"tariff.publish","id":"x4","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"t","kind":"tou","price":1,"periods":[{"name":"a\nb","days":["Mon"],"from":"00:00","to":"01:00","price":1}]})"),
            errc::invalid_field);
  // Not identifiers: a bind's VIN (an invalid one is the fallback row, never a refusal) and
  // non-ASCII letters in an identifier.
  EXPECT_EQ(code_of(R"({"type":"session.bind","id":"x5","at":"2024-03-01T00:00:00Z","session":"s","pev":"\u0000"})"),
            errc::ok);
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x6","at":"2024-02-25T15:00:20Z","utility":"u","account":"K\u00f6ln-7","customer":"c"})"),
            errc::ok);
}

// An interval starting at the epoch reached an invariant in apply: its local month in Los Angeles
// is December 1969, outside the months a bill can have (issue 23). Times within two days of the
// supported range's ends are invalid fields, in any timestamp field and in `at`.
TEST_F(parser_test, times_at_the_edges_of_the_supported_range_are_invalid_fields) {
  const auto interval = [](const std::string& start, const std::string& at) {
    return R"({"type":"meter.interval","id":"x2","at":")" + at +
           R"(","device":"e","session":"s","start":")" + start + R"(","seconds":900,"wh":894})";
  };
  EXPECT_EQ(code_of(interval("1970-01-01T00:00:00Z", "2024-03-13T17:45:52Z")), errc::invalid_field);
  EXPECT_EQ(code_of(interval("1970-01-02T23:59:59Z", "2024-03-13T17:45:52Z")), errc::invalid_field);
  EXPECT_EQ(code_of(interval("9999-12-31T23:59:59Z", "2024-03-13T17:45:52Z")), errc::invalid_field);
  EXPECT_EQ(code_of(interval("2024-03-13T17:30:00Z", "1970-01-01T00:00:01Z")), errc::invalid_field);
  EXPECT_EQ(code_of(interval("1970-01-03T00:00:00Z", "2024-03-13T17:45:52Z")), errc::ok);
  EXPECT_EQ(code_of(interval("2024-03-13T17:30:00Z", "9999-12-29T00:00:00Z")), errc::ok);
}

TEST_F(parser_test, format_errors_get_their_stable_codes) {
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x")"), errc::invalid_json);
  EXPECT_EQ(code_of(R"([1,2,3])"), errc::invalid_json);
  EXPECT_EQ(code_of("{\"type\":\"account.topup\",\"id\":\"\xff\",\"at\":\"2024-03-01T00:00:00Z\"}"), errc::invalid_json);
  EXPECT_EQ(code_of(R"({"id":"x","at":"2024-03-01T00:00:00Z"})"), errc::missing_field);
  EXPECT_EQ(code_of(R"({"type":"session.teleport","id":"x","at":"2024-03-01T00:00:00Z"})"), errc::unknown_type);
  EXPECT_EQ(code_of(R"({"type":"account.topup","at":"2024-03-01T00:00:00Z","account":"a","amount":5})"),
            errc::missing_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x","account":"a","amount":5})"), errc::missing_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x","at":"2024-03-01T00:00:00Z","account":"a"})"),
            errc::missing_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x","at":"2024-03-01T00:00:00Z","account":"a","amount":12.5})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x","at":"2024-03-01T00:00:00Z","account":"a","amount":"5"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x","at":"2024-03-01T00:00:00Z","account":"a","amount":-5})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":"x","at":"yesterday","account":"a","amount":5})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","kind":"gold"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","colour":"red"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"session.start","id":"x","at":"2024-03-01T00:00:00Z","session":"s","premise":"p","card":"c","online":"yes"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"bill.run","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","period":"2024-3"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.topup","id":7,"at":"2024-03-01T00:00:00Z","account":"a","amount":5})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(std::string(70000, ' ')), errc::line_too_long);
  // Magnitudes that could overflow a product or a sum are refused, not trusted.
  EXPECT_EQ(code_of(R"({"type":"meter.interval","id":"x","at":"2024-03-01T00:15:00Z","device":"e","session":"s","start":"2024-03-01T00:00:00Z","seconds":900,"wh":9223372036854775807})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"tariff.publish","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"t","kind":"flat","price":1000000001})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"meter.interval","id":"x","at":"2024-03-01T00:15:00Z","device":"e","session":"s","start":"2024-03-01T00:00:00Z","seconds":900,"wh":1000000000})"),
            errc::ok);
}

TEST_F(parser_test, refusal_order_for_repeated_and_malformed_fields) {
  // The type is read first (its last value); a field set twice is refused before the fields are
  // read (a_field_set_twice_is_invalid_wherever_it_is).
  EXPECT_EQ(code_of(R"({"type":"x","type":"session.unplug","id":"a","at":"2024-03-01T00:00:00Z","session":"s"})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"session.unplug","type":"x","id":"a","at":"2024-03-01T00:00:00Z","session":"s"})"),
            errc::unknown_type);
  EXPECT_EQ(code_of(R"({"type":"session.unplug","id":"a","at":"2024-03-01T00:00:00Z","session":"s","session":null})"),
            errc::invalid_field);
  // Malformed fields are reported in name order, whatever their order on the line.
  parse_failure failure;
  EXPECT_FALSE(parser->parse(R"({"type":"session.unplug","id":"a","at":"2024-03-01T00:00:00Z","session":"s","zzz":1,"aaa":2})",
                             failure));
  EXPECT_EQ(failure.error.message(), "unknown field 'aaa'");
  EXPECT_FALSE(parser->parse(
      R"({"type":"tariff.publish","id":"t","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"t","kind":"tou","price":100,"periods":[{"name":"p","days":["Mon","Xyz"],"from":"16:00","to":"24:00","price":5}]})",
      failure));
  EXPECT_EQ(failure.error.message(), "field 'periods[0].days[1]' has no value 'Xyz'");
}

TEST_F(parser_test, null_is_absent_for_every_field_type) {
  parse_failure failure;
  auto with_null = parser->parse(
      R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","kind":null})",
      failure);
  ASSERT_TRUE(with_null.has_value()) << failure.error.message();
  auto without = parser->parse(
      R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c"})", failure);
  ASSERT_TRUE(without.has_value());
  EXPECT_EQ(with_null->table, without->table);
  EXPECT_EQ(with_null->as<AccountOpen>()->kind(), AccountKind::postpaid);
  // A null beside another value of the same field is a field set twice, not an absent one.
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","kind":"prepaid","kind":null})"),
            errc::invalid_field);
  EXPECT_EQ(code_of(R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","kind":null,"kind":"prepaid"})"),
            errc::invalid_field);
}

// A field set twice is refused wherever it is, the envelope included: read as either value, a
// ledger would book what the sender may not have meant.
TEST_F(parser_test, a_field_set_twice_is_invalid_wherever_it_is) {
  parse_failure failure;
  for (const char* line : {
           R"({"type":"account.open","id":"x","id":"y","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c"})",
           R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","at":"2024-03-02T00:00:00Z","utility":"u","account":"a","customer":"c"})",
           R"({"type":"account.open","type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c"})",
           R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","customer":"c"})",
           R"({"type":"tariff.publish","id":"t","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"t","kind":"tou","price":100,"periods":[{"name":"p","days":["Mon"],"from":"16:00","from":"17:00","to":"24:00","price":5}]})"}) {
    EXPECT_FALSE(parser->parse(line, failure)) << line;
    EXPECT_EQ(failure.error.code(), errc::invalid_field) << line;
  }
  EXPECT_EQ(failure.error.message(), "field 'periods[0].from' is set more than once");
  EXPECT_FALSE(parser->parse(
      R"({"type":"account.open","id":"x","at":"2024-03-01T00:00:00Z","utility":"u","account":"a","customer":"c","kind":"prepaid","kind":"postpaid"})",
      failure));
  EXPECT_EQ(failure.error.message(), "field 'kind' is set more than once");
}

TEST_F(parser_test, a_nul_byte_after_the_object_is_not_json) {
  const std::string line = std::string(R"({"type":"session.unplug","id":"a","at":"2024-03-01T00:00:00Z","session":"s"})") +
                           std::string(1, '\0') + "trailing";
  EXPECT_EQ(code_of(line), errc::invalid_json);
  // An escaped NUL inside a string is JSON (identifiers refuse control characters on their own).
  EXPECT_EQ(code_of(R"({"type":"session.bind","id":"a","at":"2024-03-01T00:00:00Z","session":"s","pev":"a\u0000b"})"),
            errc::ok);
}

TEST_F(parser_test, every_command_type_of_the_spec_is_known) {
  for (const auto& t : command_tables) {
    const std::string line = R"({"type":")" + std::string(t.type) + R"(","id":"x","at":"2024-03-01T00:00:00Z"})";
    const errc code = code_of(line);
    EXPECT_NE(code, errc::unknown_type) << t.type;
  }
}

// Every line of a generated fleet and of the parser's fuzz corpus gets the same answer from the
// table built straight from its values as from flatbuffers' JSON parser: the same refusal, or a
// table whose every field (defaults printed) reads the same. (The corpus driver, fuzz_corpus.parse_line,
// verifies each direct table as its kind's type.)
TEST(table_building, building_straight_from_the_values_gives_flatbuffers_own_tables) {
  testing::temp_dir dir;
  const std::string fleet = dir.file("fleet.jsonl");
  const std::string gen = std::string(PEVLEDGER_FLEET_GEN) + " --seed 9 --premises-per-utility 3 --days 6 >" + fleet;
  ASSERT_EQ(std::system(gen.c_str()), 0);
  std::vector<std::string> lines;
  {
    std::ifstream in(fleet);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  const std::size_t fleet_lines = lines.size();
  for (const auto& entry : std::filesystem::directory_iterator(std::string(PEVLEDGER_SOURCE_DIR) + "/fuzz/corpus/parse_line")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::istringstream split(text.str());
    for (std::string line; std::getline(split, line);)
      if (!command_parser::is_blank(line)) lines.push_back(line);
  }
  ASSERT_GT(fleet_lines, 500u);
  ASSERT_GT(lines.size(), fleet_lines + 50);

  auto direct = command_parser::create(table_building::direct);
  auto theirs = command_parser::create(table_building::flatbuffers_json);
  ASSERT_TRUE(direct && theirs);
  flatbuffers::IDLOptions options;
  options.output_default_scalars_in_json = true;
  options.strict_json = true;
  flatbuffers::Parser printer(options);
  ASSERT_TRUE(printer.Parse(std::string(commands_fbs_text).c_str()));
  auto text_of = [&](const command& c) {
    printer.root_struct_def_ = printer.LookupStruct("pevledger.schema." + std::string(command_tables[static_cast<std::size_t>(c.kind)].table));
    std::string out;
    EXPECT_TRUE(flatbuffers::GenerateText(printer, c.table.data(), &out));
    return out;
  };
  std::size_t accepted = 0;
  for (const std::string& line : lines) {
    parse_failure f1, f2;
    const auto a = direct.value()->parse(line, f1);
    const auto b = theirs.value()->parse(line, f2);
    ASSERT_EQ(a.has_value(), b.has_value()) << line;
    if (!a) {
      EXPECT_EQ(f1.error.code(), f2.error.code()) << line;
      EXPECT_EQ(f1.error.message(), f2.error.message()) << line;
      continue;
    }
    ++accepted;
    EXPECT_EQ(a->kind, b->kind);
    EXPECT_EQ(text_of(*a), text_of(*b)) << line;
  }
  EXPECT_GE(accepted, fleet_lines);
}

}  // namespace
}  // namespace pevledger::schema
