// bench/parse: lines per second through the JSON-lines command parser alone (schema checks and
// flatbuffers' JSON parser), the stage the engine's reader thread runs ahead of the sequencer.
// Reads a file of command lines (fleet_gen's month, say) into memory first, so disk reads are not
// timed. Prints one JSON object.
//
//   parse FILE [--lines N]

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench/bench_info.hpp"
#include "schema/command_parser.hpp"

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
  std::uint64_t accepted = 0, refused = 0, bytes = 0;
  schema::parse_failure failure;
  const auto t0 = std::chrono::steady_clock::now();
  for (const std::string& line : lines) {
    bytes += line.size();
    if ((*parser)->parse(line, failure)) ++accepted;
    else ++refused;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto j = bench::header("parse");
  j["settings"] = {{"file", argv[1]}, {"lines_max", lines_max}};
  j["lines"] = lines.size();
  j["accepted"] = accepted;
  j["refused"] = refused;
  j["seconds"] = s;
  j["lines_per_s"] = static_cast<std::uint64_t>(static_cast<double>(lines.size()) / s);
  j["mb_per_s"] = static_cast<double>(bytes) / s / 1e6;
  std::cout << j.dump(2) << "\n";
}
