#pragma once
// One residential charging session as a device sends it through the gateway, and the same session
// as command lines (SPEC section 6), for the tests that compare the two: a utility with a flat
// tariff, premise p1 with EUMD m1, and a PEV plugged at 2024-03-04T16:00Z, three quarter hours
// metered in two interval batches, then unplugged.

#include <string>
#include <vector>

#include "gateway/frame.hpp"
#include "pevledger/interval_batch.hpp"

namespace pevledger::gateway::scenario {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;

inline constexpr std::int64_t plugged_at = 1709568000;  // 2024-03-04T16:00:00Z
inline constexpr const char* vin = "1HGCM82633A004352";

inline const char* const setup_lines =
    R"({"type":"utility.register","id":"u1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"}
{"type":"tariff.publish","id":"u2","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"res","kind":"flat","price":200000}
{"type":"tariff.publish","id":"u3","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"ev","kind":"flat","price":120000}
{"type":"account.open","id":"u4","at":"2024-03-01T00:00:00Z","utility":"u","account":"a1","customer":"Ada"}
{"type":"premise.register","id":"u5","at":"2024-03-01T00:00:00Z","utility":"u","premise":"p1","account":"a1","default_tariff":"res"}
{"type":"device.commission","id":"u6","at":"2024-03-01T00:00:00Z","premise":"p1","device":"m1","kind":"eumd"}
{"type":"pev.enroll","id":"u7","at":"2024-03-01T00:00:00Z","account":"a1","pev":"1HGCM82633A004352","tariff":"ev","home_premise":"p1"}
)";

// The session's command lines: what the frames below ask for.
inline const char* const session_lines =
    R"({"type":"session.plug","id":"f1","at":"2024-03-04T16:00:00Z","session":"s1","premise":"p1"}
{"type":"session.bind","id":"f2","at":"2024-03-04T16:00:00Z","session":"s1","pev":"1HGCM82633A004352"}
{"type":"meter.interval","id":"x1","at":"2024-03-04T17:00:00Z","device":"m1","session":"s1","start":"2024-03-04T16:00:00Z","seconds":900,"wh":900}
{"type":"meter.interval","id":"x2","at":"2024-03-04T17:00:00Z","device":"m1","session":"s1","start":"2024-03-04T16:15:00Z","seconds":900,"wh":1000}
{"type":"meter.interval","id":"x3","at":"2024-03-04T17:30:00Z","device":"m1","session":"s1","start":"2024-03-04T16:30:00Z","seconds":900,"wh":1100}
{"type":"session.unplug","id":"f3","at":"2024-03-04T18:00:00Z","session":"s1"}
)";

inline std::int64_t minutes_after_plug(int minutes) { return plugged_at + 60 * minutes; }
inline timestamp time_of(std::int64_t t) { return timestamp(std::chrono::seconds(t)); }

// An Intervals frame carrying `batch` (its bytes 8-aligned in the envelope).
inline bytes intervals_frame(const interval_batch& batch) {
  const bytes b = encode(batch);
  return encode_frame(build_envelope(batch.device, batch.id, batch.at.time_since_epoch().count(), [&](auto& fbb) {
    fbb.ForceVectorAlignment(b.size(), 1, 8);
    return std::pair{p::Message::Intervals, p::CreateIntervals(fbb, fbb.CreateVector(b)).Union()};
  }));
}

// The session's frames, in the order a device sends them.
inline std::vector<bytes> session_frames() {
  auto reading = [](int minutes, std::int64_t wh) {
    return interval_reading{time_of(minutes_after_plug(minutes)), 900, wh, std::nullopt};
  };
  return {
      encode_frame(build_envelope("esci-1", "f1", plugged_at, [](auto& fbb) {
        return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, "s1", "p1").Union()};
      })),
      encode_frame(build_envelope("esci-1", "f2", plugged_at, [](auto& fbb) {
        return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, "s1", vin).Union()};
      })),
      intervals_frame({"m1/b1", time_of(minutes_after_plug(60)), "m1", "s1", {reading(0, 900), reading(15, 1000)}}),
      intervals_frame({"m1/b2", time_of(minutes_after_plug(90)), "m1", "s1", {reading(30, 1100)}}),
      encode_frame(build_envelope("esci-1", "f3", minutes_after_plug(120), [](auto& fbb) {
        return std::pair{p::Message::Unplug, p::CreateUnplugDirect(fbb, "s1").Union()};
      })),
  };
}

}  // namespace pevledger::gateway::scenario
