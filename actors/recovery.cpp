#include "actors/recovery.hpp"

#include "core/apply.hpp"
#include "core/snapshot_codec.hpp"

namespace pevledger::actors {

result<recovered_entity> recover_entity(const storage::event_log& log, std::string_view stream, core::ledger_state& state,
                                        log_seq until) {
  recovered_entity out;
  // Most lookups of an entity that is not in memory are of one that does not exist yet (a new
  // session, a new account): the bloom-filtered head answers them without reading any block.
  auto length = log.stream_length(stream);
  if (!length) return length.error();
  if (length.value() == 0) return out;
  auto snap = log.newest_snapshot(stream, until);
  if (!snap) return snap.error();
  if (snap->has_value()) {
    PEV_RETURN_IF_ERROR(core::restore_entity(state, stream, (*snap)->state));
    out.stream_seq = out.snapshot_seq = (*snap)->stream_seq;
    out.snapshot_bytes = (*snap)->state.size();
    if (out.stream_seq == length.value()) return out;  // nothing after the snapshot: no tail to read
  }
  // Bounded by the snapshot policy: at most max(256, snapshot bytes / 64) events after a snapshot
  // the engine wrote, or the whole stream of an entity never snapshotted.
  PEV_RETURN_IF_ERROR(log.scan_stream(stream, out.stream_seq, until, [&](const schema::Record& r) {
    core::apply(state, *r.body_nested_root(), unix_seconds(r.at()));
    ++out.stream_seq;
    return status::ok();
  }));
  return out;
}

}  // namespace pevledger::actors
