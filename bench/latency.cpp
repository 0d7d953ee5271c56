// bench/latency: binding latency under ingest load. Sessions plug in, bind and ask for energy
// while other sessions' intervals stream in; a binding's latency runs from the moment its plug line
// is handed to the engine until its energy request (the grant) is durable. Measured with the
// default group commits (engine_options::group_lines lines) and with groups closed after 2 ms.
// Prints JSON.
//
//   latency [--premises N] [--sessions N] [--dir DIR]

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <streambuf>

#include "bench/bench_info.hpp"
#include "sim/vin.hpp"
#include "pevledger/engine.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

// Hands the engine one line per read and notes when each line went in.
class timed_lines : public std::streambuf {
 public:
  explicit timed_lines(const std::vector<std::string>& lines) : lines_(lines), handed_(lines.size()) {}
  [[nodiscard]] clock_type::time_point handed(std::size_t line) const { return handed_[line]; }

 protected:
  int_type underflow() override {
    if (next_ >= lines_.size()) return traits_type::eof();
    current_ = lines_[next_] + "\n";
    handed_[next_++] = clock_type::now();
    setg(current_.data(), current_.data(), current_.data() + current_.size());
    return traits_type::to_int_type(current_[0]);
  }

 private:
  const std::vector<std::string>& lines_;
  std::vector<clock_type::time_point> handed_;
  std::size_t next_ = 0;
  std::string current_;
};

std::string q(const std::string& s) { return "\"" + s + "\""; }

struct binding {
  std::size_t plug_line;     // 0-based
  std::size_t request_line;  // 0-based
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  int premises = 20000;
  int sessions = 20000;
  std::string dir = "/tmp/pevledger-bench-latency";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--premises") premises = std::stoi(argv[i + 1]);
    else if (flag == "--sessions") sessions = std::stoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
  }
  std::mt19937_64 rng(3);
  std::uint64_t id = 0;
  auto line = [&](const std::string& at, const std::string& fields) {
    return R"({"id":"l)" + std::to_string(++id) + R"(","at":")" + at + "\"," + fields + "}";
  };
  // The population.
  std::vector<std::string> setup, vins;
  setup.push_back(line("2024-02-20T00:00:00Z", R"("type":"utility.register","utility":"u","timezone":"UTC")"));
  setup.push_back(line("2024-02-20T00:00:01Z", R"("type":"tariff.publish","utility":"u","tariff":"res","kind":"flat","price":200000)"));
  setup.push_back(line("2024-02-20T00:00:02Z", R"("type":"tariff.publish","utility":"u","tariff":"ev","kind":"flat","price":150000)"));
  for (int p = 0; p < premises; ++p) {
    const std::string n = std::to_string(p), at = "2024-02-25T00:00:00Z";
    vins.push_back(pevledger::bench::random_vin(rng));
    setup.push_back(line(at, R"("type":"account.open","utility":"u","account":"a)" + n + R"(","customer":"c")"));
    setup.push_back(line(at, R"("type":"premise.register","utility":"u","premise":"p)" + n +
                                 R"(","account":"a)" + n + R"(","default_tariff":"res")"));
    setup.push_back(line(at, R"("type":"device.commission","premise":"p)" + n + R"(","device":"e)" + n + R"(","kind":"eumd")"));
    setup.push_back(line(at, R"("type":"pev.enroll","account":"a)" + n + R"(","pev":)" + q(vins.back()) +
                                 R"(,"tariff":"ev","home_premise":"p)" + n + "\""));
  }
  // The load: every session plugs, binds and asks for energy at once (the binding measured), then
  // eight intervals follow, interleaved with the next sessions'.
  std::vector<std::string> load;
  std::vector<binding> bindings;
  std::vector<std::string> backlog;  // intervals of earlier sessions, delivered as later ones bind
  for (int s = 0; s < sessions; ++s) {
    const int p = s % premises;
    const std::string sid = "s" + std::to_string(s), n = std::to_string(p);
    const int day = 1 + s / premises;
    char plug[32];
    std::snprintf(plug, sizeof plug, "2024-03-%02dT18:00:00Z", day);
    binding b{load.size(), 0};
    load.push_back(line(plug, R"("type":"session.plug","session":)" + q(sid) + R"(,"premise":"p)" + n + "\""));
    load.push_back(line(plug, R"("type":"session.bind","session":)" + q(sid) + R"(,"pev":)" + q(vins[p])));
    b.request_line = load.size();
    load.push_back(line(plug, R"("type":"energy.request","session":)" + q(sid) +
                                  R"(,"wh":20000,"depart":"2024-03-28T07:00:00Z")"));
    bindings.push_back(b);
    for (int i = 0; i < 8; ++i) {
      char start[32];
      std::snprintf(start, sizeof start, "2024-03-%02dT%02d:%02d:00Z", day, 18 + i / 4, (i % 4) * 15);
      backlog.push_back(line(start, R"("type":"meter.interval","device":"e)" + n + R"(","session":)" + q(sid) +
                                        R"(,"start":)" + q(start) + R"(,"seconds":900,"wh":900)"));
    }
    // Deliver eight intervals of earlier sessions for each binding: the steady load.
    for (int i = 0; i < 8 && !backlog.empty(); ++i) {
      load.push_back(std::move(backlog.front()));
      backlog.erase(backlog.begin());
    }
  }
  for (auto& l : backlog) load.push_back(std::move(l));

  auto j = pevledger::bench::header("latency");
  j["settings"] = {{"premises", premises}, {"sessions", sessions}, {"load_lines", load.size()},
                   {"default_group_lines", pevledger::engine_options{}.group_lines}};
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (std::uint64_t delay_us : {std::uint64_t{0}, std::uint64_t{2000}}) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    pevledger::engine_options options;
    options.group_delay_max_us = delay_us;
    auto engine = pevledger::engine::open(dir + "/db", options);
    if (!engine) return 2;
    {
      std::string text;
      for (const auto& l : setup) text += l + "\n";
      std::istringstream in(text);
      if (!engine.value()->ingest(in, {})) return 2;
    }
    timed_lines buf(load);
    std::istream in(&buf);
    std::vector<double> latencies_ms;
    latencies_ms.reserve(bindings.size());
    std::size_t next_binding = 0;
    const auto t0 = clock_type::now();
    auto summary = engine.value()->ingest(in, {}, [&](std::uint64_t lines_through) {
      const auto now = clock_type::now();
      for (; next_binding < bindings.size() && bindings[next_binding].request_line < lines_through; ++next_binding)
        latencies_ms.push_back(
            std::chrono::duration<double, std::milli>(now - buf.handed(bindings[next_binding].plug_line)).count());
    });
    const double load_s = pevledger::bench::seconds_since(t0);
    if (!summary || summary->refused != 0) {
      std::cerr << "latency: the load was not accepted\n";
      return 2;
    }
    nlohmann::ordered_json r;
    r["group_delay_max_us"] = delay_us;
    r["lines_per_s"] = static_cast<long long>(static_cast<double>(load.size()) / load_s);
    r["bindings"] = latencies_ms.size();
    r["p50_ms"] = std::round(percentile(latencies_ms, 0.5) * 100) / 100;
    r["p99_ms"] = std::round(percentile(latencies_ms, 0.99) * 100) / 100;
    r["p999_ms"] = std::round(percentile(latencies_ms, 0.999) * 100) / 100;
    runs.push_back(std::move(r));
  }
  std::filesystem::remove_all(dir);
  j["runs"] = std::move(runs);
  j["goal_p99_ms_max"] = 5;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
