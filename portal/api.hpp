#pragma once
// The customer and utility read API (docs/api.md), apart from any transport: a request's method,
// target and Authorization header in, a status, content type and body out. The HTTP server
// (portal/http_server.hpp) carries it; tests call it directly too.
//
// It reads a database that a writer (serve's gateway, an ingest) may be extending: a read-only
// engine answers bills, balances, sessions, settlements and reports, and the directory
// (portal/directory.hpp) answers who may read what and what an account holds. Both look at the
// writer's newest durable group before a request when they last looked over `refresh_after` ago.
// Not thread-safe: one thread calls it (the server's).

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.hpp"
#include "portal/principal.hpp"

namespace pevledger {
class engine;
}
namespace pevledger::storage {
class event_log;
}

namespace pevledger::portal {

class directory;

struct api_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  bool challenge = false;   // 401: the response carries WWW-Authenticate: Bearer
  bool cacheable = false;   // the page: cacheable; API answers are not (they change as the log grows)
};

struct api_options {
  std::chrono::milliseconds refresh_after{200};
};

class api {
 public:
  static constexpr std::size_t page_limit_default = 50;
  static constexpr std::size_t page_limit_max = 200;
  static constexpr std::size_t target_bytes_max = 2048;

  // Opens `db` read-only, following a writer (the database must exist).
  [[nodiscard]] static result<std::unique_ptr<api>> open(const std::string& db, api_options options = {});
  ~api();
  api(const api&) = delete;
  api& operator=(const api&) = delete;

  // `authorization` is the request's Authorization header ("" when absent).
  [[nodiscard]] api_response handle(std::string_view method, std::string_view target, std::string_view authorization);

 private:
  struct impl;
  explicit api(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

// A new access token ("pvl_" and 43 characters of base64url: 256 random bits), and the SHA-256 of
// a token as the log stores it (64 lower-case hex digits).
[[nodiscard]] result<std::string> new_access_token();
[[nodiscard]] std::string token_sha256(std::string_view token);

// Whether the token with this SHA-256 gives `who` access in `db` now (read-only): read from the
// grants and revokes on that account's or utility's stream alone.
[[nodiscard]] result<bool> token_gives_access(const std::string& db, const std::string& token_sha256,
                                              const principal& who);

}  // namespace pevledger::portal
