// `pevledger serve` (gateway/server.hpp) as a device sees it, over real TCP connections: frames
// acknowledged once durable and in order, resends acknowledged as duplicates and billed once, a
// connection dropped before its ack changing nothing, frames that cannot be read answered with an
// Error frame and a close, and SIGTERM ending the server cleanly with every acknowledged frame in
// the log.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "gateway/frame.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"
#include "tests/test_support.hpp"

namespace pevledger::gateway {
namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;
using json = nlohmann::json;

constexpr std::int64_t march_4_16h = 1709568000;  // 2024-03-04T16:00:00Z

const char* const setup_lines =
    R"({"type":"utility.register","id":"u1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"}
{"type":"tariff.publish","id":"u2","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"res","kind":"flat","price":200000}
{"type":"tariff.publish","id":"u3","at":"2024-03-01T00:00:00Z","utility":"u","tariff":"ev","kind":"flat","price":120000}
{"type":"account.open","id":"u4","at":"2024-03-01T00:00:00Z","utility":"u","account":"a1","customer":"Ada"}
{"type":"premise.register","id":"u5","at":"2024-03-01T00:00:00Z","utility":"u","premise":"p1","account":"a1","default_tariff":"res"}
{"type":"device.commission","id":"u6","at":"2024-03-01T00:00:00Z","premise":"p1","device":"m1","kind":"eumd"}
{"type":"pev.enroll","id":"u7","at":"2024-03-01T00:00:00Z","account":"a1","pev":"1HGCM82633A004352","tariff":"ev","home_premise":"p1"}
)";

// The same session as command lines, for the engine that checks the served one.
const char* const session_lines =
    R"({"type":"session.plug","id":"f1","at":"2024-03-04T16:00:00Z","session":"s1","premise":"p1"}
{"type":"session.bind","id":"f2","at":"2024-03-04T16:00:00Z","session":"s1","pev":"1HGCM82633A004352"}
{"type":"meter.interval","id":"x1","at":"2024-03-04T17:00:00Z","device":"m1","session":"s1","start":"2024-03-04T16:00:00Z","seconds":900,"wh":900}
{"type":"meter.interval","id":"x2","at":"2024-03-04T17:00:00Z","device":"m1","session":"s1","start":"2024-03-04T16:15:00Z","seconds":900,"wh":1000}
{"type":"session.unplug","id":"f3","at":"2024-03-04T18:00:00Z","session":"s1"}
)";

template <class Make>
bytes frame(const std::string& device, const std::optional<std::string>& id, std::int64_t at, Make make,
            std::optional<bytes> key = std::nullopt) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto [type, message] = make(fbb);
  const auto d = fbb.CreateString(device);
  flatbuffers::Offset<flatbuffers::String> i;
  if (id) i = fbb.CreateString(*id);
  fbb.Finish(p::CreateEnvelope(fbb, protocol_version, d, i, at, type, message));
  const std::span<const std::uint8_t> envelope(fbb.GetBufferPointer(), fbb.GetSize());
  if (key) return encode_frame(envelope, std::span<const std::uint8_t>(*key));
  return encode_frame(envelope);
}

bytes plug_frame() {
  return frame("esci-1", "f1", march_4_16h, [](auto& fbb) {
    return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, "s1", "p1").Union()};
  });
}
bytes bind_frame() {
  return frame("esci-1", "f2", march_4_16h, [](auto& fbb) {
    return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, "s1", "1HGCM82633A004352").Union()};
  });
}
bytes intervals_frame() {
  auto t = [](int minutes) { return timestamp(std::chrono::seconds(march_4_16h + 60 * minutes)); };
  const bytes batch = encode(interval_batch{"m1/b1", t(60), "m1", "s1", {{t(0), 900, 900, {}}, {t(15), 900, 1000, {}}}});
  return frame("m1", "m1/b1", march_4_16h + 3600, [&](auto& fbb) {
    fbb.ForceVectorAlignment(batch.size(), 1, 8);
    return std::pair{p::Message::Intervals, p::CreateIntervals(fbb, fbb.CreateVector(batch)).Union()};
  });
}
bytes unplug_frame() {
  return frame("esci-1", "f3", march_4_16h + 7200, [](auto& fbb) {
    return std::pair{p::Message::Unplug, p::CreateUnplugDirect(fbb, "s1").Union()};
  });
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

// A device's connection: frames out, the gateway's frames back.
class device {
 public:
  explicit device(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect");
    timeval five{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
  }
  ~device() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void send(const bytes& b) { ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size())); }
  // The next gateway frame's envelope bytes, or nothing at the connection's end (or after 5 s).
  std::optional<bytes> receive() {
    std::optional<frame_error> error;
    for (;;) {
      if (auto f = splitter_.next(error)) {
        const auto opened = open_frame(*f, [](std::string_view) { return std::optional<bytes>(); }, error);
        if (!opened) return std::nullopt;
        return bytes(opened->envelope_bytes.begin(), opened->envelope_bytes.end());
      }
      std::uint8_t chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      (void)splitter_.feed(std::span(chunk, static_cast<std::size_t>(n)));
    }
  }
  // The next ack as "ID OUTCOME[ CODE]".
  std::string ack() {
    const auto env = receive();
    if (!env) return "(none)";
    const auto& e = *flatbuffers::GetRoot<p::Envelope>(env->data());
    if (const auto* a = e.message_as_Ack())
      return a->id()->str() + " " + p::EnumNameOutcome(a->outcome()) +
             (a->code() != nullptr && a->code()->size() > 0 ? " " + a->code()->str() : "");
    if (const auto* x = e.message_as_Error()) return "error " + x->code()->str();
    return "(other)";
  }

 private:
  int fd_ = -1;
  frame_splitter splitter_;
};

TEST(serve, devices_are_acknowledged_once_durable_and_billed_once) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  ASSERT_EQ(testing::run_pevledger("ingest --db " + db + " -", setup_lines).exit_code, 0);
  served server(db);

  {
    // A connection dropped before its ack: the bind may or may not be in; its resend decides.
    device early(server.port());
    early.send(plug_frame());
    EXPECT_EQ(early.ack(), "f1 accepted");
    early.send(bind_frame());
    early.close();
  }
  device esci(server.port());
  bytes everything;
  for (const bytes& f : {bind_frame(), intervals_frame(), intervals_frame(), unplug_frame(), unplug_frame()})
    everything.insert(everything.end(), f.begin(), f.end());
  esci.send(everything);  // many frames in one write, as a device that resends after a reconnect
  const std::string bind_ack = esci.ack();
  EXPECT_TRUE(bind_ack == "f2 accepted" || bind_ack == "f2 duplicate") << bind_ack;
  EXPECT_EQ(esci.ack(), "m1/b1 accepted");
  EXPECT_EQ(esci.ack(), "m1/b1 duplicate");
  EXPECT_EQ(esci.ack(), "f3 accepted");
  EXPECT_EQ(esci.ack(), "f3 duplicate");
  // A refusal is an ack with SPEC's code, and the connection stays open.
  esci.send(frame("esci-1", "f4", march_4_16h, [](auto& fbb) {
    return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, "s2", "nowhere").Union()};
  }));
  EXPECT_EQ(esci.ack(), "f4 refused unknown_premise");

  // Frames that cannot be read: an Error frame, then the connection closes.
  auto error_of = [&](const bytes& b) {
    device d(server.port());
    d.send(b);
    const std::string first = d.ack();
    return first + (d.receive() ? " (still open)" : "");
  };
  EXPECT_EQ(error_of({0xff, 0xff, 0xff, 0x7f}), "error oversize_frame");
  EXPECT_EQ(error_of({8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}), "error malformed_frame");
  EXPECT_EQ(error_of(frame("esci-1", "f5", march_4_16h,
                           [](auto& fbb) { return std::pair{p::Message::Unplug, p::CreateUnplugDirect(fbb, "s1").Union()}; },
                           bytes(32, 1))),
            "error unexpected_mac");
  {
    device cut(server.port());  // closes three bytes short of a frame's end
    const bytes whole = plug_frame();
    cut.send(bytes(whole.begin(), whole.end() - 3));
  }

  const auto [code, summary] = server.stop();
  EXPECT_EQ(code, 0);
  ASSERT_TRUE(summary.is_object());
  EXPECT_EQ(summary["accepted"].get<int>() + summary["duplicates"].get<int>(), 7);
  EXPECT_EQ(summary["refused"], 1);
  EXPECT_GE(summary["frame_errors"].get<int>(), 3);

  // What was acknowledged is in the log, once: the same session as its command lines.
  const std::string lines_db = dir.file("lines");
  ASSERT_EQ(testing::run_pevledger("ingest --db " + lines_db + " -", std::string(setup_lines) + session_lines).exit_code, 0);
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
