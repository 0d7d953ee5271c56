// bench/parse: lines per second through the JSON-lines command parser alone (schema checks, the
// table built from the checked values), the stage the engine's reader thread runs ahead of the
// sequencer; the same with the tables built by flatbuffers' JSON parser, as before;
// and its first step, reading a line as JSON (schema/json_line: syntax, UTF-8, a tree of nodes),
// beside simdjson (Debian's libsimdjson-dev) doing the same work: its DOM parser on each line, and
// its parse_many on the whole text as a stream of documents. Each reads every line and reports how
// many it found valid. Reads a file of command lines (fleet_gen's month, say) into memory first,
// so disk reads are not timed. Prints one JSON object.
//
//   parse FILE [--lines N]

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <simdjson.h>

#include "bench/bench_info.hpp"
#include "schema/command_parser.hpp"
#include "schema/json_line.hpp"

int main(int argc, char** argv) {
  using namespace pevledger;
  if (argc < 2) {
    std::cerr << "usage: parse FILE [--lines N]\n";
    return 2;
  }
  std::size_t lines_max = 2'000'000;  // bounds the copy held in memory
  if (argc >= 4 && std::string(argv[2]) == "--lines") lines_max = std::stoull(argv[3]);
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "parse: cannot read " << argv[1] << "\n";
    return 2;
  }
  std::vector<std::string> lines;
  for (std::string line; lines.size() < lines_max && std::getline(in, line);)
    if (!schema::command_parser::is_blank(line)) lines.push_back(std::move(line));

  auto parser = schema::command_parser::create();
  if (!parser) {
    std::cerr << "parse: " << parser.error().message() << "\n";
    return 2;
  }
  // Each stage timed as the best of three passes over the lines (the first warms the caches).
  struct pass_result {
    double seconds = 1e300;
    std::uint64_t valid = 0;
  };
  auto best_of_three = [](auto pass) {
    pass_result best;
    for (int i = 0; i < 3; ++i) {
      const auto started = std::chrono::steady_clock::now();
      const std::uint64_t valid = pass();
      const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (took < best.seconds) best = {took, valid};
    }
    return best;
  };
  std::uint64_t bytes = 0;
  for (const std::string& line : lines) bytes += line.size();
  schema::parse_failure failure;
  auto parse_all = [&](schema::command_parser& p) {
    return best_of_three([&] {
      std::uint64_t accepted = 0;
      for (const std::string& line : lines) accepted += p.parse(line, failure) ? 1 : 0;
      return accepted;
    });
  };
  const pass_result direct = parse_all(**parser);
  const double s = direct.seconds;
  const std::uint64_t accepted = direct.valid, refused = lines.size() - direct.valid;

  // The same lines, their tables built by flatbuffers' JSON parser instead (table_building).
  auto theirs = schema::command_parser::create(schema::table_building::flatbuffers_json);
  if (!theirs) return 2;
  const pass_result flatbuffers_json = parse_all(**theirs);
  const double theirs_s = flatbuffers_json.seconds;
  const std::uint64_t theirs_accepted = flatbuffers_json.valid;

  schema::json_line doc;
  const pass_result ours = best_of_three([&] {
    std::uint64_t valid = 0;
    for (const std::string& line : lines) valid += doc.read(line) ? 1 : 0;
    return valid;
  });
  std::vector<simdjson::padded_string> padded;
  padded.reserve(lines.size());
  for (const std::string& line : lines) padded.emplace_back(line);
  simdjson::dom::parser dom;
  const pass_result simd_lines = best_of_three([&] {
    std::uint64_t valid = 0;
    for (const simdjson::padded_string& line : padded) valid += dom.parse(line).error() == simdjson::SUCCESS ? 1 : 0;
    return valid;
  });
  std::string all;
  for (const std::string& line : lines) all.append(line).push_back('\n');
  const simdjson::padded_string all_padded(all);
  simdjson::dom::parser stream_parser;
  const pass_result simd_stream = best_of_three([&] {
    std::uint64_t valid = 0;
    simdjson::dom::document_stream docs;
    if (stream_parser.parse_many(all_padded, 1u << 20).get(docs) != simdjson::SUCCESS) return valid;
    for (auto d : docs) valid += d.error() == simdjson::SUCCESS ? 1 : 0;
    return valid;
  });

  auto j = bench::header("parse");
  j["settings"] = {{"file", argv[1]}, {"lines_max", lines_max}};
  j["lines"] = lines.size();
  j["accepted"] = accepted;
  j["refused"] = refused;
  j["seconds"] = s;
  j["lines_per_s"] = static_cast<std::uint64_t>(static_cast<double>(lines.size()) / s);
  j["mb_per_s"] = static_cast<double>(bytes) / s / 1e6;
  j["flatbuffers_json_tables"] = {
      {"accepted", theirs_accepted},
      {"lines_per_s", static_cast<std::uint64_t>(static_cast<double>(lines.size()) / theirs_s)},
      {"direct_over_flatbuffers_json", std::round(theirs_s / s * 100) / 100}};
  auto lines_per_s = [&](const pass_result& r) {
    return static_cast<std::uint64_t>(static_cast<double>(lines.size()) / r.seconds);
  };
  j["json_only"] = {{"json_line_lines_per_s", lines_per_s(ours)},
                    {"json_line_valid", ours.valid},
                    {"simdjson_dom_per_line_lines_per_s", lines_per_s(simd_lines)},
                    {"simdjson_dom_per_line_valid", simd_lines.valid},
                    {"simdjson_parse_many_lines_per_s", lines_per_s(simd_stream)},
                    {"simdjson_parse_many_valid", simd_stream.valid},
                    {"simdjson_version", std::to_string(simdjson::SIMDJSON_VERSION_MAJOR) + "." +
                                             std::to_string(simdjson::SIMDJSON_VERSION_MINOR) + "." +
                                             std::to_string(simdjson::SIMDJSON_VERSION_REVISION)},
                    {"simdjson_implementation", std::string(simdjson::get_active_implementation()->name())},
                    {"share_of_full_parse", std::round(ours.seconds / s * 1000) / 1000},
                    {"simdjson_dom_over_json_line", std::round(ours.seconds / simd_lines.seconds * 100) / 100},
                    {"simdjson_parse_many_over_json_line", std::round(ours.seconds / simd_stream.seconds * 100) / 100}};
  std::cout << j.dump(2) << "\n";
}
