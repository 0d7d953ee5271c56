#pragma once
// Interval batches: the binary form of a device's readings, for the engine's binary batch path
// (`engine::submit_interval_batches`). One batch carries the intervals one EUMD measured for one
// session, in start order, under one idempotency key. It is the FlatBuffers table IntervalBatch of
// schema/interval_batch.fbs (file identifier "PVIB"): a device adapter that receives that table
// hands its bytes on as they came; a program that has the readings as values encodes them here.
//
// A batch means what the meter.interval lines spelling its readings would (SPEC sections 5 and 6),
// with their checks, events and bills, and it is applied whole or not at all: a reading that
// conflicts with a recorded interval refuses the batch (interval_conflict), and none of its
// readings is recorded. Its id is a command id like a line's: a batch sent again under its id is a
// duplicate, whatever it holds. A batch whose readings were all recorded before is a duplicate too.
//
// Rules a batch meets, or it is refused whole with invalid_field (missing_field for an absent id,
// device, session or readings): `id`, `device` and `session` are 1 to 256 bytes of UTF-8 without a
// control character; `at` and every start lie between 1970-01-03T00:00:00Z and
// 9999-12-29T23:59:59Z; 1 to 4,096 readings, starts strictly increasing; seconds 1 to 86,400; Wh 0
// to 1e9; a register 0 to 1e15; at most 256 KiB in all.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pevledger/commands.hpp"

namespace pevledger {

inline constexpr std::size_t interval_batch_readings_max = 4096;

struct interval_reading {
  timestamp start;
  std::int64_t seconds = 900;
  std::int64_t wh = 0;
  std::optional<std::int64_t> register_wh;  // the EUMD's cumulative register at the interval's end
};

struct interval_batch {
  std::string id;  // the idempotency key
  timestamp at;    // business time
  std::string device, session;
  std::vector<interval_reading> readings;
};

// The FlatBuffers bytes of `batch`, as schema/interval_batch.fbs lays them out. Encoding checks
// nothing: the engine does, when it is submitted.
[[nodiscard]] std::vector<std::uint8_t> encode(const interval_batch& batch);

}  // namespace pevledger
