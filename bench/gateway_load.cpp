// bench/gateway_load: the device gateway under load (`pevledger serve`, docs/protocol.md): interval
// batch frames per second and intervals per second through it, each acknowledged once durable, and
// the acknowledgement latency of plug and bind frames sent meanwhile. Prints JSON.
//
// The population (P premises with an EUMD, an account and an enrolled PEV) is set up through the
// engine first; then `pevledger serve` runs as its own process. C connections each own P / C
// premises: every premise's PEV plugs in and binds, then its EUMD sends frames of K quarter-hour
// readings (one interval batch a frame), up to W frames ahead of their acks. Meanwhile one more
// connection plugs and binds new sessions at other premises, one frame at a time, timing each ack:
// the latency a device waiting on a binding sees under the interval load.
//
//   gateway_load [--premises P] [--connections C] [--frames-per-premise F] [--readings K]
//                [--window W] [--probes N] [--dir DIR]

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "bench/bench_info.hpp"
#include "sim/vin.hpp"
#include "gateway/device_client.hpp"
#include "gateway/frame.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"

namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;
using clock_type = std::chrono::steady_clock;

constexpr std::int64_t first_plug = 1709578800;  // 2024-03-04T19:00:00Z

template <class Make>
bytes frame(const std::string& device, const std::string& id, std::int64_t at, Make make) {
  return pevledger::gateway::encode_frame(pevledger::gateway::build_envelope(device, id, at, make));
}

bytes plug_frame(const std::string& session, const std::string& premise, std::int64_t at) {
  return frame("esci-" + premise, "plug/" + session, at, [&](auto& fbb) {
    return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, session.c_str(), premise.c_str()).Union()};
  });
}
bytes bind_frame(const std::string& session, const std::string& premise, const std::string& vin, std::int64_t at) {
  return frame("esci-" + premise, "bind/" + session, at, [&](auto& fbb) {
    return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, session.c_str(), vin.c_str()).Union()};
  });
}

// A device's connection: frames out, acknowledgements back in order; anything else ends the run.
class connection {
 public:
  explicit connection(std::uint16_t port)
      : client_(pevledger::gateway::device_client::connect("127.0.0.1", port, std::chrono::seconds(60)).value()) {}
  void send(const bytes& b) {
    if (!client_.send(b).is_ok()) throw std::runtime_error("send failed");
  }
  p::Outcome ack() {
    const auto env = client_.receive();
    if (!env) throw std::runtime_error("no frame from the gateway");
    const auto* a = flatbuffers::GetRoot<p::Envelope>(env->data())->message_as_Ack();
    if (a == nullptr) throw std::runtime_error("not an ack");
    if (a->outcome() == p::Outcome::refused)
      throw std::runtime_error("refused: " + a->id()->str() + " " + (a->message() ? a->message()->str() : ""));
    return a->outcome();
  }

 private:
  pevledger::gateway::device_client client_;
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  int premises = 2000, connections = 8, frames_per_premise = 8, readings = 48, window = 16, probes = 200;
  std::string dir = "/tmp/pevledger-bench-gateway";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int v = std::stoi(argv[i + 1]);
    if (flag == "--premises") premises = v;
    else if (flag == "--connections") connections = v;
    else if (flag == "--frames-per-premise") frames_per_premise = v;
    else if (flag == "--readings") readings = v;
    else if (flag == "--window") window = v;
    else if (flag == "--probes") probes = v;
    else if (flag == "--dir") dir = argv[i + 1];
  }
  if (premises < connections || connections < 1 || readings < 1 || readings > 4096 || window < 1) {
    std::cerr << "gateway_load: needs premises >= connections >= 1, 1 to 4096 readings, a window of 1 or more\n";
    return 2;
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/db";
  const int probe_premises = probes;  // one premise per probe session, apart from the loaded ones
  std::mt19937_64 rng(9);
  std::vector<std::string> vins;
  {
    std::string text;
    std::uint64_t id = 0;
    auto line = [&](const std::string& fields) {
      text += R"({"id":"s)" + std::to_string(++id) + R"(","at":"2024-03-01T00:00:00Z",)" + fields + "}\n";
    };
    line(R"("type":"utility.register","utility":"u","timezone":"UTC")");
    line(R"("type":"tariff.publish","utility":"u","tariff":"res","kind":"flat","price":200000)");
    line(R"("type":"tariff.publish","utility":"u","tariff":"ev","kind":"flat","price":120000)");
    for (int i = 0; i < premises + probe_premises; ++i) {
      const std::string n = std::to_string(i);
      vins.push_back(pevledger::bench::random_vin(rng));
      line(R"("type":"account.open","utility":"u","account":"a)" + n + R"(","customer":"c")");
      line(R"("type":"premise.register","utility":"u","premise":"p)" + n + R"(","account":"a)" + n +
           R"(","default_tariff":"res")");
      line(R"("type":"device.commission","premise":"p)" + n + R"(","device":"m)" + n + R"(","kind":"eumd")");
      line(R"("type":"pev.enroll","account":"a)" + n + R"(","pev":")" + vins.back() +
           R"(","tariff":"ev","home_premise":"p)" + n + "\"");
    }
    auto engine = pevledger::engine::open(db);
    if (!engine) return 2;
    std::istringstream in(text);
    auto s = engine.value()->ingest(in, {});
    if (!s || s->refused != 0) return 2;
  }

  // The server, as its own process.
  int out[2];
  if (::pipe(out) != 0) return 2;
  const std::string bin = std::filesystem::path(argv[0]).parent_path().parent_path().string() + "/cli/pevledger";
  const pid_t server = ::fork();
  if (server == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::execl(bin.c_str(), bin.c_str(), "serve", "--db", db.c_str(), "--listen", "127.0.0.1:0", nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* server_out = ::fdopen(out[0], "r");
  char first[256] = {0};
  if (::fgets(first, sizeof first, server_out) == nullptr) return 2;
  const auto port = static_cast<std::uint16_t>(std::stoi(std::string(first).substr(std::string(first).rfind(':') + 1)));

  std::atomic<std::uint64_t> frames_done{0};
  std::vector<std::vector<double>> ack_ms(static_cast<std::size_t>(connections));
  std::atomic<bool> failed{false};
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  double bulk_s = 0;
  auto load = [&](int c) {
    try {
      connection conn(port);
      // Every owned premise's PEV plugs in and binds first (not timed).
      std::vector<int> owned;
      for (int i = c; i < premises; i += connections) owned.push_back(i);
      for (int i : owned) {
        const std::string sid = "s" + std::to_string(i), n = std::to_string(i);
        conn.send(plug_frame(sid, "p" + n, first_plug));
        conn.send(bind_frame(sid, "p" + n, vins[static_cast<std::size_t>(i)], first_plug));
      }
      for (std::size_t k = 0; k < 2 * owned.size(); ++k) (void)conn.ack();
      // Frames built before the clock starts: what a device sends is its own cost.
      std::vector<bytes> frames;
      for (int f = 0; f < frames_per_premise; ++f)
        for (int i : owned) {
          const std::string n = std::to_string(i);
          pevledger::interval_batch b{"b" + n + "/" + std::to_string(f),
                                      pevledger::timestamp(std::chrono::seconds(first_plug)), "m" + n, "s" + n, {}};
          for (int r = 0; r < readings; ++r) {
            const std::int64_t start = first_plug + 900LL * (static_cast<std::int64_t>(f) * readings + r);
            b.readings.push_back({pevledger::timestamp(std::chrono::seconds(start)), 900, 250 + (i + r) % 500, {}});
          }
          const bytes batch = pevledger::encode(b);
          frames.push_back(frame("m" + n, b.id, first_plug, [&](auto& fbb) {
            fbb.ForceVectorAlignment(batch.size(), 1, 8);
            return std::pair{p::Message::Intervals, p::CreateIntervals(fbb, fbb.CreateVector(batch)).Union()};
          }));
        }
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      std::deque<clock_type::time_point> sent;
      std::size_t next = 0;
      while (next < frames.size() || !sent.empty()) {
        while (next < frames.size() && sent.size() < static_cast<std::size_t>(window)) {
          conn.send(frames[next++]);
          sent.push_back(clock_type::now());
        }
        (void)conn.ack();
        ack_ms[static_cast<std::size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(clock_type::now() - sent.front()).count());
        sent.pop_front();
        frames_done.fetch_add(1);
      }
    } catch (const std::exception& e) {
      std::cerr << "gateway_load: connection " << c << ": " << e.what() << "\n";
      failed = true;
    }
  };
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) threads.emplace_back(load, c);
  while (ready.load() < connections && !failed.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::vector<double> plug_ms, bind_ms;
  const auto t0 = clock_type::now();
  go = true;
  try {
    connection probe(port);
    for (int k = 0; k < probes && frames_done.load() < static_cast<std::uint64_t>(premises) * frames_per_premise; ++k) {
      const int i = premises + k;
      const std::string sid = "probe" + std::to_string(k), n = std::to_string(i);
      auto timed = [&](const bytes& f, std::vector<double>& into) {
        const auto started = clock_type::now();
        probe.send(f);
        (void)probe.ack();
        into.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - started).count());
      };
      timed(plug_frame(sid, "p" + n, first_plug), plug_ms);
      timed(bind_frame(sid, "p" + n, vins[static_cast<std::size_t>(i)], first_plug), bind_ms);
    }
  } catch (const std::exception& e) {
    std::cerr << "gateway_load: probe: " << e.what() << "\n";
    failed = true;
  }
  for (auto& t : threads) t.join();
  bulk_s = pevledger::bench::seconds_since(t0);
  ::kill(server, SIGTERM);
  int status = 0;
  ::waitpid(server, &status, 0);
  char summary[1024] = {0};
  if (::fgets(summary, sizeof summary, server_out) == nullptr) summary[0] = 0;
  ::fclose(server_out);
  std::filesystem::remove_all(dir);
  if (failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 2;

  std::vector<double> all_acks;
  for (const auto& v : ack_ms) all_acks.insert(all_acks.end(), v.begin(), v.end());
  const std::uint64_t frames = frames_done.load();
  const std::uint64_t intervals = frames * static_cast<std::uint64_t>(readings);
  auto j = pevledger::bench::header("gateway_load");
  j["settings"] = {{"premises", premises},       {"connections", connections}, {"frames_per_premise", frames_per_premise},
                   {"readings_per_frame", readings}, {"window", window},        {"probes", probes}};
  j["command"] = "build/bench/gateway_load --premises " + std::to_string(premises) + " --connections " +
                 std::to_string(connections) + " --frames-per-premise " + std::to_string(frames_per_premise) +
                 " --readings " + std::to_string(readings) + " --window " + std::to_string(window);
  j["frames"] = frames;
  j["intervals"] = intervals;
  j["seconds"] = std::round(bulk_s * 100) / 100;
  j["frames_per_s"] = static_cast<long long>(static_cast<double>(frames) / bulk_s);
  j["intervals_per_s"] = static_cast<long long>(static_cast<double>(intervals) / bulk_s);
  j["interval_frame_ack_ms"] = {{"p50", percentile(all_acks, 0.5)}, {"p99", percentile(all_acks, 0.99)}};
  j["plug_ack_ms"] = {{"count", plug_ms.size()}, {"p50", percentile(plug_ms, 0.5)}, {"p99", percentile(plug_ms, 0.99)}};
  j["bind_ack_ms"] = {{"count", bind_ms.size()}, {"p50", percentile(bind_ms, 0.5)}, {"p99", percentile(bind_ms, 0.99)}};
  j["server_summary"] = nlohmann::ordered_json::parse(summary, nullptr, false);
  j["goal_intervals_per_s_min"] = 1'000'000;
  j["goal_plug_bind_ack_p99_ms_max"] = 5;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
