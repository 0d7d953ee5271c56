#pragma once
// The device gateway's server (`pevledger serve`): TCP connections of the device protocol
// (docs/protocol.md) on one thread, with liburing directly. Frames received in one turn of the loop
// go to the engine together (a group commit per run of commands or of interval batches), and each
// is acknowledged once the engine returned, that is once its events are durable. A frame that
// cannot be read gets an Error frame, and its connection closes.
//
// The protocol is one `frame_protocol` beside the connection handling, so that a second one
// (OCPP-J over WebSocket) can later sit beside it on its own port.
//
// Bounds: connections_max connections (more wait in the listen backlog); per connection one
// frame_splitter (one largest frame), one receive buffer, and unsent replies up to
// replies_bytes_max (beyond it the connection is not read until they drain); requests_max
// requests, and 16 MiB of interval batches and back-office lines, held for the engine before it
// is called; timers_max communication-timeout timers.
//
// Timers: an accepted plug-in arms a timer at its bind deadline (plug-in + the utility's
// comm_timeout_s); a bind or an unplug disarms it. When the business clock passes the deadline the
// gateway sends the engine session.timeout, and tells the back office (SessionTimedOut). Timers are
// not kept across a restart: a session plugged before it falls back at its unplug or a run.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "pevledger/engine.hpp"

namespace pevledger::gateway {

struct frame_error;

struct server_options {
  std::string host = "127.0.0.1";  // an IPv4 address
  std::uint16_t port = 0;          // 0: any free port (see server::port)
  std::size_t connections_max = 1024;
  std::size_t requests_max = 4096;
  std::size_t replies_bytes_max = 1u << 20;
  // The back office: frames from this device carry OperatorCommand lines and must be signed under
  // operator_key. Empty: no back office (every OperatorCommand is unexpected_message).
  std::string operator_device;
  std::vector<std::uint8_t> operator_key;
  // The business clock of the communication-timeout timers: the host's wall clock, or the time the
  // back office's Clock frames say (simulations and months played again, whose business time is
  // not today's).
  enum class business_clock { wall, back_office };
  business_clock clock = business_clock::wall;
  // Timers armed at once (one per plug-in waiting for its bind); beyond it a plug-in gets none, and
  // its session falls back at its unplug or a run, as SPEC section 3 says.
  std::size_t timers_max = 1u << 20;
  // Told of every frame that ends its connection (a bad MAC among them), as it happens.
  std::function<void(const frame_error&)> on_frame_error;
};

struct server_stats {
  std::uint64_t connections = 0;  // accepted, in all
  std::uint64_t frames = 0;       // read whole
  std::uint64_t accepted = 0, duplicates = 0, refused = 0;
  std::uint64_t frame_errors = 0;  // connections closed for a frame that could not be read
  std::uint64_t timeouts = 0;      // sessions the timer decided (session.timeout accepted)
  std::uint64_t grants = 0;        // EnergyGrant frames sent
  std::uint64_t timers_not_armed = 0;  // plug-ins beyond timers_max
  std::uint64_t bad_macs = 0;          // frames refused for a MAC that did not match
  std::uint64_t configures = 0;        // EumdConfigure frames sent (an EUMD's new interval)
};

class server {
 public:
  // Listens on options.host:options.port; fails when the address cannot be bound.
  [[nodiscard]] static result<std::unique_ptr<server>> listen(engine& engine, server_options options);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  // Serves until `stop` returns true (asked at least every 100 ms), then answers what was read
  // already, closes every connection and returns. An error of the engine (I/O, a corrupt log) ends
  // it too.
  [[nodiscard]] status run(const std::function<bool()>& stop);
  [[nodiscard]] const server_stats& stats() const;

 private:
  struct impl;
  explicit server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace pevledger::gateway
