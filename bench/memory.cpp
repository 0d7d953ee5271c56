// bench/memory: resident memory per enrolled PEV, with a million PEVs enrolled and 1 % of them
// charging, through the real engine and a durable log. Prints JSON.
//
//   memory [--pevs N] [--charging-share F] [--dir DIR]
//
// Each PEV gets its own account, premise, ESCI, EUMD, enrolment and set-up (six command lines),
// spread over three utilities. Resident memory is read from /proc at three points: after 10 % of
// the enrolments, after all of them (the difference over the 90 % enrolled in between is the
// marginal cost of an idle PEV, fixed costs such as RocksDB's memtables excluded), and at the peak
// of the charging phase. The lines are generated as the engine reads them, so the generator holds
// no fleet in memory.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <istream>
#include <random>
#include <streambuf>

#include "bench/bench_info.hpp"
#include "sim/vin.hpp"
#include "pevledger/engine.hpp"

namespace {

// An input stream whose lines come from `next` as they are read.
class generated_lines : public std::streambuf {
 public:
  explicit generated_lines(std::function<bool(std::string&)> next) : next_(std::move(next)) {}

 protected:
  int_type underflow() override {
    buffer_.clear();
    std::string line;
    // Refill in chunks of about 64 KiB.
    while (buffer_.size() < (64u << 10) && next_(line)) {
      buffer_ += line;
      buffer_.push_back('\n');
    }
    if (buffer_.empty()) return traits_type::eof();
    setg(buffer_.data(), buffer_.data(), buffer_.data() + buffer_.size());
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  std::function<bool(std::string&)> next_;
  std::string buffer_;
};

long long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

const char* const utilities[] = {"u_west", "u_north", "u_east"};
const char* const zones[] = {"America/Los_Angeles", "Europe/Helsinki", "Asia/Tokyo"};

std::string q(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

int main(int argc, char** argv) {
  long long pevs = 1'000'000;
  double charging_share = 0.01;
  std::string dir = "/tmp/pevledger-bench-memory";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pevs") pevs = std::stoll(argv[i + 1]);
    else if (flag == "--charging-share") charging_share = std::stod(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else {
      std::cerr << "usage: memory [--pevs N] [--charging-share F] [--dir DIR]\n";
      return 2;
    }
  }
  if (pevs < 10 || charging_share < 0 || charging_share > 1) {
    std::cerr << "memory: --pevs at least 10, --charging-share 0..1\n";
    return 2;
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto engine = pevledger::engine::open(dir + "/db");
  if (!engine) {
    std::cerr << engine.error().describe() << '\n';
    return 2;
  }
  const long long rss_open = resident_bytes();

  std::mt19937_64 rng(5);
  std::vector<std::pair<std::string, long long>> chargers;  // VIN and enrolment index of the 1 % that charge
  std::uint64_t id = 0;
  auto line = [&](const std::string& at, const std::string& fields) {
    return R"({"id":"m)" + std::to_string(++id) + R"(","at":")" + at + "\"," + fields + "}";
  };
  // Enrolment lines of PEVs [from, to), six per PEV, after the utilities' set-up when from is 0.
  auto enrolment = [&](long long from, long long to) {
    auto pending = std::make_shared<std::vector<std::string>>();
    auto next_pev = std::make_shared<long long>(from);
    if (from == 0)
      for (int u = 0; u < 3; ++u) {
        pending->push_back(line("2024-02-20T00:00:00Z", R"("type":"utility.register","utility":)" + q(utilities[u]) +
                                                            R"(,"timezone":)" + q(zones[u])));
        pending->push_back(line("2024-02-20T00:00:01Z", R"("type":"tariff.publish","utility":)" + q(utilities[u]) +
                                                            R"(,"tariff":"res","kind":"flat","price":200000)"));
        pending->push_back(line("2024-02-20T00:00:02Z", R"("type":"tariff.publish","utility":)" + q(utilities[u]) +
                                                            R"(,"tariff":"ev","kind":"flat","price":150000)"));
      }
    std::reverse(pending->begin(), pending->end());
    return [&, pending, next_pev, to](std::string& out) {
      if (pending->empty()) {
        if (*next_pev >= to) return false;
        const long long i = (*next_pev)++;
        const std::string n = std::to_string(i), u = utilities[i % 3];
        const std::string vin = pevledger::bench::random_vin(rng);
        if (static_cast<double>(chargers.size()) < charging_share * static_cast<double>(i + 1))
          chargers.emplace_back(vin, i);
        const std::string at = "2024-02-25T00:00:00Z";
        std::vector<std::string> six = {
            line(at, R"("type":"account.open","utility":)" + q(u) + R"(,"account":"a)" + n + R"(","customer":"c)" + n + "\""),
            line(at, R"("type":"premise.register","utility":)" + q(u) + R"(,"premise":"p)" + n +
                         R"(","account":"a)" + n + R"(","default_tariff":"res")"),
            line(at, R"("type":"device.commission","premise":"p)" + n + R"(","device":"c)" + n + R"(","kind":"esci")"),
            line(at, R"("type":"device.commission","premise":"p)" + n + R"(","device":"e)" + n + R"(","kind":"eumd")"),
            line(at, R"("type":"pev.enroll","account":"a)" + n + R"(","pev":)" + q(vin) +
                         R"(,"tariff":"ev","home_premise":"p)" + n + "\""),
            line(at, R"("type":"pev.setup","pev":)" + q(vin) + R"(,"premise":"p)" + n + R"(","esci":"c)" + n +
                         R"(","eumd":"e)" + n + "\"")};
        for (auto it = six.rbegin(); it != six.rend(); ++it) pending->push_back(std::move(*it));
      }
      out = std::move(pending->back());
      pending->pop_back();
      return true;
    };
  };

  auto ingest = [&](std::function<bool(std::string&)> next) -> bool {
    generated_lines buf(std::move(next));
    std::istream in(&buf);
    auto summary = engine.value()->ingest(in, {});
    if (!summary) {
      std::cerr << summary.error().describe() << '\n';
      return false;
    }
    if (summary->refused != 0) {
      std::cerr << "memory: " << summary->refused << " lines refused\n";
      return false;
    }
    return true;
  };

  const auto t0 = std::chrono::steady_clock::now();
  const long long first_share = pevs / 10;
  if (!ingest(enrolment(0, first_share))) return 2;
  const long long rss_tenth = resident_bytes();
  if (!ingest(enrolment(first_share, pevs))) return 2;
  const double enrol_s = pevledger::bench::seconds_since(t0);
  const long long rss_enrolled = resident_bytes();
  const auto after_enrolment = engine.value()->residency();

  // Charging: each charging PEV plugs in at home, binds, asks for energy, sends eight intervals
  // and unplugs.
  std::size_t next_session = 0;
  std::vector<std::string> session_lines;
  const auto t1 = std::chrono::steady_clock::now();
  auto charging = [&](std::string& out) {
    if (session_lines.empty()) {
      if (next_session >= chargers.size()) return false;
      const std::size_t s = next_session++;
      const std::string home = std::to_string(chargers[s].second), sid = "s" + std::to_string(s);
      std::vector<std::string> lines;
      lines.push_back(line("2024-03-05T18:00:00Z",
                           R"("type":"session.plug","session":)" + q(sid) + R"(,"premise":"p)" + home + "\""));
      lines.push_back(line("2024-03-05T18:00:20Z",
                           R"("type":"session.bind","session":)" + q(sid) + R"(,"pev":)" + q(chargers[s].first)));
      lines.push_back(line("2024-03-05T18:00:25Z", R"("type":"energy.request","session":)" + q(sid) +
                                                       R"(,"wh":20000,"depart":"2024-03-06T07:00:00Z")"));
      for (int i = 0; i < 8; ++i) {
        char start[32];
        std::snprintf(start, sizeof start, "2024-03-05T%02d:%02d:00Z", 18 + i / 4, (i % 4) * 15);
        lines.push_back(line(start, R"("type":"meter.interval","device":"e)" + home +
                                        R"(","session":)" + q(sid) + R"(,"start":)" + q(start) +
                                        R"(,"seconds":900,"wh":)" + std::to_string(800 + i * 10)));
      }
      lines.push_back(line("2024-03-05T20:05:00Z", R"("type":"session.unplug","session":)" + q(sid)));
      for (auto it = lines.rbegin(); it != lines.rend(); ++it) session_lines.push_back(std::move(*it));
    }
    out = std::move(session_lines.back());
    session_lines.pop_back();
    return true;
  };
  if (!ingest(charging)) return 2;
  const double charge_s = pevledger::bench::seconds_since(t1);
  const auto after_charging = engine.value()->residency();

  auto j = pevledger::bench::header("memory");
  j["settings"] = {{"pevs", pevs}, {"charging_share", charging_share}, {"lines_per_pev", 6}};
  j["enrolment_lines_per_s"] = static_cast<long long>(static_cast<double>(pevs * 6) / enrol_s);
  j["charging_sessions"] = chargers.size();
  j["charging_s"] = std::round(charge_s * 100) / 100;
  j["resident_bytes_at_open"] = rss_open;
  j["resident_bytes_enrolled"] = rss_enrolled;
  j["resident_bytes_per_enrolled_pev"] = rss_enrolled / pevs;
  j["marginal_bytes_per_idle_pev"] = (rss_enrolled - rss_tenth) / (pevs - first_share);
  j["peak_resident_bytes"] = pevledger::bench::peak_resident_bytes();
  j["goal_bytes_per_idle_pev_max"] = 256;
  j["resident_entities_after_enrolment"] = after_enrolment.resident_entities;
  j["resident_entities_after_charging"] = after_charging.resident_entities;
  j["passivations"] = after_charging.passivations;
  j["activations"] = after_charging.activations;
  std::cout << j.dump(2) << std::endl;
  engine.value().reset();
  std::filesystem::remove_all(dir);
  return 0;
}
