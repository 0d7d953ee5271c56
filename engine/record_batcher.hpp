#pragma once
// Packs the events of consecutive commands of one group commit into fewer records.
//
// An interval line yields an IntervalRecorded on its session's stream and one or two LineBooked on
// account streams. Within a group, a run of those on one stream becomes one IntervalsRecorded or
// LinesBooked record (schema/events.fbs, "batches"), so the log writes, hashes and indexes once per
// session or account per group rather than once per interval.
//
// Order on every stream is kept: an open batch is closed before any other event of its stream
// joins the group, and every batch is closed before the group goes to the log. Order across
// streams may change, which changes no state: an entity's state is a function of its own stream
// (docs/design.md, "Batched records").
//
// Bounds: a batch holds at most limits::record_batch_events_max events, and a group has at most
// one open batch per stream it touches.

#include <flatbuffers/flatbuffers.h>

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "schema/events_generated.h"
#include "storage/event_log.hpp"

namespace pevledger::engine_detail {

class record_batcher {
 public:
  // Called once for every record the group gains, with its stream; returns whether it is the
  // first record of that stream (engine/residency knows, and the log then need not look).
  using on_record = std::function<bool(std::string_view stream)>;

  // Adds one decided command to `group`: its batchable events join open batches, the others (and
  // the command's idempotency entry) join the group at once.
  void add(storage::command_to_append cmd, storage::append_batch& group, const on_record& record);
  // Closes every open batch into `group`; the group is then complete.
  void close_all(storage::append_batch& group, const on_record& record);
  [[nodiscard]] bool empty() const { return open_.empty(); }

 private:
  struct open_batch {
    schema::Event type = schema::Event::NONE;
    std::string first_command_id;
    unix_seconds at;
    std::vector<std::vector<std::uint8_t>> bodies;  // one EventBody each
    std::vector<std::string> command_ids;
  };
  void close(const std::string& stream, open_batch& batch, storage::append_batch& group, const on_record& record);

  std::unordered_map<std::string, open_batch> open_;
  flatbuffers::FlatBufferBuilder fbb_{1u << 16};
};

}  // namespace pevledger::engine_detail
