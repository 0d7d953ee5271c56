// bench/log_append: records per second through the event log (group commit, synced WAL, hash
// chain, stream and command indexes) beside raw RocksDB WriteBatch writes, synced, same batch size,
// in the same run. `ratio` compares with raw writes of the same bytes (each record plus the two
// index entries the log writes for it); `ratio_records_only` with raw writes of the records alone.
// Prints one JSON object.
//
//   log_append [--records N] [--batch N] [--dir DIR]

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <sys/resource.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <iostream>

#include "bench/bench_info.hpp"
#include "storage/event_log.hpp"

namespace {

using namespace pevledger;

// CPU seconds (user + system) of the whole process so far.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::vector<std::uint8_t> interval_body(std::uint64_t i) {
  flatbuffers::FlatBufferBuilder fbb(256);
  const std::string device = "eumd-" + std::to_string(i % 100000);
  const std::string session = "s-" + std::to_string(i / 16);
  auto reading = schema::CreateIntervalReadingDirect(fbb, device.c_str(), session.c_str(),
                                                     1709251200 + static_cast<std::int64_t>(i % 16) * 900, 900,
                                                     static_cast<std::int64_t>(1000 + i % 977),
                                                     static_cast<std::int64_t>(50000 + i));
  auto e = schema::CreateIntervalRecorded(fbb, reading);
  fbb.Finish(schema::CreateEventBody(fbb, schema::Event::IntervalRecorded, e.Union()));
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t records = 1'000'000;
  std::uint64_t batch = 1000;
  std::size_t in_flight_max = 4;
  std::string dir = "/tmp/pevledger-bench-log-append";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--records") records = std::stoull(argv[i + 1]);
    else if (flag == "--batch") batch = std::stoull(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--in-flight") in_flight_max = std::stoull(argv[i + 1]);
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  // --- through the event log -----------------------------------------------------------------
  double log_s = 0, log_cpu_s = 0;
  std::uint64_t record_bytes = 0;
  {
    auto log = storage::event_log::open(dir + "/log");
    if (!log) {
      std::cerr << log.error().describe() << '\n';
      return 2;
    }
    std::deque<std::future<result<storage::append_receipt>>> in_flight;
    // Payloads are prepared before the clock starts, as the raw baselines' are; each append still
    // copies them into batches the log takes ownership of.
    std::vector<std::vector<std::uint8_t>> bodies(batch);
    for (std::uint64_t i = 0; i < batch; ++i) bodies[i] = interval_body(i);
    const double cpu0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t first = 0; first < records; first += batch) {
      storage::append_batch b;
      b.commands.reserve(batch);
      for (std::uint64_t i = first; i < std::min(records, first + batch); ++i)
        b.commands.push_back({"m" + std::to_string(i), unix_seconds(1709251200 + static_cast<std::int64_t>(i)),
                              {{"session/s-" + std::to_string(i / 16), bodies[i - first]}}});
      in_flight.push_back(log.value()->append(std::move(b)));
      // Bounded pipeline: a few batches queued while one is being written.
      while (in_flight.size() > in_flight_max) {
        if (!in_flight.front().get()) return 2;
        in_flight.pop_front();
      }
    }
    while (!in_flight.empty()) {
      if (!in_flight.front().get()) return 2;
      in_flight.pop_front();
    }
    log_s = bench::seconds_since(t0);
    log_cpu_s = cpu_seconds() - cpu0;
    auto last = log.value()->read(log.value()->last_seq());
    if (!last) return 2;
    record_bytes = last->bytes.size();
  }

  // --- raw RocksDB WriteBatch, synced, same batch size -----------------------------------------
  // Two baselines built before the clock starts, each a plain Put per key/value:
  //   same bytes:   what the log writes per record (the record, its stream index entry and its
  //                 command index entry) into the same column families;
  //   records only: the record alone, into the default column family.
  struct raw_result {
    double wall_s = 0;
    double cpu_s = 0;
  };
  auto run_raw = [&](bool with_indexes) -> std::optional<raw_result> {
    const std::string path = dir + (with_indexes ? "/raw-same-bytes" : "/raw-records-only");
    rocksdb::DBOptions db_options;
    db_options.create_if_missing = true;
    db_options.create_missing_column_families = true;
    db_options.max_background_jobs = 2;
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.write_buffer_size = 128u << 20;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {{"default", cf_options},
                                                                 {"streams", rocksdb::ColumnFamilyOptions()},
                                                                 {"commands", rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(db_options, path, descriptors, &cfs, &raw).ok()) return std::nullopt;
    std::unique_ptr<rocksdb::DB> db(raw);
    std::vector<std::string> values(batch);
    for (std::uint64_t i = 0; i < batch; ++i) {
      flatbuffers::FlatBufferBuilder fbb;
      storage::build_record(fbb, {log_seq(i + 1), i + 1, {}}, "session/s-" + std::to_string(i / 16),
                            unix_seconds(1709251200), "m" + std::to_string(i), interval_body(i));
      values[i].assign(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
    }
    auto be64 = [](std::uint64_t v, char* out) {
      for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((v >> (56 - 8 * k)) & 0xff);
    };
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const double cpu0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t first = 0; first < records; first += batch) {
      rocksdb::WriteBatch wb;
      for (std::uint64_t i = first; i < std::min(records, first + batch); ++i) {
        char key[8];
        be64(i + 1, key);
        wb.Put(cfs[0], rocksdb::Slice(key, 8), values[i - first]);
        if (!with_indexes) continue;
        std::string stream_key = "session/s-" + std::to_string(i / 16);
        stream_key.push_back('\0');
        char stream_seq[8];
        be64(i % 16 + 1, stream_seq);
        stream_key.append(stream_seq, 8);
        wb.Put(cfs[1], stream_key, rocksdb::Slice(key, 8));
        char outcome[12] = {};
        be64(i + 1, outcome);
        outcome[11] = 1;
        wb.Put(cfs[2], "m" + std::to_string(i), rocksdb::Slice(outcome, 12));
      }
      if (!db->Write(wo, &wb).ok()) return std::nullopt;
    }
    raw_result r{bench::seconds_since(t0), cpu_seconds() - cpu0};
    for (auto* cf : cfs) {
      if (!db->DestroyColumnFamilyHandle(cf).ok()) return std::nullopt;
    }
    return r;
  };
  const auto same_bytes = run_raw(true);
  const auto records_only = run_raw(false);
  if (!same_bytes || !records_only) return 2;
  std::filesystem::remove_all(dir);

  auto j = bench::header("log_append");
  j["settings"] = {{"records", records},
                   {"batch_records", batch},
                   {"appends_in_flight_max", in_flight_max},
                   {"sync", true},
                   {"record_bytes", record_bytes}};
  const double n = static_cast<double>(records);
  const double log_rate = n / log_s;
  const double raw_rate = n / same_bytes->wall_s;
  const double records_only_rate = n / records_only->wall_s;
  auto rounded = [](double v) { return std::round(v * 1000) / 1000; };
  j["log_records_per_s"] = static_cast<long long>(log_rate);
  j["raw_records_per_s"] = static_cast<long long>(raw_rate);
  j["ratio"] = rounded(log_rate / raw_rate);
  j["goal_ratio_min"] = 0.7;
  j["raw_records_only_per_s"] = static_cast<long long>(records_only_rate);
  j["ratio_records_only"] = rounded(log_rate / records_only_rate);
  j["cpu_s"] = {{"log", rounded(log_cpu_s)}, {"raw", rounded(same_bytes->cpu_s)},
                {"raw_records_only", rounded(records_only->cpu_s)}};
  std::cout << j.dump(2) << std::endl;
  return 0;
}
