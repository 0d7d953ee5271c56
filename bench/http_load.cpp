// bench/http_load: the bill endpoint of the read API (docs/api.md) under load on loopback.
// A fleet month is ingested with a token per customer; `pevledger serve --http`'s server runs on
// its own thread, and client threads each keep one connection and ask, one request at a time, for
// their customers' March bills. Beside it, in the same run, the same requests answered by the API
// in process (no HTTP) and the engine's bill query alone: the ratios say what HTTP and the API's
// checks cost. Prints JSON.
//
//   http_load [--premises-per-utility N] [--connections C] [--seconds S] [--dir DIR]

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "bench/bench_info.hpp"
#include "pevledger/engine.hpp"
#include "portal/api.hpp"
#include "portal/http_server.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

struct customer {
  std::string account, token;
};

struct load_result {
  std::uint64_t requests = 0;
  std::uint64_t not_ok = 0;
  std::vector<std::uint32_t> latencies_us;
};

// One connection (again when the server closes it), one request at a time, until `end`.
load_result client(std::uint16_t port, const std::vector<customer>& customers, std::size_t first,
                   clock_type::time_point end) {
  load_result r;
  asio::io_context io;
  tcp::socket socket(io);
  beast::error_code ec;
  socket.connect({asio::ip::make_address_v4("127.0.0.1"), port}, ec);
  if (ec) return r;
  beast::flat_buffer buffer;
  std::size_t next = first;
  while (clock_type::now() < end) {
    const customer& c = customers[next++ % customers.size()];
    http::request<http::empty_body> req(http::verb::get, "/api/v1/accounts/" + c.account + "/bills/2024-03", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::authorization, "Bearer " + c.token);
    req.keep_alive(true);
    const auto sent = clock_type::now();
    http::write(socket, req, ec);
    if (ec) break;
    http::response<http::string_body> res;
    http::read(socket, buffer, res, ec);
    if (ec) break;
    r.latencies_us.push_back(static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - sent).count()));
    ++r.requests;
    if (res.result_int() != 200) ++r.not_ok;
    if (!res.keep_alive()) {  // the server's bound of requests a connection: a new one
      socket.close(ec);
      socket = tcp::socket(io);
      socket.connect({asio::ip::make_address_v4("127.0.0.1"), port}, ec);
      if (ec) break;
      buffer.clear();
    }
  }
  return r;
}

double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  int premises = 200;
  std::size_t connections = 8;
  double seconds = 10;
  std::string dir = "/tmp/pevledger-bench-http";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--premises-per-utility") premises = std::stoi(argv[i + 1]);
    else if (flag == "--connections") connections = std::stoul(argv[i + 1]);
    else if (flag == "--seconds") seconds = std::stod(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string fleet = dir + "/fleet.jsonl";
  if (!pevledger::bench::generate_fleet(argv[0], premises, fleet)) return 2;

  // The month with its bill runs, and a token for every customer with a PEV.
  std::vector<customer> customers;
  std::string lines;
  {
    std::ifstream in(fleet);
    for (std::string line; std::getline(in, line);) {
      lines += line + "\n";
      const auto at = line.find(R"("type":"pev.enroll")");
      if (at == std::string::npos) continue;
      const auto key = line.find(R"("account":")");
      const auto from = key + 11;
      const std::string account = line.substr(from, line.find('"', from) - from);
      if (std::any_of(customers.begin(), customers.end(), [&](const customer& c) { return c.account == account; }))
        continue;
      auto token = pevledger::portal::new_access_token();
      if (!token) return 2;
      customers.push_back({account, token.value()});
    }
    for (std::size_t i = 0; i < customers.size(); ++i)
      lines += R"({"type":"access.grant","id":"bench-token-)" + std::to_string(i) +
               R"(","at":"2024-04-05T00:00:00Z","token_sha256":")" + pevledger::portal::token_sha256(customers[i].token) +
               R"(","account":")" + customers[i].account + "\"}\n";
  }
  const std::string db = dir + "/db";
  {
    auto engine = pevledger::engine::open(db);
    if (!engine) return 2;
    std::istringstream in(lines);
    if (!engine.value()->ingest(in, {})) return 2;
  }
  pevledger::portal::api_options api_options;
  auto api = pevledger::portal::api::open(db, api_options);
  if (!api || customers.empty()) return 2;

  // In process: the API without HTTP, then the engine's query alone, each for a third of the time.
  auto in_process_rate = [&](auto&& ask) {
    const auto end =
        clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds / 3));
    std::uint64_t n = 0;
    const auto start = clock_type::now();
    while (clock_type::now() < end) ask(customers[n++ % customers.size()]);
    return static_cast<double>(n) / std::chrono::duration<double>(clock_type::now() - start).count();
  };
  std::uint64_t api_not_ok = 0;
  const double api_rate = in_process_rate([&](const customer& c) {
    if (api.value()->handle("GET", "/api/v1/accounts/" + c.account + "/bills/2024-03", "Bearer " + c.token).status != 200)
      ++api_not_ok;
  });
  pevledger::engine_options reader_options;
  reader_options.read_only = true;
  auto reader = pevledger::engine::open(db, reader_options);
  if (!reader) return 2;
  const double engine_rate = in_process_rate([&](const customer& c) { (void)reader.value()->bill(c.account, "2024-03"); });

  auto server = pevledger::portal::http_server::listen(*api.value(), {});
  if (!server) return 2;
  std::atomic<bool> stop{false};
  pevledger::status served = pevledger::status::ok();
  std::thread server_thread([&] { served = server.value()->run([&] { return stop.load(); }); });
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::vector<load_result> results(connections);
  std::vector<std::thread> clients;
  for (std::size_t i = 0; i < connections; ++i)
    clients.emplace_back([&, i] { results[i] = client(server.value()->port(), customers, i * 7, end); });
  for (auto& t : clients) t.join();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  stop.store(true);
  server_thread.join();

  load_result all;
  for (auto& r : results) {
    all.requests += r.requests;
    all.not_ok += r.not_ok;
    all.latencies_us.insert(all.latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
  }
  const double http_rate = static_cast<double>(all.requests) / elapsed;
  nlohmann::ordered_json j;
  j["bench"] = "http_load";
  j["machine"] = pevledger::bench::machine_info();
  j["command"] = "build/bench/http_load --premises-per-utility " + std::to_string(premises) + " --connections " +
                 std::to_string(connections) + " --seconds " + std::to_string(static_cast<int>(seconds));
  j["endpoint"] = "GET /api/v1/accounts/{account}/bills/2024-03 (issued bills, bearer token per customer)";
  j["customers"] = customers.size();
  j["connections"] = connections;
  j["requests"] = all.requests;
  j["not_200"] = all.not_ok + api_not_ok;
  j["requests_per_second"] = static_cast<std::int64_t>(http_rate);
  j["latency_ms_p50"] = percentile(all.latencies_us, 0.50);
  j["latency_ms_p99"] = percentile(all.latencies_us, 0.99);
  j["api_in_process_per_second"] = static_cast<std::int64_t>(api_rate);
  j["engine_bill_query_per_second"] = static_cast<std::int64_t>(engine_rate);
  j["http_over_api_in_process"] = api_rate > 0 ? http_rate / api_rate : 0;
  j["api_over_engine_query"] = engine_rate > 0 ? api_rate / engine_rate : 0;
  j["server_ok"] = served.is_ok();
  std::cout << j.dump(2) << std::endl;
  return all.not_ok + api_not_ok == 0 && served.is_ok() ? 0 : 1;
}
