#include "pevledger/interval_batch.hpp"

#include <limits>

#include "schema/interval_batch_generated.h"

namespace pevledger {

std::vector<std::uint8_t> encode(const interval_batch& batch) {
  flatbuffers::FlatBufferBuilder fbb(256 + 32 * batch.readings.size());
  std::vector<wire::IntervalRow> rows;
  rows.reserve(batch.readings.size());
  for (const interval_reading& r : batch.readings) {
    // Seconds beyond the row's 32 bits are written as 0, which the engine refuses, rather than cut.
    const bool fits = r.seconds >= 0 && r.seconds <= std::numeric_limits<std::int32_t>::max();
    rows.emplace_back(r.start.time_since_epoch().count(), r.wh, r.register_wh.value_or(0),
                      fits ? static_cast<std::int32_t>(r.seconds) : 0, r.register_wh.has_value());
  }
  // Strings by their length: an identifier holding a NUL reaches the engine whole, to be refused.
  const auto id = fbb.CreateString(batch.id), device = fbb.CreateString(batch.device),
             session = fbb.CreateString(batch.session);
  const auto root = wire::CreateIntervalBatch(fbb, id, batch.at.time_since_epoch().count(), device, session,
                                              fbb.CreateVectorOfStructs(rows));
  wire::FinishIntervalBatchBuffer(fbb, root);
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

}  // namespace pevledger
