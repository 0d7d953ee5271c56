// `pevledger serve` (gateway/server.hpp) as a device sees it, over real TCP connections: frames
// acknowledged once durable and in order, resends acknowledged as duplicates and billed once, a
// connection dropped before its ack changing nothing, frames that cannot be read answered with an
// Error frame and a close, and SIGTERM ending the server cleanly with every acknowledged frame in
// the log.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gateway/device_client.hpp"
#include "gateway/frame.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"
#include "tests/gateway_scenario.hpp"
#include "tests/test_support.hpp"

namespace pevledger::gateway {
namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;
using json = nlohmann::json;

using scenario::plugged_at;

bytes frame_of(const std::string& device, const std::string& id, std::int64_t at,
               std::function<std::pair<p::Message, flatbuffers::Offset<void>>(flatbuffers::FlatBufferBuilder&)> make,
               std::optional<bytes> key = std::nullopt) {
  const bytes envelope = build_envelope(device, id, at, make);
  if (key) return encode_frame(envelope, std::span<const std::uint8_t>(*key));
  return encode_frame(envelope);
}

// A running `pevledger serve` and the port it listens on.
class served {
 public:
  explicit served(const std::string& db) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::execl(PEVLEDGER_BIN, PEVLEDGER_BIN, "serve", "--db", db.c_str(), "--listen", "127.0.0.1:0", nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = ::fdopen(out[0], "r");
    const std::string first = line();
    port_ = static_cast<std::uint16_t>(std::stoi(json::parse(first)["listening"].get<std::string>().substr(10)));
  }
  ~served() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) ::fclose(out_);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  // SIGTERM, then the exit code and the summary it printed.
  std::pair<int, json> stop() {
    ::kill(pid_, SIGTERM);
    int raw = 0;
    ::waitpid(pid_, &raw, 0);
    pid_ = -1;
    const std::string summary = line();
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, json::parse(summary, nullptr, false)};
  }

 private:
  std::string line() {
    char buffer[4096];
    if (::fgets(buffer, sizeof buffer, out_) == nullptr) return "";
    return buffer;
  }
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::uint16_t port_ = 0;
};

// A device's connection, reading the gateway's frames as "ID OUTCOME[ CODE]" or "error CODE".
class device {
 public:
  explicit device(std::uint16_t port)
      : client_(device_client::connect("127.0.0.1", port, std::chrono::seconds(5)).value()) {}
  void send(const bytes& b) { ASSERT_TRUE(client_.send(b).is_ok()); }
  void close() { client_.close(); }
  [[nodiscard]] bool open_still() { return client_.receive().has_value(); }
  std::string ack() {
    const auto env = client_.receive();
    if (!env) return "(none)";
    const auto& e = *flatbuffers::GetRoot<p::Envelope>(env->data());
    if (const auto* a = e.message_as_Ack())
      return a->id()->str() + " " + p::EnumNameOutcome(a->outcome()) +
             (a->code() != nullptr && a->code()->size() > 0 ? " " + a->code()->str() : "");
    if (const auto* x = e.message_as_Error()) return "error " + x->code()->str();
    return "(other)";
  }

 private:
  device_client client_;
};

TEST(serve, devices_are_acknowledged_once_durable_and_billed_once) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  ASSERT_EQ(testing::run_pevledger("ingest --db " + db + " -", scenario::setup_lines).exit_code, 0);
  served server(db);
  const std::vector<bytes> frames = scenario::session_frames();  // plug, bind, two batches, unplug

  {
    // A connection dropped before its ack: the bind may or may not be in; its resend decides.
    device early(server.port());
    early.send(frames[0]);
    EXPECT_EQ(early.ack(), "f1 accepted");
    early.send(frames[1]);
    early.close();
  }
  device esci(server.port());
  bytes everything;
  for (std::size_t i : {1, 2, 2, 3, 4, 4}) everything.insert(everything.end(), frames[i].begin(), frames[i].end());
  esci.send(everything);  // many frames in one write, as a device that resends after a reconnect
  const std::string bind_ack = esci.ack();
  EXPECT_TRUE(bind_ack == "f2 accepted" || bind_ack == "f2 duplicate") << bind_ack;
  EXPECT_EQ(esci.ack(), "m1/b1 accepted");
  EXPECT_EQ(esci.ack(), "m1/b1 duplicate");
  EXPECT_EQ(esci.ack(), "m1/b2 accepted");
  EXPECT_EQ(esci.ack(), "f3 accepted");
  EXPECT_EQ(esci.ack(), "f3 duplicate");
  // A refusal is an ack with SPEC's code, and the connection stays open.
  esci.send(frame_of("esci-1", "f4", plugged_at, [](auto& fbb) {
    return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, "s2", "nowhere").Union()};
  }));
  EXPECT_EQ(esci.ack(), "f4 refused unknown_premise");

  // Frames that cannot be read: an Error frame, then the connection closes.
  auto error_of = [&](const bytes& b) {
    device d(server.port());
    d.send(b);
    const std::string first = d.ack();
    return first + (d.open_still() ? " (still open)" : "");
  };
  EXPECT_EQ(error_of({0xff, 0xff, 0xff, 0x7f}), "error oversize_frame");
  EXPECT_EQ(error_of({8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}), "error malformed_frame");
  EXPECT_EQ(error_of(frame_of("esci-1", "f5", plugged_at,
                           [](auto& fbb) { return std::pair{p::Message::Unplug, p::CreateUnplugDirect(fbb, "s1").Union()}; },
                           bytes(32, 1))),
            "error unexpected_mac");
  {
    device cut(server.port());  // closes three bytes short of a frame's end
    const bytes& whole = frames[0];
    cut.send(bytes(whole.begin(), whole.end() - 3));
  }

  const auto [code, summary] = server.stop();
  EXPECT_EQ(code, 0);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["accepted"].get<int>() + summary["duplicates"].get<int>(), 8);
  EXPECT_EQ(summary["refused"], 1);
  EXPECT_GE(summary["frame_errors"].get<int>(), 3);

  // What was acknowledged is in the log, once: the same session as its command lines.
  const std::string lines_db = dir.file("lines");
  ASSERT_EQ(testing::run_pevledger("ingest --db " + lines_db + " -",
                                   std::string(scenario::setup_lines) + scenario::session_lines)
                .exit_code,
            0);
  for (const std::string args : {"session --format json --session s1", "bill --format json --account a1 --period 2024-03"}) {
    const auto served_answer = testing::run_pevledger(args + " --db " + db);
    const auto lines_answer = testing::run_pevledger(args + " --db " + lines_db);
    EXPECT_EQ(served_answer.exit_code, 0) << served_answer.err;
    EXPECT_EQ(served_answer.out, lines_answer.out) << args;
  }
  const auto replay = testing::run_pevledger("replay --verify --db " + db);
  EXPECT_EQ(replay.exit_code, 0) << replay.out << replay.err;
}

}  // namespace
}  // namespace pevledger::gateway
