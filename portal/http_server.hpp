#pragma once
// The HTTP/1.1 server of the read API and the self-care page (`pevledger serve --http`), on
// Boost.Beast, one thread. Bounded: at most connections_max connections at once (one more is
// answered 503 and closed), a request's head at most head_bytes_max and no body, a connection idle
// for idle_timeout is closed, and at most requests_per_connection_max requests a connection.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.hpp"

namespace pevledger::portal {

class api;

struct http_options {
  std::string host = "127.0.0.1";  // loopback by default: put a TLS proxy in front for anything else
  std::uint16_t port = 0;          // 0: any free port
  std::size_t connections_max = 256;
  std::size_t head_bytes_max = 8192;
  std::chrono::seconds idle_timeout{30};
  std::size_t requests_per_connection_max = 10000;
};

struct http_stats {
  std::uint64_t connections = 0;
  std::uint64_t connections_refused = 0;  // over connections_max: answered 503
  std::uint64_t requests = 0;
  std::uint64_t client_errors = 0;  // 4xx
  std::uint64_t server_errors = 0;  // 5xx
};

class http_server {
 public:
  [[nodiscard]] static result<std::unique_ptr<http_server>> listen(api& answers, http_options options);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  // Serves until `stop` returns true (asked every 50 ms), then closes every connection.
  [[nodiscard]] status run(const std::function<bool()>& stop);
  [[nodiscard]] const http_stats& stats() const;

 private:
  struct impl;
  explicit http_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace pevledger::portal
