// The pevledger command-line tool: argument parsing and output only; the work is the engine's.
//
// Exit codes: 0 success; 1 the thing asked for does not exist (unknown account, session, ...);
// 2 usage or storage error; 3 `ingest` refused at least one line, or `replay --verify` / `verify`
// found that the log or a projection does not match.
//
// Every command but `ingest`, `upgrade`, `token` and `serve --listen` opens the database read-only:
// no lock, no file written, so any number of them run at once and beside an ingest.

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <charconv>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/progress.hpp"
#include "cli/text_output.hpp"
#include "gateway/frame.hpp"
#include "gateway/keys.hpp"
#include "gateway/server.hpp"
#include "portal/api.hpp"
#include "portal/http_server.hpp"
#include "portal/notifications.hpp"
#include "sim/simulator.hpp"
#include "pevledger/engine.hpp"
#include "replay/checkpoint.hpp"
#include "replay/replay.hpp"

namespace {

using pevledger::errc;

constexpr int exit_ok = 0;
constexpr int exit_not_found = 1;
constexpr int exit_usage = 2;
constexpr int exit_refused = 3;

// With `--format json` every error is one JSON object on standard error
// ({"error":CODE,"message":...}); otherwise one line for people.
bool errors_as_json = false;

int report_error(errc code, const std::string& message) {
  if (errors_as_json) {
    nlohmann::ordered_json j;
    j["error"] = std::string(pevledger::to_string(code));
    j["message"] = message;
    std::cerr << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    std::cerr << "pevledger: " << pevledger::to_string(code) << ": " << message << '\n';
  }
  switch (code) {
    case errc::unknown_account:
    case errc::unknown_session:
    case errc::unknown_utility:
      return exit_not_found;
    default:
      return exit_usage;
  }
}

int fail(const pevledger::status& s) { return report_error(s.code(), s.message()); }

// A stop asked for by SIGINT or SIGTERM: a follower finishes the line it writes and exits 0.
std::atomic<bool> stop_requested{false};
extern "C" void request_stop(int) { stop_requested.store(true); }
void stop_on_signals() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Flags of long commands: progress on a terminal unless --quiet, elsewhere only with --progress.
struct progress_flags {
  bool forced = false;
  bool quiet = false;
  [[nodiscard]] pevledger::cli::progress_mode mode() const {
    return pevledger::cli::choose_progress_mode(isatty(STDERR_FILENO) == 1, forced, quiet);
  }
};

// Engine options a deployment tunes, as flags of `ingest`.
struct tuning_flags {
  pevledger::engine_options options;
  std::size_t block_cache_mib = pevledger::engine_options{}.block_cache_bytes >> 20;
};

std::unique_ptr<pevledger::engine> open_reader(const std::string& db, int& code, bool follow_writer = false) {
  pevledger::engine_options options;
  options.read_only = true;
  options.follow_writer = follow_writer;
  options.create_if_missing = false;
  auto e = pevledger::engine::open(db, options);
  if (!e) {
    code = fail(e.error());
    return nullptr;
  }
  return std::move(e.value());
}

// Counts the bytes the ingest has taken from its input (for progress), passing on the source's
// "what has arrived" so that a line on a pipe is still decided when it arrives.
class counting_input final : public std::streambuf {
 public:
  explicit counting_input(std::streambuf* source) : source_(source) {}
  [[nodiscard]] std::uint64_t consumed() const { return consumed_.load(std::memory_order_relaxed); }

 protected:
  int_type underflow() override {
    std::streamsize available = source_->in_avail();
    if (available <= 0) {
      if (traits_type::eq_int_type(source_->sgetc(), traits_type::eof())) return traits_type::eof();
      available = std::max<std::streamsize>(source_->in_avail(), 1);
    }
    const std::streamsize got = source_->sgetn(buffer_, std::min<std::streamsize>(available, sizeof buffer_));
    if (got <= 0) return traits_type::eof();
    consumed_.fetch_add(static_cast<std::uint64_t>(got), std::memory_order_relaxed);
    setg(buffer_, buffer_, buffer_ + got);
    return traits_type::to_int_type(buffer_[0]);
  }
  std::streamsize showmanyc() override { return source_->in_avail(); }

 private:
  std::streambuf* source_;
  std::atomic<std::uint64_t> consumed_{0};
  char buffer_[1 << 16];
};

// What a ticker reads from the working thread: units done (for the rate), how far in the meter's
// total quantity, and that total when it became known only after the start (0: as constructed).
struct progress_sample {
  std::uint64_t units = 0;
  std::uint64_t done = 0;
  std::uint64_t total = 0;
};

// Draws a meter from a thread of its own, from what `sample` reads (atomics the working thread
// updates), so that a command waiting on its disk still shows time passing. Nothing runs when the
// meter is off. The meter is not thread-safe: every call to it holds mu_.
class progress_ticker {
 public:
  progress_ticker(pevledger::cli::progress_meter& meter, pevledger::cli::progress_mode mode,
                  std::function<progress_sample()> sample)
      : meter_(meter), sample_(std::move(sample)) {
    if (mode == pevledger::cli::progress_mode::off) return;
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!stopping_) {
        cv_.wait_for(lock, pevledger::cli::terminal_interval_ms / 2, [&] { return stopping_; });
        if (!stopping_) draw(sample_());
      }
    });
  }
  ~progress_ticker() { stop(); }
  progress_ticker(const progress_ticker&) = delete;
  progress_ticker& operator=(const progress_ticker&) = delete;

  // Writes a line to standard error in place of the progress line, which the next tick redraws.
  void write_line(const std::string& text) {
    std::lock_guard lock(mu_);
    meter_.clear();
    std::cerr << text << '\n';
  }
  void finish() {
    stop();
    const progress_sample last = sample_();
    std::lock_guard lock(mu_);
    draw(last);
    meter_.finish(last.units);
  }

 private:
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void draw(const progress_sample& s) {
    if (s.total != 0) meter_.set_total(s.total);
    meter_.update(s.units, s.done);
  }

  pevledger::cli::progress_meter& meter_;
  std::function<progress_sample()> sample_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

int run_ingest(const std::string& db, const std::string& file, const tuning_flags& tuning,
               const progress_flags& progress_flags) {
  pevledger::engine_options options = tuning.options;
  options.block_cache_bytes = tuning.block_cache_mib << 20;
  options.create_if_missing = true;
  std::ifstream file_in;
  std::istream* source = &std::cin;
  std::optional<std::uint64_t> input_bytes;
  if (file != "-") {
    file_in.open(file, std::ios::binary);
    if (!file_in) return report_error(errc::usage, "cannot open '" + file + "'");
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (!ec) input_bytes = size;
    source = &file_in;
  }
  auto engine = pevledger::engine::open(db, options);
  if (!engine) return fail(engine.error());
  counting_input counted(source->rdbuf());
  std::istream in(&counted);
  std::atomic<std::uint64_t> lines_durable{0};
  const auto mode = progress_flags.mode();
  pevledger::cli::progress_meter meter(std::cerr, mode, "ingest", "lines", input_bytes);
  progress_ticker ticker(meter, mode, [&] {
    return progress_sample{lines_durable.load(std::memory_order_relaxed), counted.consumed()};
  });
  auto summary = engine.value()->ingest(
      in,
      [&](const pevledger::line_refusal& r) {
        nlohmann::ordered_json j;
        j["line"] = r.line;
        j["id"] = r.id ? nlohmann::ordered_json(*r.id) : nlohmann::ordered_json(nullptr);
        j["error"] = std::string(pevledger::to_string(r.error));
        j["message"] = r.message;
        ticker.write_line(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      },
      [&](std::uint64_t lines) { lines_durable.store(lines, std::memory_order_relaxed); });
  ticker.finish();
  if (!summary) return fail(summary.error());
  nlohmann::ordered_json j;
  j["accepted"] = summary->accepted;
  j["duplicates"] = summary->duplicates;
  j["refused"] = summary->refused;
  std::cout << j.dump() << std::endl;
  return summary->refused > 0 ? exit_refused : exit_ok;
}

// Issues a read-access token for an account or a utility (docs/api.md), or revokes one: the token
// is printed once and only its SHA-256 reaches the log (an access.grant command).
int run_token(const std::string& db, const std::string& account, const std::string& utility,
              const std::string& revoke, const std::string& format) {
  if (account.empty() == utility.empty()) return report_error(errc::usage, "name --account or --utility");
  std::string token = revoke;
  if (token.empty()) {
    auto issued = pevledger::portal::new_access_token();
    if (!issued) return fail(issued.error());
    token = std::move(issued.value());
  }
  const std::string hash = pevledger::portal::token_sha256(token);
  if (!revoke.empty()) {  // say so when there is nothing to revoke, rather than seem to
    auto holds = pevledger::portal::token_gives_access(db, hash, {utility, account});
    if (!holds) return fail(holds.error());
    if (!holds.value())
      return report_error(errc::usage, "that token gives no access to " +
                                           (account.empty() ? "utility " + utility : "account " + account) +
                                           " (never issued for it, or revoked already)");
  }
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  std::optional<std::string> for_account, for_utility;
  if (!account.empty()) for_account = account;
  if (!utility.empty()) for_utility = utility;
  pevledger::command c;
  c.at = now;
  if (revoke.empty()) {
    c.id = "access-grant-" + hash;
    c.body = pevledger::commands::access_grant{hash, for_account, for_utility};
  } else {
    c.id = "access-revoke-" + pevledger::portal::token_sha256(hash + "\n" + account + "\n" + utility);
    c.body = pevledger::commands::access_revoke{hash, for_account, for_utility};
  }
  pevledger::engine_options options;
  options.create_if_missing = false;
  auto engine = pevledger::engine::open(db, options);
  if (!engine) return fail(engine.error());
  auto outcomes = engine.value()->submit({&c, 1});
  if (!outcomes) return fail(outcomes.error());
  const auto& outcome = outcomes->front();
  if (outcome.what == pevledger::command_outcome::kind::refused) return fail(outcome.refusal);
  nlohmann::ordered_json j;
  if (!account.empty()) j["account"] = account;
  if (!utility.empty()) j["utility"] = utility;
  if (revoke.empty()) j["token"] = token;
  else j["revoked"] = true;
  j["token_sha256"] = hash;
  if (format == "json") {
    std::cout << j.dump() << std::endl;
  } else if (revoke.empty()) {
    std::cout << "token for " << (account.empty() ? "utility " + utility : "account " + account) << ": " << token
              << "\n(shown once: the database keeps only its SHA-256; send it as Authorization: Bearer TOKEN, or "
                 "open the self-care page at /#token=TOKEN)" << std::endl;
  } else {
    std::cout << "revoked the token " << hash.substr(0, 12) << "... of "
              << (account.empty() ? "utility " + utility : "account " + account) << std::endl;
  }
  return exit_ok;
}

// HOST:PORT (IPv4; port 0 picks a free one) as a host and a port.
std::optional<std::pair<std::string, std::uint16_t>> host_and_port(const std::string& text) {
  const auto colon = text.rfind(':');
  unsigned long port = 0;
  if (colon == std::string::npos ||
      std::from_chars(text.data() + colon + 1, text.data() + text.size(), port).ec != std::errc() || port > 65535)
    return std::nullopt;
  return std::pair{text.substr(0, colon), static_cast<std::uint16_t>(port)};
}

struct serve_flags {
  std::string listen;  // the device gateway's HOST:PORT
  std::string http;    // the read API's and self-care page's HOST:PORT
  std::size_t connections_max = pevledger::gateway::server_options{}.connections_max;
  std::size_t http_connections_max = pevledger::portal::http_options{}.connections_max;
  std::string operator_key_file;
  std::string clock = "wall";
};

// The device gateway (docs/protocol.md) on `--listen` and the read API with the self-care page
// (docs/api.md) on `--http`, either or both: prints {"listening":"HOST:PORT","http":"HOST:PORT"}
// (what it serves) once it accepts, serves until SIGINT or SIGTERM, then prints what it served as
// one JSON object. The HTTP side reads the database (on a thread of its own) as the gateway writes
// it; alone, it reads a database another process writes or nobody does.
int run_serve(const std::string& db, const serve_flags& flags) {
  if (flags.listen.empty() && flags.http.empty()) return report_error(errc::usage, "serve needs --listen or --http");
  std::unique_ptr<pevledger::engine> writer;
  std::unique_ptr<pevledger::gateway::server> gateway;
  nlohmann::ordered_json listening;
  if (!flags.listen.empty()) {
    auto at = host_and_port(flags.listen);
    if (!at) return report_error(errc::usage, "--listen takes HOST:PORT, e.g. 127.0.0.1:7400");
    pevledger::gateway::server_options options;
    options.host = at->first;
    options.port = at->second;
    options.connections_max = flags.connections_max;
    using business_clock = pevledger::gateway::server_options::business_clock;
    options.clock = flags.clock == "back-office" ? business_clock::back_office : business_clock::wall;
    if (options.clock == business_clock::back_office && flags.operator_key_file.empty())
      return report_error(errc::usage, "--clock back-office needs a back office: --operator-key FILE");
    if (!flags.operator_key_file.empty()) {
      auto key = pevledger::gateway::read_key_file(flags.operator_key_file);
      if (!key) return report_error(errc::usage, key.error().message());
      options.operator_device = pevledger::gateway::back_office_device;
      options.operator_key = std::move(key.value());
    }
    // The gateway's log: each frame that ended its connection, a bad MAC among them.
    options.on_frame_error = [](const pevledger::gateway::frame_error& e) {
      nlohmann::ordered_json j;
      j["frame_error"] = std::string(pevledger::gateway::to_string(e.code));
      j["message"] = e.message;
      std::cerr << j.dump() << std::endl;
    };
    auto engine = pevledger::engine::open(db);
    if (!engine) return fail(engine.error());
    writer = std::move(engine.value());
    auto server = pevledger::gateway::server::listen(*writer, options);
    if (!server) return fail(server.error());
    gateway = std::move(server.value());
    listening["listening"] = options.host + ":" + std::to_string(gateway->port());
  }
  std::unique_ptr<pevledger::portal::api> api;
  std::unique_ptr<pevledger::portal::http_server> http;
  if (!flags.http.empty()) {
    auto at = host_and_port(flags.http);
    if (!at) return report_error(errc::usage, "--http takes HOST:PORT, e.g. 127.0.0.1:8080");
    auto opened = pevledger::portal::api::open(db);
    if (!opened) return fail(opened.error());
    api = std::move(opened.value());
    pevledger::portal::http_options options;
    options.host = at->first;
    options.port = at->second;
    options.connections_max = flags.http_connections_max;
    auto server = pevledger::portal::http_server::listen(*api, options);
    if (!server) return fail(server.error());
    http = std::move(server.value());
    listening["http"] = options.host + ":" + std::to_string(http->port());
  }
  stop_on_signals();
  std::cout << listening.dump() << std::endl;
  std::atomic<bool> gateway_done{false};
  auto http_stop = [&] { return stop_requested.load() || gateway_done.load(); };
  pevledger::status http_served = pevledger::status::ok();
  std::thread http_thread;
  if (http && gateway) http_thread = std::thread([&] { http_served = http->run(http_stop); });
  pevledger::status served = pevledger::status::ok();
  if (gateway) {
    served = gateway->run([] { return stop_requested.load(); });
    gateway_done.store(true);
    if (http_thread.joinable()) http_thread.join();
  } else {
    http_served = http->run(http_stop);
  }
  if (!served.is_ok()) return fail(served);
  if (!http_served.is_ok()) return fail(http_served);
  nlohmann::ordered_json j;
  if (gateway) {
    const auto& stats = gateway->stats();
    j["connections"] = stats.connections;
    j["frames"] = stats.frames;
    j["accepted"] = stats.accepted;
    j["duplicates"] = stats.duplicates;
    j["refused"] = stats.refused;
    j["frame_errors"] = stats.frame_errors;
    j["timeouts"] = stats.timeouts;
    j["grants"] = stats.grants;
    j["timers_not_armed"] = stats.timers_not_armed;
    j["bad_macs"] = stats.bad_macs;
    j["configures"] = stats.configures;
  }
  if (http) {
    const auto& stats = http->stats();
    j["http_connections"] = stats.connections;
    j["http_connections_refused"] = stats.connections_refused;
    j["http_requests"] = stats.requests;
    j["http_client_errors"] = stats.client_errors;
    j["http_server_errors"] = stats.server_errors;
  }
  std::cout << j.dump() << std::endl;
  return exit_ok;
}

struct simulate_flags {
  std::string connect, operator_key_file, record_file, month = "2024-03", charging_profiles = "on";
  int premises = 600;
  std::int64_t pevs = 0;
  int days = 31;
  std::uint64_t seed = 1;
  std::size_t connections = pevledger::sim::simulation_options{}.connections;
  bool no_faults = false;
};

// ESCI/EUMD simulators for a fleet against a running gateway (sim/simulator.hpp): progress on
// standard error, what happened on standard output.
int run_simulate(const simulate_flags& f, const std::string& format, const progress_flags& progress_flags) {
  pevledger::sim::simulation_options o;
  const auto colon = f.connect.rfind(':');
  unsigned long port = 0;
  if (colon == std::string::npos ||
      std::from_chars(f.connect.data() + colon + 1, f.connect.data() + f.connect.size(), port).ec != std::errc() ||
      port == 0 || port > 65535)
    return report_error(errc::usage, "--connect takes HOST:PORT, e.g. 127.0.0.1:7400");
  o.host = f.connect.substr(0, colon);
  o.port = static_cast<std::uint16_t>(port);
  auto month = pevledger::parse_month(f.month);
  if (!month) return report_error(errc::usage, "--month takes YYYY-MM");
  o.fleet = {f.seed, (f.premises + 2) / 3, f.pevs, month.value(), f.days, f.charging_profiles == "on"};
  if (auto why = pevledger::sim::check(o.fleet)) return report_error(errc::usage, *why);
  auto key = pevledger::gateway::read_key_file(f.operator_key_file);
  if (!key) return report_error(errc::usage, key.error().message());
  o.operator_key = std::move(key.value());
  o.connections = f.connections;
  o.faults = !f.no_faults;
  std::ofstream record;
  if (!f.record_file.empty()) {
    record.open(f.record_file, std::ios::binary | std::ios::trunc);
    if (!record) return report_error(errc::usage, "cannot write '" + f.record_file + "'");
    o.record = &record;
  }
  std::atomic<std::uint64_t> lines{0};
  const auto mode = progress_flags.mode();
  pevledger::cli::progress_meter meter(std::cerr, mode, "simulate", "lines");
  progress_ticker ticker(meter, mode, [&] {
    const std::uint64_t n = lines.load(std::memory_order_relaxed);
    return progress_sample{n, n, 0};
  });
  o.on_progress = [&](const pevledger::sim::simulation_progress& p) { lines.store(p.lines, std::memory_order_relaxed); };
  const auto summary = pevledger::sim::simulate(o);
  ticker.finish();
  if (!summary) return fail(summary.error());
  const auto& r = summary.value();
  const double seconds = static_cast<double>(std::max<std::uint64_t>(r.elapsed_ms, 1)) / 1000.0;
  nlohmann::ordered_json j;
  j["lines"] = r.lines;
  j["frames"] = r.frames;
  j["operator_frames"] = r.operator_frames;
  j["command_frames"] = r.command_frames;
  j["batch_frames"] = r.batch_frames;
  j["intervals"] = r.intervals;
  j["accepted"] = r.accepted;
  j["duplicates"] = r.duplicates;
  j["refused"] = r.refused;
  j["faults"] = {{"resends", r.resends},         {"drops", r.drops},
                {"restarts", r.restarts},       {"reconnects", r.reconnects},
                {"reconfigures", r.reconfigures}, {"configures_heard", r.configures_heard}};
  j["clock_frames"] = r.clock_frames;
  j["timeouts"] = r.timeouts;
  j["grants"] = r.grants;
  j["keys"] = r.keys;
  j["recorded"] = r.recorded;
  j["seconds"] = static_cast<double>(r.elapsed_ms) / 1000.0;
  j["frames_per_s"] = static_cast<std::uint64_t>(static_cast<double>(r.frames) / seconds);
  j["intervals_per_s"] = static_cast<std::uint64_t>(static_cast<double>(r.intervals) / seconds);
  j["command_ack_p50_us"] = r.command_ack_p50_us;
  j["command_ack_p99_us"] = r.command_ack_p99_us;
  if (format == "json") {
    std::cout << j.dump() << std::endl;
    return exit_ok;
  }
  using pevledger::cli::thousands_text;
  std::cout << "simulated " << thousands_text(r.lines) << " command lines as " << thousands_text(r.frames)
            << " frames in " << j["seconds"].get<double>() << " s (" << thousands_text(j["frames_per_s"].get<std::uint64_t>())
            << " frames/s, " << thousands_text(j["intervals_per_s"].get<std::uint64_t>()) << " intervals/s)\n"
            << "  back office " << thousands_text(r.operator_frames) << ", device commands "
            << thousands_text(r.command_frames) << ", interval batches " << thousands_text(r.batch_frames) << " ("
            << thousands_text(r.intervals) << " readings)\n"
            << "  acks: " << thousands_text(r.accepted) << " accepted, " << thousands_text(r.duplicates)
            << " duplicates, " << thousands_text(r.refused) << " refused\n"
            << "  faults: " << r.resends << " resends, " << r.drops << " connections dropped before the ack, "
            << r.restarts << " EUMD restarts, " << r.reconnects << " reconnects, " << r.reconfigures
            << " EUMDs reconfigured to 5-minute intervals (" << r.configures_heard << " told)\n"
            << "  bind timeouts decided by the gateway's timer: " << thousands_text(r.timeouts) << " (clock moved "
            << thousands_text(r.clock_frames) << " times); energy grants: " << thousands_text(r.grants)
            << "; device keys from setups: " << thousands_text(r.keys) << "\n"
            << "  device command ack latency: p50 " << r.command_ack_p50_us / 1000.0 << " ms, p99 "
            << r.command_ack_p99_us / 1000.0 << " ms\n";
  if (!f.record_file.empty()) std::cout << "  record: " << thousands_text(r.recorded) << " lines in " << f.record_file << "\n";
  std::cout.flush();
  return exit_ok;
}

// Runs a query that returns one JSON document, printed as JSON or as text for people.
int run_query(const std::string& db, const std::string& format,
              const std::function<pevledger::result<std::string>(pevledger::engine&)>& query,
              const std::function<std::string(const std::string&)>& as_text) {
  int code = exit_ok;
  auto engine = open_reader(db, code);
  if (!engine) return code;
  auto doc = query(*engine);
  if (!doc) return fail(doc.error());
  std::cout << (format == "json" ? doc.value() : as_text(doc.value())) << std::endl;
  return exit_ok;
}

int run_export(const std::string& db, pevledger::export_options options, const progress_flags& progress_flags) {
  int code = exit_ok;
  auto engine = open_reader(db, code, options.follow);
  if (!engine) return code;
  if (options.follow) {
    stop_on_signals();
    options.stop = [] { return stop_requested.load(); };
  }
  // Progress counts records of the log as it was at the start; a follower has no end to show.
  const std::uint64_t first = std::max<std::uint64_t>(options.from_seq, 1);
  const std::uint64_t head = engine->log_size();
  const std::uint64_t total = head >= first ? head - first + 1 : 0;
  const auto mode = options.follow ? pevledger::cli::progress_mode::off : progress_flags.mode();
  pevledger::cli::progress_meter meter(std::cerr, mode, "export", "records", total);
  std::atomic<std::uint64_t> written{0};
  progress_ticker ticker(meter, mode, [&] {
    const std::uint64_t n = written.load(std::memory_order_relaxed);
    return progress_sample{n, n};
  });
  options.on_record = [&] { written.fetch_add(1, std::memory_order_relaxed); };
  const auto exported = engine->export_events(std::cout, options);
  ticker.finish();
  if (!exported.is_ok()) return fail(exported);
  return exit_ok;
}

// The notification outbox (portal/notifications.hpp): one JSON line per closed session.
int run_notifications(const std::string& db, pevledger::portal::outbox_options options) {
  if (options.follow) {
    stop_on_signals();
    options.stop = [] { return stop_requested.load(); };
  }
  const auto written = pevledger::portal::write_notifications(db, std::cout, options);
  if (!written.is_ok()) return fail(written);
  return exit_ok;
}

int run_replay(const std::string& db, const std::string& until, bool verify, bool from_snapshots,
               std::size_t threads, const std::string& format, const progress_flags& progress_flags) {
  // The total is known once the reader has opened the log: the first report brings it.
  std::atomic<std::uint64_t> read{0}, total{0};
  const auto mode = progress_flags.mode();
  pevledger::cli::progress_meter meter(std::cerr, mode, "replay", "records");
  progress_ticker ticker(meter, mode, [&] {
    const std::uint64_t n = read.load(std::memory_order_relaxed);
    return progress_sample{n, n, total.load(std::memory_order_relaxed)};
  });
  auto report = pevledger::replay::run(db, until, verify, from_snapshots, threads,
                                       [&](std::uint64_t records_read, std::uint64_t records_total) {
                                         total.store(records_total, std::memory_order_relaxed);
                                         read.store(records_read, std::memory_order_relaxed);
                                       });
  ticker.finish();
  if (!report) return fail(report.error());
  std::cout << (format == "json" ? report->json : report->text) << std::endl;
  return report->ok ? exit_ok : exit_refused;
}

std::string bytes_text(std::uint64_t bytes) {
  constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  std::uint64_t whole = bytes, tenths = 0;
  for (; whole >= 1024 && unit + 1 < std::size(units); ++unit) {
    tenths = (whole % 1024) * 10 / 1024;
    whole /= 1024;
  }
  return std::to_string(whole) + (unit > 0 ? "." + std::to_string(tenths) : "") + " " + units[unit];
}

std::string stats_text(const std::string& json) {
  const auto j = nlohmann::json::parse(json);
  std::ostringstream out;
  out << "format      " << j["format"].get<std::string>() << '\n'
      << "records     " << j["records"].get<std::uint64_t>() << '\n'
      << "last record " << (j["last_at"].is_null() ? std::string("(none)") : j["last_at"].get<std::string>()) << '\n'
      << "streams     " << j["streams"].get<std::uint64_t>() << '\n';
  for (const auto& [kind, count] : j["entities"].items()) out << "  " << kind << ": " << count.get<std::uint64_t>() << '\n';
  out << "on disk     " << bytes_text(j["disk_bytes"].get<std::uint64_t>()) << " (WAL "
      << bytes_text(j["wal_bytes"].get<std::uint64_t>()) << " in " << j["wal_files"].get<std::uint64_t>()
      << " files; compaction pending " << bytes_text(j["pending_compaction_bytes"].get<std::uint64_t>()) << ")\n"
      << "column family      keys (est.)   tables       blobs        memtables    files per level";
  for (const auto& cf : j["column_families"]) {
    std::ostringstream levels;
    for (const auto& n : cf["files_per_level"]) levels << n.get<std::uint64_t>() << ' ';
    char line[256];
    std::snprintf(line, sizeof line, "\n%-18s %-13llu %-12s %-12s %-12s %s", cf["name"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(cf["estimated_keys"].get<std::uint64_t>()),
                  bytes_text(cf["sst_bytes"].get<std::uint64_t>()).c_str(),
                  bytes_text(cf["blob_bytes"].get<std::uint64_t>()).c_str(),
                  bytes_text(cf["memtable_bytes"].get<std::uint64_t>()).c_str(), levels.str().c_str());
    out << line;
  }
  return out.str();
}

// Scans argv for `--format json` before CLI11 parses it, so that a usage error is JSON too.
bool json_format_asked(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--format=json") return true;
    if (arg == "--format" && i + 1 < argc && std::string_view(argv[i + 1]) == "json") return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // cin gets a buffer of its own: the ingest reads whatever has arrived, a chunk at a time.
  std::ios::sync_with_stdio(false);
  errors_as_json = json_format_asked(argc, argv);
  CLI::App app{"pevledger: settlement core for plug-in electric vehicle charging"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("pevledger ") + PEVLEDGER_VERSION + " (log format " +
                                        std::string(pevledger::log_format_written()) + ")");
  app.footer(
      "Exit codes: 0 success; 1 the account or session asked for does not exist; 2 usage or storage\n"
      "error; 3 ingest refused a line, or replay --verify / verify found a mismatch.\n"
      "Only ingest, upgrade, token and serve --listen write; every other command opens the database\n"
      "read-only.\n"
      "The database defaults to ./pevledger.db. See README.md and docs/auditing.md.");
  std::string db = "pevledger.db";
  std::string format = "text";
  auto add_db = [&](CLI::App* sub) {
    sub->add_option("--db", db, "database directory")->capture_default_str();
  };
  auto add_format = [&](CLI::App* sub, const char* what) {
    sub->add_option("--format", format, what)->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  };
  constexpr const char* output_format = "text for people, json for programs (errors too)";
  constexpr const char* error_format = "json: errors as one JSON object on standard error";
  progress_flags progress;
  auto add_progress = [&](CLI::App* sub) {
    sub->add_flag("--progress", progress.forced, "show progress on standard error even when it is not a terminal");
    sub->add_flag("--quiet", progress.quiet, "no progress, even on a terminal");
  };

  std::string file;
  auto* ingest = app.add_subcommand("ingest", "apply JSON command lines (FILE, or - for standard input)");
  add_db(ingest);
  add_format(ingest, error_format);
  add_progress(ingest);
  ingest->add_option("FILE", file, "command file, or - for standard input")->required();
  tuning_flags tuning;
  ingest->add_option("--group-lines", tuning.options.group_lines,
                     "lines per group commit (1 to 16384): fewer means smaller, more frequent synced writes")
      ->check(CLI::Range(std::size_t{1}, std::size_t{16384}))
      ->capture_default_str();
  ingest->add_option("--group-delay-us", tuning.options.group_delay_max_us,
                     "close a group once its first line waited this long (0: only when full); bounds latency "
                     "under a steady load at the cost of more synced writes")
      ->capture_default_str();
  ingest->add_option("--resident-entities", tuning.options.resident_entities_max,
                     "entities kept in memory between group commits; the rest wait in the log")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ingest->add_option("--live-actors", tuning.options.live_entity_actors_max,
                     "entity actors live at once (each about 1.3 KB); beyond, the least recently used stop")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ingest->add_option("--interval-identities", tuning.options.interval_identities_known_max,
                     "interval identities (EUMD, start) held in memory; beyond, read back from the log")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  ingest->add_option("--block-cache-mb", tuning.block_cache_mib,
                     "RocksDB block cache, MiB: more keeps indexes and recent records in memory")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();

  std::string account, period, session;
  auto* bill = app.add_subcommand("bill", "an account's bill for a period: issued, or a preview before bill.run");
  add_db(bill);
  add_format(bill, output_format);
  bill->add_option("--account", account, "account id")->required();
  bill->add_option("--period", period, "billing month, YYYY-MM, in the utility's zone")->required();

  auto* balance = app.add_subcommand("balance", "an account's balance and open reservations");
  add_db(balance);
  add_format(balance, output_format);
  balance->add_option("--account", account, "account id")->required();

  auto* settlement = app.add_subcommand("settlement", "the roaming settlement statement of a period");
  add_db(settlement);
  add_format(settlement, output_format);
  settlement->add_option("--period", period, "YYYY-MM")->required();

  auto* session_cmd = app.add_subcommand("session", "a charging session's report");
  add_db(session_cmd);
  add_format(session_cmd, output_format);
  session_cmd->add_option("--session", session, "session id")->required();

  auto* report = app.add_subcommand("report", "a period at a glance: bill totals per utility and the settlement");
  add_db(report);
  add_format(report, output_format);
  report->add_option("--period", period, "YYYY-MM")->required();

  pevledger::export_options export_options;
  auto* export_cmd = app.add_subcommand("export", "every event as JSON lines, in log order (a change feed with --follow)");
  add_db(export_cmd);
  add_format(export_cmd, error_format);
  add_progress(export_cmd);
  export_cmd->add_flag("--raw", export_options.raw, "add each record's stored bytes (base64) and its hash field's offset");
  export_cmd->add_option("--from", export_options.from_seq, "first sequence number to write (resume after the last one seen)")
      ->check(CLI::PositiveNumber);
  export_cmd->add_flag("--follow", export_options.follow,
                       "keep writing records as their groups become durable, until SIGINT or SIGTERM");

  pevledger::portal::outbox_options outbox;
  auto* notifications = app.add_subcommand(
      "notifications", "the outbox: a summary of every closed session as JSON lines, for a mailer (at least once; "
                       "each has a stable id)");
  add_db(notifications);
  add_format(notifications, error_format);
  notifications->add_option("--after", outbox.after, "the seq of the last notification handled (0: from the start)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 62))
      ->capture_default_str();
  notifications->add_flag("--follow", outbox.follow,
                          "keep writing notifications as sessions close, until SIGINT or SIGTERM");

  std::string until;
  bool verify = false;
  auto* replay = app.add_subcommand("replay", "rebuild every projection from the log alone");
  add_db(replay);
  add_format(replay, output_format);
  add_progress(replay);
  replay->add_option("--until", until, "stop after this sequence number, or at this time (YYYY-MM-DDTHH:MM:SSZ)");
  replay->add_flag("--verify", verify, "check the hash chain and compare every projection a query answers (and any an older database stored)");
  bool from_snapshots = false;
  std::size_t replay_threads = 0;
  replay->add_option("--threads", replay_threads,
                     "threads: one reads, the others verify hashes and apply; 0: one more than the cores (the digest is the same)")
      ->capture_default_str();
  replay->add_flag("--from-snapshots", from_snapshots,
                   "start each entity from its newest snapshot and apply only the events after it");

  std::string key, checkpoint_file, pubkey, out_file;
  auto* checkpoint = app.add_subcommand("checkpoint", "sign the log's current head with an Ed25519 key");
  add_db(checkpoint);
  add_format(checkpoint, error_format);
  checkpoint->add_option("--key", key, "Ed25519 private key, PEM")->required();
  checkpoint->add_option("--out", out_file, "write the checkpoint here instead of standard output");

  auto* verify_cmd = app.add_subcommand("verify", "prove that the log extends a signed checkpoint unchanged");
  add_db(verify_cmd);
  add_format(verify_cmd, error_format);
  verify_cmd->add_option("--checkpoint", checkpoint_file, "checkpoint file")->required();
  verify_cmd->add_option("--pubkey", pubkey, "Ed25519 public key, PEM")->required();

  std::string backup_to;
  auto* backup = app.add_subcommand("backup", "a consistent copy of the database, also while ingest runs");
  add_db(backup);
  add_format(backup, output_format);
  add_progress(backup);
  backup->add_option("--to", backup_to, "new directory for the copy (must not exist)")->required();

  serve_flags served;
  auto* serve = app.add_subcommand("serve", "the device gateway (devices' frames in, acknowledgements once durable: "
                                            "docs/protocol.md) and the read API with the self-care page "
                                            "(docs/api.md), until SIGINT or SIGTERM");
  add_db(serve);
  serve->add_option("--listen", served.listen,
                    "HOST:PORT to accept device connections on (IPv4; port 0: any free port)");
  serve->add_option("--http", served.http,
                    "HOST:PORT of the read API and the self-care page (IPv4, loopback by default is wise; port 0: "
                    "any free port); alone, it only reads the database");
  serve->add_option("--connections", served.connections_max, "device connections at once; more wait to be accepted")
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}))
      ->capture_default_str();
  serve->add_option("--http-connections", served.http_connections_max,
                    "HTTP connections at once; one more is answered 503")
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}))
      ->capture_default_str();
  serve->add_option("--operator-key", served.operator_key_file,
                    "file holding the back office's key in hex: frames signed with it as device 'back-office' "
                    "carry command lines (tariffs, accounts, bill runs)");
  serve->add_option("--clock", served.clock,
                    "business clock of the communication-timeout timers: wall (the host's), or back-office (the "
                    "time the back office's Clock frames say: simulations, months played again)")
      ->check(CLI::IsMember({"wall", "back-office"}))
      ->capture_default_str();

  std::string token_account, token_utility, token_revoke;
  auto* token = app.add_subcommand("token", "issue a read-access token for the HTTP API (docs/api.md) for an account "
                                            "or a whole utility; printed once, stored only as its SHA-256");
  add_db(token);
  add_format(token, output_format);
  auto* token_for_account = token->add_option("--account", token_account, "the account the token reads");
  auto* token_for_utility = token->add_option("--utility", token_utility, "the utility whose accounts the token reads");
  token_for_account->excludes(token_for_utility);
  token->add_option("--revoke", token_revoke, "revoke this token (of that account or utility) instead of issuing one");

  simulate_flags sim;
  auto* simulate = app.add_subcommand("simulate", "ESCI/EUMD simulators for a fleet: a month of charging sent to "
                                                  "a running gateway (pevledger serve) as its devices would");
  add_format(simulate, output_format);
  add_progress(simulate);
  simulate->add_option("--connect", sim.connect, "the gateway's HOST:PORT")->required();
  simulate->add_option("--operator-key", sim.operator_key_file,
                       "the gateway's --operator-key file: the back office signs its command lines with it")
      ->required();
  simulate->add_option("--premises", sim.premises, "residential premises, shared by three utilities")
      ->check(CLI::Range(1, 3000000))
      ->capture_default_str();
  simulate->add_option("--pevs", sim.pevs, "PEVs in all (0: one or two a premise)")->capture_default_str();
  simulate->add_option("--days", sim.days, "days of the month simulated (4 to 31)")->capture_default_str();
  simulate->add_option("--month", sim.month, "the month, YYYY-MM")->capture_default_str();
  simulate->add_option("--seed", sim.seed, "the same seed gives the same fleet, month and faults")->capture_default_str();
  simulate->add_option("--connections", sim.connections, "device connections (1 to 256); the back office has one more")
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}))
      ->capture_default_str();
  simulate->add_option("--charging-profiles", sim.charging_profiles,
                       "on: 120 V and 240 V chargers, time-of-use PEVs waiting for the night; off: fleet_gen's "
                       "default month")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  simulate->add_flag("--no-faults", sim.no_faults, "no resends, dropped connections, restarts, reconnects or reconfigurations");
  simulate->add_option("--record", sim.record_file,
                       "write every command the simulation caused, as JSON lines in the order the gateway decided "
                       "them (for pevledger ingest)");

  auto* stats = app.add_subcommand("stats", "records, streams, size on disk and RocksDB's figures");
  add_db(stats);
  add_format(stats, output_format);

  auto* upgrade = app.add_subcommand("upgrade", "mark a database of an older format readable by this pevledger as its own");
  add_db(upgrade);
  add_format(upgrade, output_format);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (errors_as_json) return report_error(errc::usage, e.what());
    app.exit(e);
    return exit_usage;
  }
  errors_as_json = format == "json";

  if (*ingest) return run_ingest(db, file, tuning, progress);
  if (*serve) return run_serve(db, served);
  if (*token) return run_token(db, token_account, token_utility, token_revoke, format);
  if (*simulate) return run_simulate(sim, format, progress);
  if (*bill)
    return run_query(db, format, [&](pevledger::engine& e) { return e.bill(account, period); },
                     pevledger::cli::bill_text);
  if (*balance)
    return run_query(db, format, [&](pevledger::engine& e) { return e.balance(account); },
                     pevledger::cli::balance_text);
  if (*settlement)
    return run_query(db, format, [&](pevledger::engine& e) { return e.settlement(period); },
                     pevledger::cli::settlement_text);
  if (*session_cmd)
    return run_query(db, format, [&](pevledger::engine& e) { return e.session(session); },
                     pevledger::cli::session_text);
  if (*report)
    return run_query(db, format, [&](pevledger::engine& e) { return e.period_report(period); },
                     pevledger::cli::report_text);
  if (*stats) return run_query(db, format, [](pevledger::engine& e) { return e.stats(); }, stats_text);
  if (*export_cmd) return run_export(db, export_options, progress);
  if (*notifications) return run_notifications(db, outbox);
  if (*replay) return run_replay(db, until, verify, from_snapshots, replay_threads, format, progress);
  if (*backup) {
    int code = exit_ok;
    auto engine = open_reader(db, code);
    if (!engine) return code;
    std::atomic<std::uint64_t> copied{0}, total{0};
    const auto mode = progress.mode();
    pevledger::cli::progress_meter meter(std::cerr, mode, "backup", "keys");
    progress_ticker ticker(meter, mode, [&] {
      const std::uint64_t n = copied.load(std::memory_order_relaxed);
      return progress_sample{n, n, total.load(std::memory_order_relaxed)};
    });
    const auto copied_all = engine->backup(backup_to, [&](std::uint64_t keys, std::uint64_t keys_total) {
      total.store(keys_total, std::memory_order_relaxed);
      copied.store(keys, std::memory_order_relaxed);
    });
    ticker.finish();
    if (!copied_all.is_ok()) return fail(copied_all);
    nlohmann::ordered_json j;
    j["backup"] = backup_to;
    j["records"] = engine->log_size();
    std::cout << (format == "json" ? j.dump()
                                   : "copied " + std::to_string(engine->log_size()) + " records of " + db + " to " + backup_to)
              << std::endl;
    return exit_ok;
  }
  if (*upgrade) {
    auto held = pevledger::engine::upgrade(db);
    if (!held) return fail(held.error());
    const std::string now(pevledger::log_format_written());
    nlohmann::ordered_json j;
    j["db"] = db;
    j["from"] = held.value();
    j["to"] = now;
    std::cout << (format == "json" ? j.dump()
                  : held.value() == now ? db + " already holds " + now
                                        : db + ": " + held.value() + " -> " + now)
              << std::endl;
    return exit_ok;
  }
  if (*checkpoint) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    auto text = pevledger::replay::make_checkpoint(db, key, pevledger::unix_seconds(now.count()));
    if (!text) return fail(text.error());
    if (out_file.empty()) {
      std::cout << text.value();
    } else {
      std::ofstream out(out_file, std::ios::binary);
      out << text.value();
      if (!out) return report_error(errc::io_error, "cannot write '" + out_file + "'");
    }
    return exit_ok;
  }
  if (*verify_cmd) {
    std::ifstream in(checkpoint_file, std::ios::binary);
    if (!in) return report_error(errc::usage, "cannot read '" + checkpoint_file + "'");
    std::stringstream text;
    text << in.rdbuf();
    auto outcome = pevledger::replay::verify_checkpoint(db, text.str(), pubkey);
    if (!outcome) return fail(outcome.error());
    (outcome->ok ? std::cout : std::cerr) << (outcome->ok ? "verified: " : "NOT verified: ") << outcome->message
                                          << std::endl;
    return outcome->ok ? exit_ok : exit_refused;
  }
  return exit_usage;
}
