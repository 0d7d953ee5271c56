#pragma once
// ESCI/EUMD simulators for a fleet (`pevledger simulate`): the month of sim/fleet.hpp driven
// through a running device gateway (`pevledger serve`, docs/protocol.md) as its devices and the
// utility's back office would send it.
//
// - The back office (tariffs, accounts, premises, enrolments, prices, events, bill and settlement
//   runs) sends its command lines as OperatorCommand frames signed with the operator key, on a
//   connection of its own.
// - Each premise's ESCI sends plug, bind, setup, energy request, PEV total and unplug; a public
//   station sends card sessions; each EUMD gathers its readings of a session into Intervals
//   batches (sent after `batch_window_s` of business time, before its session's next command, or
//   at 256 readings). A premise's devices share one of `connections` device connections.
// - Each connection keeps at most `window` frames unacknowledged (one more while a resend's copy
//   is in flight); a device command waits until
//   the back office's earlier lines are acknowledged, and bill and settlement runs wait for every
//   frame sent before them.
// - Faults, drawn from the seed: frames resent before their ack; connections dropped right after
//   a frame, before its ack (read unheard until the gateway closes, so it decided the frame), then
//   the frame resent on a new connection (the other connections quiet meanwhile, so the record's
//   order stays the order of decision); EUMD restarts with their register intact, resending the
//   last batch they sent under a new id; reconnects; EUMDs reconfigured to 5-minute intervals (the
//   back office sends `device.configure` after one of the EUMD's batches, the gateway tells the
//   EUMD with EumdConfigure, and from when it hears that on, the EUMD reports each quarter hour of
//   the fleet that begins after that as three 5-minute readings, the energy split and the register
//   counted at each end). Reconfigurations are drawn from a generator of their own.
//   The fleet itself brings late and reordered readings, late binds and unknown PEVs.
// - Setup (pev.setup) gives the premise's ESCI and EUMD their keys (SetupDone): the connection is
//   drained until they arrive, and from then on those devices sign every frame.
// - The gateway runs on the back office's clock (`serve --clock back-office`): before a line passes
//   the bind deadline of a plug-in still waiting for its bind, every frame sent is acknowledged and
//   the back office sends a Clock frame with that line's time, so the gateway's timer decides the
//   timeout (SessionTimedOut to the back office) where it falls in business time.
//
// The record (`record`): every command the simulation caused, as SPEC section 6 lines, in the
// order the gateway decided them (its acks' `decided`): a device command as the line it means,
// a batch as the `meter.interval` lines of its readings. Written at each ack that applied them or
// refused a command (its id stays free: a later copy may apply it), and at a duplicate's ack only
// when no earlier ack of that id applied them; so what a frame applied is written once, where the
// gateway applied it, however often it was sent (a restarted EUMD's readings sent again under a
// new batch id are written again, each line's id prefixed with that batch id: new lines for
// intervals already recorded).
// A batch the gateway refused is not written: its readings as lines could be taken one by one.
// A timeout the gateway's timer decided is written as the session.timeout line it sent the engine.
// Memory: the record is held until the end, ordered, then written; beside it the simulators keep
// a few bytes per session, EUMD and applied frame id, all bounded by the fleet's lines.

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "sim/fleet.hpp"

namespace pevledger::sim {

// How often each fault happens, per million frames (restarts: per million interval batches).
struct fault_rates {
  std::uint32_t resend = 10'000;
  std::uint32_t drop_before_ack = 1'000;
  std::uint32_t restart = 2'000;
  std::uint32_t reconnect = 1'000;
  std::uint32_t reconfigure = 3'000;  // per million interval batches; each EUMD at most once
};

struct simulation_progress {
  std::uint64_t lines = 0;   // of the fleet, taken so far
  std::uint64_t frames = 0;  // sent
  std::uint64_t intervals = 0;
  std::uint64_t elapsed_ms = 0;
};

struct simulation_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  fleet_options fleet;
  std::vector<std::uint8_t> operator_key;  // the gateway's `--operator-key`
  std::size_t connections = 8;              // device connections, 1 to 256; the back office has its own
  std::size_t window = 64;                  // unacknowledged frames a connection, 1 to 1,024
  std::int64_t batch_window_s = 3600;       // business time an EUMD gathers readings before it sends them
  bool faults = true;
  fault_rates rates;
  std::ostream* record = nullptr;           // where the record goes; none when null
  std::function<void(const simulation_progress&)> on_progress;  // every 2,048 lines
};

struct simulation_summary {
  std::uint64_t lines = 0;  // the fleet's command lines
  std::uint64_t frames = 0;  // sent, resends included
  std::uint64_t operator_frames = 0, command_frames = 0, batch_frames = 0;
  std::uint64_t intervals = 0;  // readings sent in batches, resends included
  std::uint64_t accepted = 0, duplicates = 0, refused = 0;  // the gateway's acks
  std::uint64_t resends = 0, drops = 0, restarts = 0, reconnects = 0;
  std::uint64_t reconfigures = 0;       // device.configure lines the back office sent
  std::uint64_t configures_heard = 0;   // EumdConfigure frames EUMDs received from the gateway
  std::uint64_t recorded = 0;  // lines written to the record
  std::uint64_t clock_frames = 0;  // Clock frames the back office sent (before bind deadlines)
  std::uint64_t timeouts = 0;      // sessions the gateway's timer decided (SessionTimedOut)
  std::uint64_t grants = 0;        // EnergyGrant frames received
  std::uint64_t keys = 0;          // SetupDone frames received (a set-up device signs from then on)
  std::uint64_t elapsed_ms = 0;
  // From a device command's send to its ack (plug, bind, energy request, ...), microseconds.
  std::uint64_t command_ack_p50_us = 0, command_ack_p99_us = 0;
};

// Runs the fleet's month against the gateway at host:port. Fails (io_error) when the gateway
// cannot be reached, closes a connection, answers with an Error frame or acknowledges nothing
// for 60 s; usage for options out of bounds.
[[nodiscard]] result<simulation_summary> simulate(const simulation_options& options);

}  // namespace pevledger::sim
