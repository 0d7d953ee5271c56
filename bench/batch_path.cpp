// bench/batch_path: the binary batch path (engine::submit_interval_batches) beside the JSON-lines
// path and RocksDB's limit, on one workload measured in one run. Prints JSON.
//
// The workload: N residential premises, each with its EUMD and an enrolled PEV on time-of-use
// tariffs. Every night each PEV plugs in at 18:00 local time, binds, and its EUMD reports 48
// quarter hours, K at a time (K = 4: hourly, as a device that buffers an hour would); then it
// unplugs. The JSON path gets each round's N x K readings as meter.interval lines in one ingest;
// the batch path gets them as N batches of K readings in one call. Only those calls are timed
// (plugs, binds and unplugs go through JSON lines on both paths, untimed), and both are durable
// when they return. The limit: synced WriteBatches of as many records as there were intervals, one
// record per interval of the size the fleet month's log gives an interval recorded alone
// (bench/ingest measures it: 327 bytes), as many to a batch as the engine's default group commit
// has lines.
//
//   batch_path [--premises N] [--nights D] [--readings-per-batch K] [--dir DIR]

#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>

#include "bench/bench_info.hpp"
#include "bench/raw_baseline.hpp"
#include "base/time.hpp"
#include "sim/vin.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"

namespace {

using namespace std::chrono;
using clock_type = steady_clock;

constexpr std::size_t raw_record_bytes = 327;
constexpr int quarter_hours_a_night = 48;

std::string time_text(sys_seconds t) {
  return pevledger::format_timestamp(pevledger::unix_seconds(t.time_since_epoch().count()));
}

struct workload {
  int premises = 2000;
  int nights = 3;
  int readings_per_batch = 4;
  std::vector<std::string> vins;

  // 18:00 in New York (EST, March 2024 before the 10th) of night `n`.
  [[nodiscard]] sys_seconds plug_time(int night) const {
    return sys_seconds(sys_days(2024y / March / (1 + night)) + 23h);
  }
  [[nodiscard]] std::string session(int night, int p) const {
    return "s" + std::to_string(night) + "-" + std::to_string(p);
  }
};

// Lines with ids unique within one database: `next_id` counts over the whole run of a path.
class lines_builder {
 public:
  explicit lines_builder(std::uint64_t& next_id) : next_id_(next_id) {}
  std::string text;
  void add(sys_seconds at, const std::string& fields) {
    text += R"({"id":"l)" + std::to_string(++next_id_) + R"(","at":")" + time_text(at) + "\"," + fields + "}\n";
  }

 private:
  std::uint64_t& next_id_;
};

bool ingest(pevledger::engine& e, const std::string& text) {
  std::istringstream in(text);
  std::uint64_t refused = 0;
  auto s = e.ingest(in, [&](const pevledger::line_refusal& r) {
    if (refused++ == 0) std::cerr << "batch_path: line " << r.line << " refused: " << r.message << "\n";
  });
  if (s && s->duplicates != 0) std::cerr << "batch_path: " << s->duplicates << " lines were duplicates\n";
  return s && refused == 0 && s->duplicates == 0;
}

}  // namespace

int main(int argc, char** argv) {
  workload w;
  std::string dir = "/tmp/pevledger-bench-batch-path";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--premises") w.premises = std::stoi(argv[i + 1]);
    else if (flag == "--nights") w.nights = std::stoi(argv[i + 1]);
    else if (flag == "--readings-per-batch") w.readings_per_batch = std::stoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else {
      std::cerr << "usage: batch_path [--premises N] [--nights D] [--readings-per-batch K] [--dir DIR]\n";
      return 2;
    }
  }
  if (w.premises < 1 || w.nights < 1 || w.nights > 28 || w.readings_per_batch < 1 ||
      quarter_hours_a_night % w.readings_per_batch != 0) {
    std::cerr << "batch_path: 1 to 28 nights, and readings per batch must divide 48\n";
    return 2;
  }
  std::mt19937_64 rng(5);
  for (int p = 0; p < w.premises; ++p) w.vins.push_back(pevledger::bench::random_vin(rng));
  const int rounds = quarter_hours_a_night / w.readings_per_batch;

  // What premise p's EUMD measures in quarter hour q of a night (Wh).
  auto wh_of = [](int p, int q) { return 1500 + (p * 7 + q * 13) % 700; };

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  struct path_result {
    double seconds = 0;
    std::uint64_t intervals = 0;
  };
  // Runs the whole workload on a new database; `binary` picks the path the readings take.
  auto run = [&](bool binary) -> std::optional<path_result> {
    auto opened = pevledger::engine::open(dir + (binary ? "/batch" : "/lines"));
    if (!opened) return std::nullopt;
    pevledger::engine& e = *opened.value();
    std::uint64_t line_ids = 0;
    lines_builder setup(line_ids);
    const sys_seconds t0 = sys_seconds(sys_days(2024y / February / 25));
    setup.add(t0, R"("type":"utility.register","utility":"u","timezone":"America/New_York")");
    setup.add(t0, R"("type":"tariff.publish","utility":"u","tariff":"res","kind":"tou","price":200000,)"
                  R"("periods":[{"name":"peak","days":["Mon","Tue","Wed","Thu","Fri"],"from":"16:00","to":"21:00","price":400000}])");
    setup.add(t0, R"("type":"tariff.publish","utility":"u","tariff":"ev","kind":"tou","price":150000,)"
                  R"("periods":[{"name":"night","days":["Mon","Tue","Wed","Thu","Fri","Sat","Sun"],"from":"00:00","to":"06:00","price":80000}])");
    for (int p = 0; p < w.premises; ++p) {
      const std::string n = std::to_string(p);
      setup.add(t0, R"("type":"account.open","utility":"u","account":"a)" + n + R"(","customer":"c")");
      setup.add(t0, R"("type":"premise.register","utility":"u","premise":"p)" + n + R"(","account":"a)" + n +
                        R"(","default_tariff":"res")");
      setup.add(t0, R"("type":"device.commission","premise":"p)" + n + R"(","device":"m)" + n + R"(","kind":"eumd")");
      setup.add(t0, R"("type":"pev.enroll","account":"a)" + n + R"(","pev":")" + w.vins[p] +
                        R"(","tariff":"ev","home_premise":"p)" + n + "\"");
    }
    if (!ingest(e, setup.text)) return std::nullopt;
    path_result out;
    std::uint64_t batch_id = 0;
    for (int night = 0; night < w.nights; ++night) {
      const sys_seconds plug = w.plug_time(night);
      lines_builder plugs(line_ids);
      for (int p = 0; p < w.premises; ++p) {
        const std::string sid = w.session(night, p);
        plugs.add(plug, R"("type":"session.plug","session":")" + sid + R"(","premise":"p)" + std::to_string(p) + "\"");
        plugs.add(plug, R"("type":"session.bind","session":")" + sid + R"(","pev":")" + w.vins[p] + "\"");
      }
      if (!ingest(e, plugs.text)) return std::nullopt;
      for (int round = 0; round < rounds; ++round) {
        const sys_seconds reported = plug + minutes(15 * w.readings_per_batch * (round + 1));
        // Built before the clock starts: what a device sends is its own cost.
        std::vector<std::vector<std::uint8_t>> batches;
        lines_builder lines(line_ids);
        for (int p = 0; p < w.premises; ++p) {
          const std::string sid = w.session(night, p), eumd = "m" + std::to_string(p);
          pevledger::interval_batch b{"b" + std::to_string(++batch_id), reported, eumd, sid, {}};
          for (int k = 0; k < w.readings_per_batch; ++k) {
            const int q = round * w.readings_per_batch + k;
            const sys_seconds start = plug + minutes(15 * q);
            const std::int64_t wh = wh_of(p, q);
            if (binary) {
              b.readings.push_back({start, 900, wh, std::nullopt});
            } else {
              lines.add(reported, R"("type":"meter.interval","device":")" + eumd + R"(","session":")" + sid +
                                      R"(","start":")" + time_text(start) + R"(","seconds":900,"wh":)" +
                                      std::to_string(wh));
            }
          }
          if (binary) batches.push_back(pevledger::encode(b));
        }
        const auto started = clock_type::now();
        if (binary) {
          std::vector<std::span<const std::uint8_t>> spans(batches.begin(), batches.end());
          auto outcomes = e.submit_interval_batches(spans);
          if (!outcomes) return std::nullopt;
          for (const auto& o : outcomes.value())
            if (o.what != pevledger::command_outcome::kind::accepted) {
              std::cerr << "batch_path: a batch was not accepted: " << o.refusal.message() << "\n";
              return std::nullopt;
            }
        } else if (!ingest(e, lines.text)) {
          return std::nullopt;
        }
        out.seconds += pevledger::bench::seconds_since(started);
        out.intervals += static_cast<std::uint64_t>(w.premises) * static_cast<std::uint64_t>(w.readings_per_batch);
      }
      lines_builder unplugs(line_ids);
      for (int p = 0; p < w.premises; ++p)
        unplugs.add(plug + 13h, R"("type":"session.unplug","session":")" + w.session(night, p) + "\"");
      if (!ingest(e, unplugs.text)) return std::nullopt;
    }
    return out;
  };
  const auto lines = run(false);
  const auto batches = run(true);
  if (!lines || !batches) {
    std::cerr << "batch_path: the workload did not run\n";
    return 2;
  }

  // The limit, with the engine's default group commit as the batch size.
  const std::uint64_t group_lines = pevledger::engine_options{}.group_lines;
  const std::uint64_t intervals = batches->intervals;
  const auto raw = pevledger::bench::raw_synced_writebatches_seconds(dir + "/raw", intervals, raw_record_bytes, group_lines);
  if (!raw) return 2;
  const double raw_s = *raw;
  std::filesystem::remove_all(dir);

  auto j = pevledger::bench::header("batch_path");
  j["settings"] = {{"premises", w.premises},
                   {"nights", w.nights},
                   {"readings_per_batch", w.readings_per_batch},
                   {"batches_per_call", w.premises},
                   {"group_lines", group_lines},
                   {"sync", true}};
  j["intervals"] = intervals;
  const double batch_rate = static_cast<double>(intervals) / batches->seconds;
  const double lines_rate = static_cast<double>(lines->intervals) / lines->seconds;
  const double raw_rate = static_cast<double>(intervals) / raw_s;
  j["batch_path_s"] = std::round(batches->seconds * 100) / 100;
  j["batch_path_intervals_per_s"] = static_cast<long long>(batch_rate);
  j["json_lines_s"] = std::round(lines->seconds * 100) / 100;
  j["json_lines_intervals_per_s"] = static_cast<long long>(lines_rate);
  j["raw_record_bytes"] = raw_record_bytes;
  j["raw_synced_writebatch_records_per_s"] = static_cast<long long>(raw_rate);
  j["batch_over_json_lines"] = std::round(batch_rate / lines_rate * 100) / 100;
  j["ratio"] = std::round(batch_rate / raw_rate * 1000) / 1000;
  j["goal_ratio_min"] = 1.2;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
