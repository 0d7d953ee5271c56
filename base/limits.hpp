#pragma once
// Upper bounds, in one place, for every input, queue and batch. A limit that is reached gives an
// error value or backpressure, never unbounded growth.

#include <cstddef>
#include <cstdint>

namespace pevledger::limits {

// SPEC section 6: a longer command line is refused with line_too_long.
inline constexpr std::size_t command_line_bytes_max = 65536;
// Identifiers (utility, account, premise, device, session, card, tariff, command id).
inline constexpr std::size_t identifier_bytes_max = 256;
inline constexpr std::size_t tou_windows_max = 64;
inline constexpr std::size_t whitelist_cards_max = 100000;
// Group commit: requests waiting for the log writer before `append` blocks the caller.
inline constexpr std::size_t log_queue_requests_max = 256;
// Group commit: one synced WriteBatch carries at most this many requests and bytes.
inline constexpr std::size_t log_batch_requests_max = 1024;
inline constexpr std::size_t log_batch_bytes_max = 32u << 20;
// RocksDB memory: all memtables together (flushed early beyond it), and the shared block cache.
inline constexpr std::size_t log_memtables_bytes_max = 128u << 20;
inline constexpr std::size_t log_block_cache_bytes = 32u << 20;
inline constexpr std::size_t log_block_cache_bytes_min = 1u << 20;
// Snapshots larger than this are stored in RocksDB blob files, outside the table blocks.
inline constexpr std::size_t log_snapshot_inline_bytes_max = 16u << 10;
// Events one command may produce (a bill run produces one per account and line group).
inline constexpr std::size_t events_per_command_max = 1u << 22;
// Command lines the ingest path decides before one synced group commit.
inline constexpr std::size_t ingest_group_lines_max = 16384;
// Events one batched record carries (engine/record_batcher.hpp); a group's lines bound it too.
inline constexpr std::size_t record_batch_events_max = 4096;
// An interval batch (schema/interval_batch.fbs): its readings, and its bytes (32 a reading, the
// three identifiers and FlatBuffers' framing fit well within).
inline constexpr std::size_t interval_batch_readings_max = 4096;
inline constexpr std::size_t interval_batch_bytes_max = 256u << 10;
// Interval batches one engine::submit_interval_batches call takes, and their bytes in all (each
// batch is copied before the first is decided).
inline constexpr std::size_t interval_batches_per_call_max = 1u << 16;
inline constexpr std::size_t interval_batches_bytes_per_call_max = 64u << 20;
// Business time accepted: years 1970 to 9999.
inline constexpr std::int64_t unix_seconds_max = 253402300799;

}  // namespace pevledger::limits
