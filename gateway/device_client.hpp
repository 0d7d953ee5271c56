#pragma once
// A device's end of a connection to the gateway, with blocking I/O: frames out, the gateway's
// frames back. For the tests and benchmarks that drive `pevledger serve` as devices do.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/status.hpp"
#include "gateway/frame.hpp"

namespace pevledger::gateway {

class device_client {
 public:
  // Connects to an IPv4 `host`:`port`; a receive, and a send the gateway does not read, wait at
  // most `receive_timeout`.
  [[nodiscard]] static result<device_client> connect(const std::string& host, std::uint16_t port,
                                                     std::chrono::milliseconds receive_timeout);
  device_client(device_client&& other) noexcept
      : fd_(other.fd_), splitter_(std::move(other.splitter_)), unfed_(std::move(other.unfed_)) {
    other.fd_ = -1;
  }
  device_client& operator=(device_client&&) = delete;
  device_client(const device_client&) = delete;
  ~device_client() { close(); }

  // Sends all of `bytes` (one or more encoded frames, or any bytes at all).
  [[nodiscard]] status send(std::span<const std::uint8_t> bytes);
  // The next gateway frame's envelope bytes; nothing at the connection's end, after the receive
  // timeout, or for bytes that are not a frame.
  [[nodiscard]] std::optional<std::vector<std::uint8_t>> receive();
  // Without waiting: appends to `out` the envelopes of the gateway frames that have arrived (at
  // most frames_max). io_error when the connection closed or sent bytes that are not a frame.
  [[nodiscard]] status receive_ready(std::vector<std::vector<std::uint8_t>>& out, std::size_t frames_max);
  // The socket, for poll(2); -1 once closed.
  [[nodiscard]] int native_handle() const { return fd_; }
  void close();
  // Stops sending and closes once the gateway has closed its side, discarding whatever it sent:
  // a device that went away before its acks (the gateway has then decided everything it read).
  // At most 16 MiB are read; io_error when the gateway neither closes nor answers within the
  // receive timeout.
  [[nodiscard]] status close_unheard();

 private:
  explicit device_client(int fd) : fd_(fd) {}
  int fd_ = -1;
  frame_splitter splitter_;
  std::vector<std::uint8_t> unfed_;  // read, not yet taken by the splitter
};

}  // namespace pevledger::gateway
