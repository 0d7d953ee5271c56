#include "portal/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <optional>
#include <set>
#include <vector>

#include "pevledger/version.hpp"
#include "portal/api.hpp"

namespace pevledger::portal {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::string_view page_policy =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Whole, with its length counted by the compiler, not by hand.
constexpr std::string_view busy_body = R"({"error":"busy","message":"too many connections: try again soon"})";
const std::string& busy_response() {
  static const std::string response =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
      "Retry-After: 1\r\nContent-Length: " +
      std::to_string(busy_body.size()) + "\r\n\r\n" + std::string(busy_body);
  return response;
}

const std::string& server_name() {
  static const std::string name = "pevledger/" + std::to_string(PEVLEDGER_VERSION_MAJOR) + "." +
                                  std::to_string(PEVLEDGER_VERSION_MINOR) + "." +
                                  std::to_string(PEVLEDGER_VERSION_PATCH);
  return name;
}

}  // namespace

struct http_server::impl {
  api& answers;
  http_options options;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::uint16_t port = 0;
  http_stats stats;
  bool stopping = false;

  class connection;
  std::set<std::shared_ptr<connection>> open;

  impl(api& a, http_options o) : answers(a), options(std::move(o)) {}
  void accept();
  void count(unsigned status) {
    ++stats.requests;
    if (status >= 500) ++stats.server_errors;
    else if (status >= 400) ++stats.client_errors;
  }
};

class http_server::impl::connection : public std::enable_shared_from_this<connection> {
 public:
  connection(impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}

  void start() { read(); }
  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.head_bytes_max));
    parser_->body_limit(0);
    stream_.expires_after(server_.options.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || server_.stopping)
      return finish();
    if (ec) {
      // A request the parser refused (too long a head, a body, bad syntax): say so, then close.
      api_response r;
      if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
        r.status = 431;
        r.body = R"({"error":"bad_request","message":"the request head is too large"})";
      } else if (ec == http::error::body_limit || ec == http::error::unexpected_body) {
        r.status = 413;
        r.body = R"({"error":"bad_request","message":"this API takes no request body"})";
      } else {
        r.status = 400;
        r.body = R"({"error":"bad_request","message":"malformed HTTP request"})";
      }
      return respond(r, false, 11);
    }
    const auto& req = parser_->get();
    ++requests_;
    const auto auth = req[http::field::authorization];
    api_response r = server_.answers.handle(std::string_view(req.method_string().data(), req.method_string().size()),
                                            std::string_view(req.target().data(), req.target().size()),
                                            std::string_view(auth.data(), auth.size()));
    const bool keep = req.keep_alive() && requests_ < server_.options.requests_per_connection_max;
    respond(r, keep, req.version());
  }

  void respond(const api_response& r, bool keep_alive, unsigned version) {
    server_.count(r.status);
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version);
    res->set(http::field::server, server_name());
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, r.cacheable ? "no-cache" : "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    res->set("Referrer-Policy", "no-referrer");
    if (r.content_type.starts_with("text/html")) res->set("Content-Security-Policy", beast::string_view(page_policy.data(), page_policy.size()));
    if (r.challenge) res->set(http::field::www_authenticate, "Bearer realm=\"pevledger\"");
    if (r.status == 405) res->set(http::field::allow, "GET");
    res->body() = r.body;
    res->keep_alive(keep_alive);
    res->prepare_payload();
    stream_.expires_after(server_.options.idle_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
      if (ec || !keep_alive || self->server_.stopping) return self->finish();
      self->read();
    });
  }

  void finish() {
    close();
    server_.open.erase(shared_from_this());
  }

  impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{8192};
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::size_t requests_ = 0;
};

void http_server::impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (stopping) return;
    if (!ec) {
      ++stats.connections;
      if (open.size() >= options.connections_max) {
        ++stats.connections_refused;
        // Answered at once and closed; the write is one small segment the socket's buffer takes.
        auto refused = std::make_shared<tcp::socket>(std::move(socket));
        asio::async_write(*refused, asio::buffer(busy_response()),
                          [refused](beast::error_code, std::size_t) {
                            beast::error_code ignored;
                            refused->shutdown(tcp::socket::shutdown_both, ignored);
                            refused->close(ignored);
                          });
      } else {
        auto c = std::make_shared<connection>(*this, std::move(socket));
        open.insert(c);
        c->start();
      }
    }
    accept();
  });
}

result<std::unique_ptr<http_server>> http_server::listen(api& answers, http_options options) {
  if (options.connections_max == 0) return status(errc::usage, "connections_max must be at least 1");
  auto p = std::make_unique<impl>(answers, std::move(options));
  beast::error_code ec;
  const auto address = asio::ip::make_address_v4(p->options.host, ec);
  if (ec) return status(errc::usage, "--http takes an IPv4 HOST:PORT, e.g. 127.0.0.1:8080");
  const tcp::endpoint at(address, p->options.port);
  p->acceptor.open(at.protocol(), ec);
  if (!ec) p->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) p->acceptor.bind(at, ec);
  if (!ec) p->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return status(errc::io_error, "cannot listen on " + p->options.host + ":" + std::to_string(p->options.port) +
                                            ": " + ec.message());
  p->port = p->acceptor.local_endpoint().port();
  return std::unique_ptr<http_server>(new http_server(std::move(p)));
}

http_server::http_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
http_server::~http_server() = default;

std::uint16_t http_server::port() const { return impl_->port; }
const http_stats& http_server::stats() const { return impl_->stats; }

status http_server::run(const std::function<bool()>& stop) {
  impl_->accept();
  while (!stop()) {
    impl_->io.run_for(std::chrono::milliseconds(50));
    if (impl_->io.stopped()) impl_->io.restart();
  }
  impl_->stopping = true;
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  // Copies: closing a connection lets its pending handler erase it from the set.
  for (const auto& c : std::vector(impl_->open.begin(), impl_->open.end())) c->close();
  impl_->io.run_for(std::chrono::milliseconds(200));
  impl_->open.clear();
  return status::ok();
}

}  // namespace pevledger::portal
