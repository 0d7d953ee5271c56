#pragma once
// Collects the events a decision produces, each built as its own EventBody FlatBuffer.

#include <flatbuffers/flatbuffers.h>

#include <string>
#include <vector>

#include "core/decide.hpp"

namespace pevledger::core {

class event_sink {
 public:
  // `build(fbb)` creates the event table and returns its offset.
  template <class Build>
  void emit(std::string stream, schema::Event type, Build&& build) {
    fbb_.Clear();
    const auto table = build(fbb_);
    fbb_.Finish(schema::CreateEventBody(fbb_, type, table.Union()));
    events_.push_back({std::move(stream), {fbb_.GetBufferPointer(), fbb_.GetBufferPointer() + fbb_.GetSize()}});
  }
  [[nodiscard]] std::vector<event_out> take() { return std::move(events_); }
  [[nodiscard]] std::size_t size() const { return events_.size(); }

 private:
  flatbuffers::FlatBufferBuilder fbb_{512};
  std::vector<event_out> events_;
};

}  // namespace pevledger::core
