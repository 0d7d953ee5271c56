// bench/replay: events per second of a full replay (verify every record, fold with the engine's
// apply, render every projection) beside raw RocksDB iteration over the same log's records, in the
// same run. The log is a fleet month written through the engine (fleet_gen's scenario).
//
//   replay [--premises-per-utility N] [--dir DIR] [--keep]
//
// When DIR already holds a database (DIR/db, as bench/ingest --keep leaves one), that log is
// replayed instead of writing a new one (pass the size it was written with, for the record;
// settings.log_reused says which). "Events" are the log's records; a batched record
// (docs/design.md, "Batched records") counts once.
//
// With the default 4,700 premises per utility the log holds about 10.2 million events.

#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/bench_info.hpp"
#include "pevledger/engine.hpp"
#include "replay/replay.hpp"

int main(int argc, char** argv) {
  int premises = 4700;
  std::string dir = "/tmp/pevledger-bench-replay";
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--premises-per-utility" && i + 1 < argc) premises = std::stoi(argv[++i]);
    else if (flag == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (flag == "--keep") keep = true;
  }
  const std::string db = dir + "/db";
  const std::string gen = std::filesystem::path(argv[0]).parent_path().string() + "/fleet_gen";
  double ingest_s = 0;
  std::uint64_t lines = 0;
  const bool log_reused = std::filesystem::exists(db);
  if (!log_reused) {
    std::filesystem::create_directories(dir);
    const std::string scenario = dir + "/fleet.jsonl";
    const std::string cmd = "'" + gen + "' --seed 11 --premises-per-utility " + std::to_string(premises) + " > '" + scenario + "'";
    if (std::system(cmd.c_str()) != 0) return 2;
    auto engine = pevledger::engine::open(db);
    if (!engine) return 2;
    std::ifstream in(scenario);
    const auto t0 = std::chrono::steady_clock::now();
    auto summary = engine.value()->ingest(in, {});
    if (!summary) {
      std::cerr << summary.error().describe() << '\n';
      return 2;
    }
    ingest_s = pevledger::bench::seconds_since(t0);
    lines = summary->accepted + summary->duplicates + summary->refused;
    std::filesystem::remove(scenario);
  }

  // Raw iteration: every stored record of the events column family, bytes touched.
  std::uint64_t raw_records = 0, raw_bytes = 0;
  double raw_s = 0;
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name : {"default", "events", "streams", "stream_heads", "commands", "projections", "snapshots", "intervals"})
      cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), db, cfs, &handles, &raw).ok()) return 2;
    std::unique_ptr<rocksdb::DB> guard(raw);
    rocksdb::ReadOptions ro;
    ro.readahead_size = 4u << 20;
    ro.fill_cache = false;  // as the log's own scan reads: each block once
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(ro, handles[1]));
    std::uint64_t checksum = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto v = it->value();
      checksum += static_cast<unsigned char>(v.data()[v.size() / 2]);
      raw_bytes += v.size();
      ++raw_records;
    }
    raw_s = pevledger::bench::seconds_since(t0);
    if (checksum == 42) std::cerr << "";  // keep the loop honest
    it.reset();
    for (auto* h : handles) {
      if (!raw->DestroyColumnFamilyHandle(h).ok()) return 2;
    }
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto report = pevledger::replay::run(db, "", true);
  const double replay_s = pevledger::bench::seconds_since(t0);
  if (!report || !report->ok) {
    std::cerr << "replay failed\n";
    return 2;
  }
  if (!keep) std::filesystem::remove_all(dir);

  auto j = pevledger::bench::header("replay");
  j["settings"] = {{"premises_per_utility", premises}, {"verify", true}, {"log_reused", log_reused}};
  if (lines > 0) {
    j["ingest_lines"] = lines;
    j["ingest_lines_per_s"] = static_cast<long long>(static_cast<double>(lines) / ingest_s);
  }
  j["events"] = raw_records;
  j["event_bytes"] = raw_bytes;
  const double replay_rate = static_cast<double>(raw_records) / replay_s;
  const double raw_rate = static_cast<double>(raw_records) / raw_s;
  j["replay_events_per_s"] = static_cast<long long>(replay_rate);
  j["raw_iteration_events_per_s"] = static_cast<long long>(raw_rate);
  j["ratio"] = std::round(replay_rate / raw_rate * 1000) / 1000;
  j["goal_ratio_min"] = 0.5;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
