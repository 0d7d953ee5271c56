#pragma once
// decide: the pure half of every entity's behaviour. Given the ledger state and one command, it
// returns the events that record the command's consequences, or the refusal. It never mutates
// the state; the engine appends the events and then applies them (core/apply.hpp). On a paged
// state everything it reads is resident first: core/prefetch.hpp states what that is.

#include <optional>
#include <string>
#include <vector>

#include "core/ledger_state.hpp"
#include "base/status.hpp"
#include "schema/command_parser.hpp"

namespace pevledger::core {

struct event_out {
  std::string stream;              // "account/<id>", "session/<id>", "clearinghouse", ...
  std::vector<std::uint8_t> body;  // a finished EventBody FlatBuffer
};

// What a device waits to hear, beside its acknowledgement, for an accepted command.
struct device_answer {
  struct energy_grant {
    std::string session;
    std::int64_t wh = 0;
    unix_seconds start, depart;
    std::optional<std::int64_t> price_micro_per_kwh;
  };
  // session.plug at a residential premise: past this time with no bind, the session falls back
  // (the gateway's timer then sends session.timeout).
  std::optional<unix_seconds> bind_deadline;
  std::optional<energy_grant> grant;  // energy.request
  // device.configure that changes an EUMD's interval: the EUMD is to report at it.
  struct eumd_interval {
    std::string eumd;
    std::int64_t interval_s = 0;
  };
  std::optional<eumd_interval> reconfigured;
};

struct decision {
  // ok: the command is accepted and `events` record it. Otherwise the command is refused and
  // `events` holds only audit records the refusal leaves behind (an interval conflict's anomaly).
  status refusal;
  std::vector<event_out> events;
  // Accepted, but a repeat of something already recorded (same interval again, a period billed or
  // settled again): counted as a duplicate, never applied twice.
  bool duplicate = false;
  device_answer answer;  // only for an accepted command
};

[[nodiscard]] decision decide(const ledger_state& state, const schema::command& command);

// An interval batch (schema/interval_batch.fbs) is the meter.interval lines that spell its
// readings, under one id and applied whole. `decide` of a batch is its admission: it refuses the
// batch for anything that would refuse one of its readings, and records nothing else. Once
// admitted, each reading is decided in turn, on the state the readings before it left (the engine
// applies each one's events before the next), exactly as its line would be; none can be refused.
[[nodiscard]] decision decide_reading(const ledger_state& state, const schema::command& batch, std::size_t index);

}  // namespace pevledger::core
