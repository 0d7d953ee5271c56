// bench/ingest: end-to-end durable ingest of a fleet month (parse, decide, rate, apply, group
// commit, acknowledged only when durable) in intervals per second, beside RocksDB's limit measured
// in the same run: synced WriteBatches of as many records as there were intervals, one record per
// interval of the size the log gives an interval recorded alone, as many to a batch as the
// engine's default group commit has lines. Prints JSON.
//
// The month's bill runs are held back into DIR/bill_runs.jsonl, so that bench/bill_run can time
// them on this database; with --keep, the month without them (DIR/month.jsonl) and the database
// (DIR/db) stay for it and for bench/peer_sql.sh.
//
//   ingest [--premises-per-utility N] [--resident-entities N] [--dir DIR] [--keep]
//
// --resident-entities sizes the engine's working set (engine_options::resident_entities_max) as a
// utility would for its territory: the month's daily working set (sessions and the PEVs, premises,
// devices and accounts they touch) is about 8 entities per charging PEV. The peak resident memory
// of the whole ingest is reported beside it.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>

#include "bench/bench_info.hpp"
#include "bench/raw_baseline.hpp"
#include "pevledger/engine.hpp"
#include "storage/event_log.hpp"

int main(int argc, char** argv) {
  // The engine's default group commit; the raw baseline writes batches of as many records.
  const std::uint64_t group_lines = pevledger::engine_options{}.group_lines;
  int premises = 1500;
  std::string dir = "/tmp/pevledger-bench-ingest";
  bool keep = false;
  std::size_t resident = 400'000;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--keep") keep = true;
    else if (flag == "--premises-per-utility" && i + 1 < argc) premises = std::stoi(argv[++i]);
    else if (flag == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (flag == "--resident-entities" && i + 1 < argc) resident = std::stoul(argv[++i]);
    else {
      std::cerr << "usage: ingest [--premises-per-utility N] [--resident-entities N] [--dir DIR] [--keep]\n";
      return 2;
    }
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  // The month without its bill runs, which bench/bill_run times on its own, split off as the
  // generator writes it.
  const std::string month = dir + "/month.jsonl";
  std::uint64_t lines = 0, intervals = 0, input_bytes = 0;
  {
    FILE* fleet = popen(pevledger::bench::fleet_command(argv[0], premises).c_str(), "r");
    if (fleet == nullptr) return 2;
    std::ofstream month_out(month), runs_out(dir + "/bill_runs.jsonl");
    char* buffer = nullptr;
    std::size_t capacity = 0;
    for (ssize_t n; (n = getline(&buffer, &capacity, fleet)) > 0;) {
      const std::string_view line(buffer, static_cast<std::size_t>(n));
      if (line.find(R"("type":"bill.run")") != std::string_view::npos) {
        runs_out << line;
        continue;
      }
      ++lines;
      input_bytes += line.size();
      if (line.find(R"("type":"meter.interval")") != std::string_view::npos) ++intervals;
      month_out << line;
    }
    std::free(buffer);
    if (pclose(fleet) != 0 || !month_out || !runs_out) return 2;
  }

  double ingest_s = 0;
  long long peak_rss = 0;
  std::uint64_t records = 0, sampled_records = 0, sampled_bytes = 0, lone_interval_records = 0,
                lone_interval_bytes = 0;
  pevledger::ingest_summary summary;
  {
    pevledger::engine_options options;
    options.resident_entities_max = resident;
    auto engine = pevledger::engine::open(dir + "/db", options);
    if (!engine) return 2;
    std::ifstream in(month);
    const auto t0 = std::chrono::steady_clock::now();
    auto s = engine.value()->ingest(in, {});
    ingest_s = pevledger::bench::seconds_since(t0);
    peak_rss = pevledger::bench::peak_resident_bytes();
    if (!s) {
      std::cerr << s.error().describe() << '\n';
      return 2;
    }
    summary = s.value();
    records = engine.value()->log_size();
  }
  {
    // Record sizes from the first records of the log (bench/replay reads all of it): enough
    // intervals recorded alone to size the raw baseline's records.
    constexpr std::uint64_t sample_records_max = 2'000'000;
    auto log = pevledger::storage::event_log::open(dir + "/db");
    if (!log) return 2;
    const auto scanned = log.value()->scan_bytes(
        pevledger::log_seq(1), pevledger::log_seq(std::min(log.value()->last_seq().value(), sample_records_max)),
        [&](const pevledger::schema::Record& r, std::span<const std::uint8_t> bytes) {
          ++sampled_records;
          sampled_bytes += bytes.size();
          if (static_cast<pevledger::schema::Event>(r.event_type()) == pevledger::schema::Event::IntervalRecorded) {
            ++lone_interval_records;
            lone_interval_bytes += bytes.size();
          }
          return pevledger::status::ok();
        });
    if (!scanned.is_ok()) return 2;
  }

  // The limit: synced WriteBatches of `intervals` records, each the size of an interval recorded
  // alone in this log (what one record per interval would cost).
  const std::size_t record_size = lone_interval_records != 0 ? lone_interval_bytes / lone_interval_records
                                  : sampled_records != 0     ? sampled_bytes / sampled_records
                                                             : 64;
  const auto raw = pevledger::bench::raw_synced_writebatches_seconds(dir + "/raw", intervals, record_size, group_lines);
  if (!raw) return 2;
  const double raw_s = *raw;
  if (!keep) std::filesystem::remove_all(dir);

  auto j = pevledger::bench::header("ingest");
  j["settings"] = {{"premises_per_utility", premises}, {"group_lines", group_lines}, {"resident_entities_max", resident}, {"sync", true}};
  j["lines"] = lines;
  j["input_bytes"] = input_bytes;
  j["intervals"] = intervals;
  j["accepted"] = summary.accepted;
  j["duplicates"] = summary.duplicates;
  j["refused"] = summary.refused;
  j["log_records"] = records;
  j["sampled_records"] = sampled_records;
  j["sampled_lone_interval_records"] = lone_interval_records;
  j["ingest_s"] = std::round(ingest_s * 100) / 100;
  j["peak_resident_bytes"] = peak_rss;
  j["lines_per_s"] = static_cast<long long>(static_cast<double>(lines) / ingest_s);
  const double rate = static_cast<double>(intervals) / ingest_s;
  const double raw_rate = static_cast<double>(intervals) / raw_s;
  j["intervals_per_s"] = static_cast<long long>(rate);
  j["raw_record_bytes"] = record_size;
  j["raw_synced_writebatch_records_per_s"] = static_cast<long long>(raw_rate);
  j["ratio"] = std::round(rate / raw_rate * 1000) / 1000;
  j["goal_ratio_min"] = 1.2;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
