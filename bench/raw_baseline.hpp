#pragma once
// RocksDB's limit for a durable ingest, the peer of bench/ingest and bench/batch_path: `records`
// records of `record_bytes` each under 8-byte big-endian keys, `per_batch` to a synced WriteBatch,
// into a new database at `dir` (removed after). Returns the seconds the writes took, or nothing
// when RocksDB failed.

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace pevledger::bench {

inline std::optional<double> raw_synced_writebatches_seconds(const std::string& dir, std::uint64_t records,
                                                             std::size_t record_bytes, std::uint64_t per_batch) {
  double seconds = 0;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    if (!rocksdb::DB::Open(options, dir, &raw).ok()) return std::nullopt;
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const std::string value(record_bytes, 'x');
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t first = 0; first < records; first += per_batch) {
      rocksdb::WriteBatch batch;
      for (std::uint64_t i = first; i < std::min<std::uint64_t>(records, first + per_batch); ++i) {
        char key[8];
        for (int b = 0; b < 8; ++b) key[b] = static_cast<char>((i >> (56 - 8 * b)) & 0xff);
        if (!batch.Put(rocksdb::Slice(key, 8), value).ok()) return std::nullopt;
      }
      if (!db->Write(wo, &batch).ok()) return std::nullopt;
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::filesystem::remove_all(dir);
  return seconds;
}

}  // namespace pevledger::bench
