// schema/json_line against nlohmann's parser: on hand-picked lines and on seeded random mutations of
// them, both must agree on which lines are JSON, and on every value, key and number kind of those
// that are. The command parser's refusals (invalid_json first) rest on that agreement.

#include "schema/json_line.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace pevledger::schema {
namespace {

using json = nlohmann::json;

// A tagged rendering of a value: the same text for the same value read by either parser.
void render(const json& j, std::string& out) {
  switch (j.type()) {
    case json::value_t::null: out += "n"; break;
    case json::value_t::boolean: out += j.get<bool>() ? "T" : "F"; break;
    case json::value_t::number_integer: out += "i" + std::to_string(j.get<std::int64_t>()); break;
    case json::value_t::number_unsigned: out += "u" + std::to_string(j.get<std::uint64_t>()); break;
    case json::value_t::number_float: out += "x"; break;
    case json::value_t::string: out += "s" + std::to_string(j.get_ref<const std::string&>().size()) + ":" + j.get<std::string>(); break;
    case json::value_t::array:
      out += "[";
      for (const auto& e : j) render(e, out), out += ",";
      out += "]";
      break;
    case json::value_t::object:  // nlohmann keeps members in name order, the last of a repeated name
      out += "{";
      for (auto it = j.begin(); it != j.end(); ++it) out += std::to_string(it.key().size()) + ":" + it.key() + "=", render(*it, out), out += ",";
      out += "}";
      break;
    default: out += "?";
  }
}

void render(const json_line& doc, std::uint32_t i, std::string& out) {
  const json_line::node& n = doc.at(i);
  switch (n.type) {
    case json_line::kind::null: out += "n"; break;
    case json_line::kind::boolean: out += n.boolean ? "T" : "F"; break;
    case json_line::kind::integer: out += "i" + std::to_string(n.integer); break;
    case json_line::kind::unsigned_integer: out += "u" + std::to_string(n.unsigned_integer); break;
    case json_line::kind::number_not_integer: out += "x"; break;
    case json_line::kind::string: out += "s" + std::to_string(n.text.size()) + ":" + std::string(n.text); break;
    case json_line::kind::array: {
      out += "[";
      std::uint32_t count = 0;
      for (std::uint32_t e = i + 1; e < n.next; e = doc.at(e).next, ++count) render(doc, e, out), out += ",";
      EXPECT_EQ(count, n.size);
      out += "]";
      break;
    }
    case json_line::kind::object: {
      out += "{";
      std::vector<std::uint32_t> members;
      doc.members_by_name(i, members);
      for (std::uint32_t m : members) {
        const std::string key(doc.at(m).key);
        out += std::to_string(key.size()) + ":" + key + "=", render(doc, m, out), out += ",";
        EXPECT_EQ(doc.member(i, key), m);
      }
      out += "}";
      break;
    }
  }
}

// Checks one line; returns whether it was JSON.
bool agree(json_line& doc, const std::string& line) {
  const json expected = json::parse(line, nullptr, /*allow_exceptions=*/false);
  const bool ours = doc.read(line);
  EXPECT_EQ(ours, !expected.is_discarded()) << "line: " << line;
  if (!ours || expected.is_discarded()) return false;
  std::string a, b;
  render(expected, a);
  render(doc, 0, b);
  EXPECT_EQ(b, a) << "line: " << line;
  EXPECT_EQ(doc.at(0).next, doc.node_count());
  // Every value's span is its own text: a member's, `"name": value`, reads as a one-member object.
  std::vector<bool> is_member(doc.node_count(), false);
  for (std::uint32_t i = 0; i < doc.node_count(); ++i)
    if (doc.at(i).type == json_line::kind::object)
      for (std::uint32_t c = i + 1; c < doc.at(i).next; c = doc.at(c).next) is_member[c] = true;
  json_line part;
  for (std::uint32_t i = 0; i < doc.node_count(); ++i) {
    const json_line::node& n = doc.at(i);
    if (n.begin > n.end || n.end > line.size()) {
      ADD_FAILURE() << "span [" << n.begin << ", " << n.end << ") of line " << line;
      break;
    }
    const std::string span = line.substr(n.begin, n.end - n.begin);
    const std::string text = is_member[i] ? "{" + span + "}" : span;
    EXPECT_FALSE(json::parse(text, nullptr, false).is_discarded()) << "span " << span << " of line " << line;
    if (!part.read(text)) {
      ADD_FAILURE() << "span " << span << " of line " << line;
      break;
    }
    EXPECT_EQ(part.at(is_member[i] ? part.member(0, n.key) : 0).type, n.type) << span;
  }
  return true;
}

const char* const seed_lines[] = {
    R"({"type":"meter.interval","id":"m1","at":"2024-03-01T00:15:00Z","device":"e","session":"s","start":"2024-03-01T00:00:00Z","seconds":900,"wh":12,"register_wh":18446744073709551615})",
    R"({"type":"tariff.publish","id":"t","price":-9223372036854775808,"periods":[{"name":"p","days":["Mon","Sun"],"from":"16:00","to":"24:00","price":5}],"cpp_price":null})",
    R"({"a":"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r","b":[true,false,null,[],{}],"c":-0,"d":1.5e-3,"e":"é漢😀","f":0})",
    R"(  {"type" : "session.unplug" , "id" : "a", "a":"x", "a":"y" , "n":[1,[2,[3,{"k":-12}]]] }  )",
    R"({"x":-9223372036854775809,"y":18446744073709551616,"z":1E+2,"w":"\u0000"})",
    "\xEF\xBB\xBF{\"bom\":1}",
};

TEST(json_line, agrees_with_nlohmann_on_hand_picked_lines) {
  json_line doc;
  for (const char* line : seed_lines) EXPECT_TRUE(agree(doc, line)) << line;
  for (const char* bad : {"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\"}", "01", "-", "1.", "1e", ".5", "+1", "tru",
                          "nul", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\xC0\x80\"",
                          "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"", "\"\xE0\x80\xAF\"", "\"a\x01\"", "{} {}", "[1]x", "1e400",
                          "-1.5e999", "'a'", "{a:1}", "[\"\\u12\"]"})
    EXPECT_FALSE(agree(doc, bad)) << bad;
  EXPECT_FALSE(agree(doc, std::string("{\"a\":\"\0\"}", 9)));
  // The one place the two differ, on purpose: nlohmann ends its input at a NUL byte, so it reads
  // `{"a":1}` NUL `garbage` as JSON. RFC 8259 has no such rule, and a ledger refuses the line.
  const std::string nul_tail("{\"a\":1}\0garbage", 15);
  EXPECT_FALSE(json::parse(nul_tail, nullptr, false).is_discarded());
  EXPECT_FALSE(doc.read(nul_tail));
  EXPECT_FALSE(doc.read(std::string("{\"a\":1}\0", 8)));
}

TEST(json_line, agrees_with_nlohmann_on_random_mutations) {
  // Bytes a mutation inserts or writes: JSON's own, digits and letters of its literals, escapes,
  // control characters and bytes of broken or valid UTF-8.
  const std::string alphabet = std::string("{}[]\",:\\/ \t\nu0123456789abcdefABCDEF.eE+-tfnrl\x01\x1f") +
                               "\x7f\x80\xbf\xc0\xc2\xdf\xe0\xed\xef\xf0\xf4\xf5\xff";
  std::mt19937_64 rng(20261202);  // seeded: a failure replays exactly
  json_line doc;
  std::size_t valid = 0;
  constexpr int cases = 200'000;
  for (int c = 0; c < cases; ++c) {
    std::string line = seed_lines[rng() % std::size(seed_lines)];
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations && !line.empty(); ++m) {
      const std::size_t at = rng() % line.size();
      switch (rng() % 4) {
        case 0: line.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        case 1: line.erase(at, 1); break;
        case 2: line[at] = alphabet[rng() % alphabet.size()]; break;
        default: line.insert(at, line.substr(rng() % line.size(), 1 + rng() % 8)); break;
      }
    }
    if (agree(doc, line)) ++valid;
    if (HasFailure()) break;
  }
  // Both outcomes must have been exercised, or the comparison says little.
  EXPECT_GT(valid, static_cast<std::size_t>(cases / 50));
  EXPECT_LT(valid, static_cast<std::size_t>(cases - cases / 50));
}

}  // namespace
}  // namespace pevledger::schema
