#include "gateway/device_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pevledger::gateway {

result<device_client> device_client::connect(const std::string& host, std::uint16_t port,
                                             std::chrono::milliseconds receive_timeout) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
    return status(errc::usage, "'" + host + "' is not an IPv4 address");
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return status(errc::io_error, std::string("socket: ") + std::strerror(errno));
  device_client client(fd);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0)
    return status(errc::io_error, "cannot connect to " + host + ":" + std::to_string(port) + ": " + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const auto ms = receive_timeout.count();
  timeval timeout{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  return client;
}

status device_client::send(std::span<const std::uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return status(errc::io_error, std::string("send: ") + std::strerror(errno));
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return status::ok();
}

std::optional<std::vector<std::uint8_t>> device_client::receive() {
  std::optional<frame_error> error;
  const key_lookup no_keys = [](std::string_view, std::optional<std::uint32_t>) { return std::optional<std::vector<std::uint8_t>>(); };
  // Bounded: each pass hands out a frame, or feeds what waits, or reads more; the splitter holds
  // one frame and unfed_ at most one read.
  for (;;) {
    if (!unfed_.empty()) {
      const std::size_t took = splitter_.feed(unfed_);
      unfed_.erase(unfed_.begin(), unfed_.begin() + static_cast<std::ptrdiff_t>(took));
    }
    if (auto frame = splitter_.next(error)) {
      const auto opened = open_frame(*frame, no_keys, error);
      if (!opened) return std::nullopt;
      return std::vector<std::uint8_t>(opened->envelope_bytes.begin(), opened->envelope_bytes.end());
    }
    if (error) return std::nullopt;
    if (!unfed_.empty()) continue;  // the splitter had no room: the frame it holds is whole now
    unfed_.resize(16384);
    const ssize_t n = ::recv(fd_, unfed_.data(), unfed_.size(), 0);
    unfed_.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    if (n <= 0) return std::nullopt;
  }
}

status device_client::receive_ready(std::vector<std::vector<std::uint8_t>>& out, std::size_t frames_max) {
  std::optional<frame_error> error;
  const key_lookup no_keys = [](std::string_view, std::optional<std::uint32_t>) { return std::optional<std::vector<std::uint8_t>>(); };
  // Bounded by frames_max and by what the socket holds: each pass hands out a frame, feeds what
  // waits, or reads once.
  for (std::size_t taken = 0; taken < frames_max;) {
    if (!unfed_.empty()) {
      const std::size_t took = splitter_.feed(unfed_);
      unfed_.erase(unfed_.begin(), unfed_.begin() + static_cast<std::ptrdiff_t>(took));
    }
    if (auto frame = splitter_.next(error)) {
      const auto opened = open_frame(*frame, no_keys, error);
      if (!opened) return status(errc::io_error, "the gateway sent a frame that does not open: " + error->message);
      out.emplace_back(opened->envelope_bytes.begin(), opened->envelope_bytes.end());
      ++taken;
      continue;
    }
    if (error) return status(errc::io_error, "the gateway sent bytes that are not a frame: " + error->message);
    if (!unfed_.empty()) continue;
    unfed_.resize(16384);
    const ssize_t n = ::recv(fd_, unfed_.data(), unfed_.size(), MSG_DONTWAIT);
    unfed_.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return status::ok();
    if (n == 0) return status(errc::io_error, "the gateway closed the connection");
    if (n < 0) return status(errc::io_error, std::string("recv: ") + std::strerror(errno));
  }
  return status::ok();
}

status device_client::close_unheard() {
  constexpr std::size_t discard_bytes_max = 16u << 20;
  ::shutdown(fd_, SHUT_WR);
  std::vector<std::uint8_t> discard(16384);
  for (std::size_t read = 0; read <= discard_bytes_max;) {
    const ssize_t n = ::recv(fd_, discard.data(), discard.size(), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      close();
      if (e == ECONNRESET) return status::ok();
      return status(errc::io_error, std::string("waiting for the gateway to close: ") + std::strerror(e));
    }
    read += static_cast<std::size_t>(n);
  }
  close();
  return status::ok();
}

void device_client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace pevledger::gateway
