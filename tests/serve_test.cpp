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
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gateway/device_client.hpp"
#include "gateway/frame.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"
#include "tests/gateway_scenario.hpp"
#include "tests/served.hpp"
#include "tests/test_support.hpp"

namespace pevledger::gateway {
namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;
using json = nlohmann::json;
using testing::served;

using scenario::plugged_at;

bytes frame_of(const std::string& device, const std::string& id, std::int64_t at,
               std::function<std::pair<p::Message, flatbuffers::Offset<void>>(flatbuffers::FlatBufferBuilder&)> make,
               std::optional<bytes> key = std::nullopt) {
  const bytes envelope = build_envelope(device, id, at, make);
  if (key) return encode_frame(envelope, std::span<const std::uint8_t>(*key));
  return encode_frame(envelope);
}

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
    if (const auto* a = e.message_as_Ack()) {
      decided_ = a->decided();
      return a->id()->str() + " " + p::EnumNameOutcome(a->outcome()) +
             (a->code() != nullptr && a->code()->size() > 0 ? " " + a->code()->str() : "");
    }
    if (const auto* x = e.message_as_Error()) return "error " + x->code()->str();
    if (const auto* t = e.message_as_SessionTimedOut()) {
      decided_ = t->decided();
      return "timed out " + t->session()->str() + " " + t->id()->str() + " at " + std::to_string(t->at());
    }
    if (const auto* k = e.message_as_SetupDone()) {
      keys_[e.device()->str()] = {k->key_id(), bytes(k->key()->begin(), k->key()->end())};
      return "setup done " + e.device()->str() + " " + k->pev()->str();
    }
    if (const auto* c = e.message_as_EumdConfigure())
      return "configure " + c->eumd()->str() + " " + std::to_string(c->interval_s());
    if (const auto* g = e.message_as_EnergyGrant())
      return "grant " + g->session()->str() + " " + std::to_string(g->wh()) + " Wh from " + std::to_string(g->start()) +
             " to " + std::to_string(g->depart()) + " (" + std::to_string(g->window_s()) + " s) price " +
             (g->price_micro_per_kwh() ? std::to_string(*g->price_micro_per_kwh()) : std::string("none"));
    return "(other)";
  }
  // The last ack's place in the gateway's order of decision.
  [[nodiscard]] std::uint64_t decided() const { return decided_; }
  // The keys SetupDone frames brought, by device: their number and their bytes.
  [[nodiscard]] const std::map<std::string, std::pair<std::uint32_t, bytes>>& keys() const { return keys_; }

 private:
  device_client client_;
  std::uint64_t decided_ = 0;
  std::map<std::string, std::pair<std::uint32_t, bytes>> keys_;
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

// The back office signs command lines with the operator key; its frames are decided in order with
// the devices', and each ack says where.
TEST(serve, the_back_office_sends_command_lines_signed_with_its_key) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  const std::string key_file = dir.file("operator.key");
  const bytes key(32, 0x5a);
  std::string hex;  // the file holds the key in hex
  for (int i = 0; i < 32; ++i) hex += "5a";
  testing::write_file(key_file, hex + "\n");
  testing::write_file(dir.file("short.key"), "5a5a\n");
  const auto refused = testing::run_pevledger("serve --db " + db + " --listen 127.0.0.1:0 --operator-key " + dir.file("short.key"));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("hex digits"), std::string::npos) << refused.err;

  served server(db, {"--operator-key", key_file});
  auto line_frame = [&](const std::string& device, const std::string& id, const std::string& line,
                        std::optional<bytes> signed_with) {
    return frame_of(device, id, plugged_at, [&](flatbuffers::FlatBufferBuilder& fbb) {
      return std::pair{p::Message::OperatorCommand, p::CreateOperatorCommandDirect(fbb, line.c_str()).Union()};
    }, signed_with);
  };
  auto error_of = [&](const bytes& b) {
    device d(server.port());
    d.send(b);
    return d.ack();
  };
  const std::string first_line = R"({"type":"utility.register","id":"u1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})";
  EXPECT_EQ(error_of(line_frame("back-office", "u1", first_line, std::nullopt)), "error missing_mac");
  EXPECT_EQ(error_of(line_frame("back-office", "u1", first_line, bytes(32, 0x5b))), "error bad_mac");
  EXPECT_EQ(error_of(line_frame("esci-1", "u1", first_line, std::nullopt)), "error unexpected_message");
  EXPECT_EQ(error_of(frame_of("back-office", "f1", plugged_at, [](auto& fbb) {
              return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, "s1", "p1").Union()};
            }, key)),
            "error unexpected_message");

  // The set-up lines, one signed frame each, in one write; then a line that is not one line.
  device office(server.port());
  std::istringstream setup(scenario::setup_lines);
  bytes all;
  std::vector<std::string> ids;
  for (std::string line; std::getline(setup, line);) {
    ids.push_back(json::parse(line)["id"].get<std::string>());
    const bytes f = line_frame("back-office", ids.back(), line, key);
    all.insert(all.end(), f.begin(), f.end());
  }
  office.send(all);
  std::uint64_t last = 0;
  for (const std::string& id : ids) {
    EXPECT_EQ(office.ack(), id + " accepted");
    EXPECT_GT(office.decided(), last);
    last = office.decided();
  }
  office.send(line_frame("back-office", "u9", first_line + "\n" + first_line, key));
  EXPECT_EQ(office.ack(), "u9 refused invalid_json");
  office.send(line_frame("back-office", "u1", first_line, key));
  EXPECT_EQ(office.ack(), "u1 duplicate");

  // The devices' session on the premise the back office set up, decided after it.
  device esci(server.port());
  for (const bytes& f : scenario::session_frames()) {
    esci.send(f);
    EXPECT_NE(esci.ack().find(" accepted"), std::string::npos);
    EXPECT_GT(esci.decided(), last);
    last = esci.decided();
  }
  const auto [code, summary] = server.stop();
  EXPECT_EQ(code, 0);
  const std::string lines_db = dir.file("lines");
  ASSERT_EQ(testing::run_pevledger("ingest --db " + lines_db + " -",
                                   std::string(scenario::setup_lines) + scenario::session_lines)
                .exit_code,
            0);
  const std::string bill = "bill --format json --account a1 --period 2024-03 --db ";
  EXPECT_EQ(testing::run_pevledger(bill + db).out, testing::run_pevledger(bill + lines_db).out);
}

// The back office's key, written as the file `serve --operator-key` reads.
bytes office_key(const testing::temp_dir& dir, const std::string& file) {
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "5a";
  testing::write_file(dir.file(file), hex + "\n");
  return bytes(32, 0x5a);
}

bytes signed_line(const std::string& id, const std::string& line, const bytes& key) {
  return frame_of("back-office", id, plugged_at, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::OperatorCommand, p::CreateOperatorCommandDirect(fbb, line.c_str()).Union()};
  }, key);
}

bytes clock_frame(const std::string& id, std::int64_t at, const bytes& key) {
  return frame_of("back-office", id, at, [](auto& fbb) { return std::pair{p::Message::Clock, p::CreateClock(fbb).Union()}; },
                  key);
}

bytes plug_frame(const std::string& id, std::int64_t at, const std::string& session) {
  return frame_of("esci-1", id, at, [&](auto& fbb) {
    return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, session.c_str(), "p1").Union()};
  });
}

bytes bind_frame(const std::string& id, std::int64_t at, const std::string& session) {
  return frame_of("esci-1", id, at, [&](auto& fbb) {
    return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, session.c_str(), scenario::vin).Union()};
  });
}

// The back office sends the scenario's set-up lines, the utility's with `utility_extra` fields.
void set_up(device& office, const bytes& key, const std::string& utility_extra = "") {
  std::istringstream setup(scenario::setup_lines);
  for (std::string line; std::getline(setup, line);) {
    json j = json::parse(line);
    if (j["type"] == "utility.register" && !utility_extra.empty()) j.update(json::parse(utility_extra));
    office.send(signed_line(j["id"], j.dump(), key));
    EXPECT_EQ(office.ack(), j["id"].get<std::string>() + " accepted");
  }
}

json session_report(const std::string& db, const std::string& session) {
  const auto r = testing::run_pevledger("session --format json --db " + db + " --session " + session);
  return r.exit_code == 0 ? json::parse(r.out) : json();
}

// On the wall clock, a plug-in whose bind never comes is decided when its timeout passes, with no
// later frame at all; a bound one is not.
TEST(serve, the_timer_decides_an_unbound_plug_in_when_its_timeout_passes_with_no_later_frame) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  const bytes key = office_key(dir, "operator.key");
  served server(db, {"--operator-key", dir.file("operator.key")});
  device office(server.port());
  set_up(office, key, R"({"comm_timeout_s":2})");
  office.send(clock_frame("c1", plugged_at, key));
  EXPECT_EQ(office.ack(), "c1 refused invalid_state") << "a wall-clock gateway keeps its own time";

  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  device esci(server.port());
  const auto plugged = std::chrono::steady_clock::now();
  esci.send(plug_frame("f1", now, "s_unbound"));
  EXPECT_EQ(esci.ack(), "f1 accepted");
  esci.send(plug_frame("f2", now, "s_bound"));
  EXPECT_EQ(esci.ack(), "f2 accepted");
  esci.send(bind_frame("f3", now, "s_bound"));
  EXPECT_EQ(esci.ack(), "f3 accepted");

  // Nothing more is sent: the back office hears of the timeout, and the session is decided.
  const std::string notice = office.ack();
  const auto waited = std::chrono::steady_clock::now() - plugged;
  EXPECT_EQ(notice.substr(0, notice.find(" at ")), "timed out s_unbound timeout:s_unbound");
  EXPECT_GE(waited, std::chrono::seconds(2));
  EXPECT_LT(waited, std::chrono::seconds(10));
  const json unbound = session_report(db, "s_unbound");
  EXPECT_EQ(unbound["payer"], "main_meter");
  EXPECT_EQ(unbound["reason"], "bind_timeout");
  EXPECT_EQ(session_report(db, "s_bound")["payer"], "a1");
  const auto [code, summary] = server.stop();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(summary["timeouts"], 1);
}

// On the back office's clock a timeout falls exactly past its deadline, before the Clock's ack; a
// bind that arrives after it changes nothing. An energy request is answered with its grant:
// deferred past load control, up to the departure.
TEST(serve, on_the_back_office_clock_the_timeout_falls_at_its_deadline_and_grants_respect_departure) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  const bytes key = office_key(dir, "operator.key");
  served server(db, {"--operator-key", dir.file("operator.key"), "--clock", "back-office"});
  device office(server.port());
  set_up(office, key);
  // Load control 16:00 to 18:00 on the day of the plug-in.
  office.send(signed_line("d1", R"({"type":"dlc.declare","id":"d1","at":"2024-03-04T12:00:00Z","utility":"u",)"
                                R"("start":"2024-03-04T16:00:00Z","end":"2024-03-04T18:00:00Z"})", key));
  EXPECT_EQ(office.ack(), "d1 accepted");

  device esci(server.port());
  esci.send(plug_frame("f1", plugged_at, "s1"));
  EXPECT_EQ(esci.ack(), "f1 accepted");
  auto request = [&](const std::string& id, std::int64_t depart) {
    return frame_of("esci-1", id, plugged_at + 10, [&](auto& fbb) {
      return std::pair{p::Message::EnergyRequest, p::CreateEnergyRequestDirect(fbb, "s1", 12000, depart).Union()};
    });
  };
  const std::int64_t load_control_end = plugged_at + 2 * 3600;
  // Departing at 17:00, inside the load control: no time to charge before departure.
  esci.send(request("f2", plugged_at + 3600));
  EXPECT_EQ(esci.ack(), "f2 accepted");
  EXPECT_EQ(esci.ack(), "grant s1 12000 Wh from " + std::to_string(load_control_end) + " to " +
                            std::to_string(plugged_at + 3600) + " (0 s) price none");
  // Departing at 20:00: two hours after the load control.
  esci.send(request("f3", plugged_at + 4 * 3600));
  EXPECT_EQ(esci.ack(), "f3 accepted");
  EXPECT_EQ(esci.ack(), "grant s1 12000 Wh from " + std::to_string(load_control_end) + " to " +
                            std::to_string(plugged_at + 4 * 3600) + " (7200 s) price none");
  // The request sent again (its sender heard no answer): a duplicate, answered with the grant
  // recorded for it, not a new one.
  esci.send(request("f3", plugged_at + 4 * 3600));
  EXPECT_EQ(esci.ack(), "f3 duplicate");
  EXPECT_EQ(esci.ack(), "grant s1 12000 Wh from " + std::to_string(load_control_end) + " to " +
                            std::to_string(plugged_at + 4 * 3600) + " (7200 s) price none");

  // In time means at most 60 s after plug-in: at +60 nothing falls, at +61 the timeout does.
  office.send(clock_frame("c1", plugged_at + 60, key));
  EXPECT_EQ(office.ack(), "c1 accepted");
  const json undecided = session_report(db, "s1");
  ASSERT_TRUE(undecided.is_object());
  EXPECT_TRUE(undecided["payer"].is_null());
  // A time no command may carry is refused, and the clock stays where it was.
  office.send(clock_frame("c0", std::int64_t{1} << 40, key));
  EXPECT_EQ(office.ack(), "c0 refused invalid_field");
  office.send(clock_frame("c2", plugged_at + 61, key));
  EXPECT_EQ(office.ack(), "timed out s1 timeout:s1 at " + std::to_string(plugged_at + 61));
  const std::uint64_t timed_out = office.decided();
  EXPECT_EQ(office.ack(), "c2 accepted");
  EXPECT_GT(office.decided(), timed_out);
  // The bind was sent in business time (+30 s), but arrives after the timer decided the session.
  esci.send(bind_frame("f4", plugged_at + 30, "s1"));
  EXPECT_EQ(esci.ack(), "f4 accepted");
  const json s1 = session_report(db, "s1");
  EXPECT_EQ(s1["payer"], "main_meter");
  EXPECT_EQ(s1["reason"], "bind_timeout");
  ASSERT_EQ(s1["grants"].size(), 2u);
  EXPECT_EQ(s1["grants"][1]["start"], "2024-03-04T18:00:00Z");
  // An energy request from the back office is answered to the back office, priced now.
  office.send(signed_line("r1", R"({"type":"energy.request","id":"r1","at":"2024-03-04T19:00:00Z","session":"s1",)"
                                R"("wh":500,"depart":"2024-03-04T20:00:00Z"})", key));
  EXPECT_EQ(office.ack(), "r1 accepted");
  EXPECT_EQ(office.ack(), "grant s1 500 Wh from " + std::to_string(plugged_at + 3 * 3600) + " to " +
                              std::to_string(plugged_at + 4 * 3600) + " (3600 s) price 200000");
  // A device may not set the clock.
  device other(server.port());
  other.send(frame_of("esci-1", "x", plugged_at, [](auto& fbb) { return std::pair{p::Message::Clock, p::CreateClock(fbb).Union()}; }));
  EXPECT_EQ(other.ack(), "error unexpected_message");
  const auto [code, summary] = server.stop();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(summary["timeouts"], 1);
  EXPECT_EQ(summary["grants"], 4);
}

// Setup issues the ESCI and the EUMD their keys; from then on their frames must be signed, a bad
// MAC is refused and counted, and a gateway started again with the same operator key checks the
// same keys.
TEST(serve, setup_issues_device_keys_and_their_frames_must_be_signed_with_them) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  const bytes key = office_key(dir, "operator.key");
  const std::vector<std::string> args = {"--operator-key", dir.file("operator.key")};
  std::map<std::string, std::pair<std::uint32_t, bytes>> keys;
  auto signed_plug = [&](const std::string& id, const std::string& session, const bytes& with, std::uint32_t key_id) {
    return encode_frame(build_envelope("esci-1", id, plugged_at, [&](auto& fbb) {
                          return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, session.c_str(), "p1").Union()};
                        }),
                        std::span<const std::uint8_t>(with), key_id);
  };
  {
    served server(db, args);
    device office(server.port());
    set_up(office, key);
    office.send(signed_line("e1", R"({"type":"device.commission","id":"e1","at":"2024-03-01T00:00:00Z",)"
                                  R"("premise":"p1","device":"esci-1","kind":"esci"})", key));
    EXPECT_EQ(office.ack(), "e1 accepted");

    device esci(server.port());
    esci.send(frame_of("esci-1", "k1", plugged_at - 3600, [](auto& fbb) {
      return std::pair{p::Message::Setup, p::CreateSetupDirect(fbb, scenario::vin, "p1", "esci-1", "m1").Union()};
    }));
    EXPECT_EQ(esci.ack(), "k1 accepted");
    EXPECT_EQ(esci.ack(), std::string("setup done esci-1 ") + scenario::vin);
    EXPECT_EQ(esci.ack(), std::string("setup done m1 ") + scenario::vin);
    keys = esci.keys();
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys["esci-1"].first, keys["m1"].first);
    EXPECT_EQ(keys["esci-1"].second.size(), 32u);
    EXPECT_NE(keys["esci-1"].second, keys["m1"].second);

    // The setup sent again, unsigned (its sender heard no answer): a duplicate, with the same keys.
    esci.send(frame_of("esci-1", "k1", plugged_at - 3600, [](auto& fbb) {
      return std::pair{p::Message::Setup, p::CreateSetupDirect(fbb, scenario::vin, "p1", "esci-1", "m1").Union()};
    }));
    EXPECT_EQ(esci.ack(), "k1 duplicate");
    EXPECT_EQ(esci.ack(), std::string("setup done esci-1 ") + scenario::vin);
    EXPECT_EQ(esci.ack(), std::string("setup done m1 ") + scenario::vin);
    EXPECT_EQ(esci.keys(), keys);
    // Nobody else gets those keys: not a stranger resending the setup, not the ESCI's name on an
    // unsigned setup of its own, not a setup reusing an id taken by another command.
    auto setup_from = [&](const std::string& sender, const std::string& id, const char* esci_name) {
      return frame_of(sender, id, plugged_at - 3600, [&](auto& fbb) {
        return std::pair{p::Message::Setup, p::CreateSetupDirect(fbb, scenario::vin, "p1", esci_name, "m1").Union()};
      });
    };
    device stranger(server.port());
    stranger.send(setup_from("evil", "k1", "esci-1"));
    EXPECT_EQ(stranger.ack(), "k1 duplicate");
    stranger.send(setup_from("evil", "e1", "victim"));
    EXPECT_EQ(stranger.ack(), "e1 duplicate");  // no SetupDone came before this ack
    EXPECT_TRUE(stranger.keys().empty());
    device impostor(server.port());
    impostor.send(setup_from("esci-1", "k9", "esci-1"));
    EXPECT_EQ(impostor.ack(), "error missing_mac");
    // The setup's id resent under the ESCI's name but naming another EUMD: the keys, if any, would
    // be those the setup issued, never another device's; here the resend is answered as the first.
    device renamer(server.port());
    renamer.send(frame_of("esci-1", "k1", plugged_at - 3600, [](auto& fbb) {
      return std::pair{p::Message::Setup, p::CreateSetupDirect(fbb, scenario::vin, "p1", "esci-1", "m-elsewhere").Union()};
    }));
    EXPECT_EQ(renamer.ack(), "k1 duplicate");
    EXPECT_EQ(renamer.ack(), std::string("setup done esci-1 ") + scenario::vin);
    EXPECT_EQ(renamer.ack(), std::string("setup done m1 ") + scenario::vin);
    EXPECT_EQ(renamer.keys().count("m-elsewhere"), 0u);
    device victim(server.port());  // the forged setup named it: it need not sign
    victim.send(frame_of("victim", "v1", plugged_at, [](auto& fbb) {
      return std::pair{p::Message::Unplug, p::CreateUnplugDirect(fbb, "no-such-session").Union()};
    }));
    EXPECT_EQ(victim.ack(), "v1 refused unknown_session");
    // An EUMD's readings come from that EUMD only.
    {
      const bytes readings = scenario::session_frames()[2];
      const auto* f = flatbuffers::GetRoot<p::Frame>(readings.data() + frame_length_bytes);
      const auto* m1_envelope = flatbuffers::GetRoot<p::Envelope>(f->envelope()->data());
      const auto* batch = m1_envelope->message_as_Intervals()->batch();
      const bytes batch_bytes(batch->begin(), batch->end());
      device nobody(server.port());
      nobody.send(frame_of("nobody", "n1", plugged_at, [&](auto& fbb) {
        fbb.ForceVectorAlignment(batch_bytes.size(), 1, 8);
        return std::pair{p::Message::Intervals, p::CreateIntervals(fbb, fbb.CreateVector(batch_bytes)).Union()};
      }));
      EXPECT_EQ(nobody.ack(), "error unexpected_message");
    }
    // Anything else unsigned now: missing_mac; signed under another key: bad_mac.
    esci.send(plug_frame("f1", plugged_at, "s1"));
    EXPECT_EQ(esci.ack(), "error missing_mac");
    device forger(server.port());
    forger.send(signed_plug("f1", "s1", bytes(32, 0x11), keys["esci-1"].first));
    EXPECT_EQ(forger.ack(), "error bad_mac");
    device esci_again(server.port());
    esci_again.send(signed_plug("f1", "s1", keys["esci-1"].second, keys["esci-1"].first));
    EXPECT_EQ(esci_again.ack(), "f1 accepted");
    // The EUMD signs its batches with its own key.
    bytes batch = scenario::session_frames()[2];
    const auto* frame = flatbuffers::GetRoot<p::Frame>(batch.data() + frame_length_bytes);
    const bytes envelope(frame->envelope()->begin(), frame->envelope()->end());
    esci_again.send(encode_frame(envelope, std::span<const std::uint8_t>(keys["m1"].second), keys["m1"].first));
    EXPECT_EQ(esci_again.ack(), "m1/b1 accepted");
    const auto [code, summary] = server.stop();
    EXPECT_EQ(code, 0);
    EXPECT_EQ(summary["bad_macs"], 1);
  }
  // Started again: the keys are derived from the operator key, so the same ones verify.
  served again(db, args);
  device esci(again.port());
  esci.send(encode_frame(build_envelope("esci-1", "f2", plugged_at + 10, [](auto& fbb) {
                           return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, "s1", scenario::vin).Union()};
                         }),
                         std::span<const std::uint8_t>(keys["esci-1"].second), keys["esci-1"].first));
  EXPECT_EQ(esci.ack(), "f2 accepted");
  esci.send(plug_frame("f3", plugged_at, "s2"));
  EXPECT_EQ(esci.ack(), "error missing_mac");
  EXPECT_EQ(again.stop().first, 0);
}

// A setup whose answer was lost (its connection dropped): the gateway keys the devices all the
// same, and the setup sent again, signed with the older key the ESCI still holds, brings the new
// keys, whether the gateway decided the first copy before or after the drop.
TEST(serve, a_setup_whose_answer_was_lost_brings_its_keys_when_sent_again) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  const bytes key = office_key(dir, "operator.key");
  served server(db, {"--operator-key", dir.file("operator.key")});
  device office(server.port());
  set_up(office, key);
  office.send(signed_line("e1", R"({"type":"device.commission","id":"e1","at":"2024-03-01T00:00:00Z",)"
                                R"("premise":"p1","device":"esci-1","kind":"esci"})", key));
  EXPECT_EQ(office.ack(), "e1 accepted");
  auto setup = [](const std::string& id) {
    return build_envelope("esci-1", id, plugged_at - 3600, [](auto& fbb) {
      return std::pair{p::Message::Setup, p::CreateSetupDirect(fbb, scenario::vin, "p1", "esci-1", "m1").Union()};
    });
  };
  device esci(server.port());
  esci.send(encode_frame(setup("k1")));
  EXPECT_EQ(esci.ack(), "k1 accepted");
  EXPECT_EQ(esci.ack(), std::string("setup done esci-1 ") + scenario::vin);
  EXPECT_EQ(esci.ack(), std::string("setup done m1 ") + scenario::vin);
  auto first = esci.keys();
  const auto signed_setup = [&](const std::string& id) {
    return encode_frame(setup(id), std::span<const std::uint8_t>(first["esci-1"].second), first["esci-1"].first);
  };
  {
    device lost(server.port());
    lost.send(signed_setup("k2"));
    lost.close();
  }
  device again(server.port());
  again.send(signed_setup("k2"));
  const std::string ack = again.ack();
  EXPECT_TRUE(ack == "k2 accepted" || ack == "k2 duplicate") << ack;
  EXPECT_EQ(again.ack(), std::string("setup done esci-1 ") + scenario::vin);
  EXPECT_EQ(again.ack(), std::string("setup done m1 ") + scenario::vin);
  auto second = again.keys();
  ASSERT_EQ(second.size(), 2u);
  EXPECT_NE(second["esci-1"].first, first["esci-1"].first) << "the keys of k2, not of k1";
  // The earlier setup sent again now issues nothing: its keys were superseded.
  const auto signed_anew = [&](const std::string& id) {
    return encode_frame(setup(id), std::span<const std::uint8_t>(second["esci-1"].second), second["esci-1"].first);
  };
  again.send(signed_anew("k1"));
  EXPECT_EQ(again.ack(), "k1 duplicate");
  again.send(signed_anew("k2"));
  EXPECT_EQ(again.ack(), "k2 duplicate");
  EXPECT_EQ(again.ack(), std::string("setup done esci-1 ") + scenario::vin);
  EXPECT_EQ(again.ack(), std::string("setup done m1 ") + scenario::vin);
  EXPECT_EQ(again.keys(), second);
  EXPECT_EQ(server.stop().first, 0);
}

// device.configure from the back office reaches the EUMD as EumdConfigure: at once when it is
// connected, else with the next frame it sends; readings of another length are then flagged.
TEST(serve, a_reconfigured_eumd_hears_its_new_interval_and_other_lengths_are_flagged) {
  testing::temp_dir dir;
  const std::string db = dir.file("served");
  const bytes key = office_key(dir, "operator.key");
  served server(db, {"--operator-key", dir.file("operator.key")});
  device office(server.port());
  set_up(office, key);
  const std::vector<bytes> frames = scenario::session_frames();  // plug, bind, two batches, unplug
  device esci(server.port());
  for (std::size_t i : {0, 1}) {
    esci.send(frames[i]);
    EXPECT_NE(esci.ack().find(" accepted"), std::string::npos);
  }
  auto configure = [&](const std::string& id, int interval_s) {
    office.send(signed_line(id, R"({"type":"device.configure","id":")" + id + R"(","at":"2024-03-04T16:20:00Z",)"
                                    R"("device":"m1","interval_s":)" + std::to_string(interval_s) + "}", key));
    EXPECT_EQ(office.ack(), id + " accepted");
  };
  {
    device eumd(server.port());
    eumd.send(frames[2]);  // readings of 16:00 and 16:15, 900 s each
    EXPECT_EQ(eumd.ack(), "m1/b1 accepted");
    configure("c1", 300);
    EXPECT_EQ(eumd.ack(), "configure m1 300");
  }
  configure("c2", 600);  // the EUMD is not connected: it hears it when it next speaks
  configure("c3", 600);  // no change: nothing to tell
  device eumd(server.port());
  eumd.send(frames[3]);  // the reading of 16:30, still 900 s
  EXPECT_EQ(eumd.ack(), "configure m1 600");
  EXPECT_EQ(eumd.ack(), "m1/b2 accepted");
  const json s1 = session_report(db, "s1");
  ASSERT_EQ(s1["interval_length_flags"].size(), 1u) << s1.dump();
  EXPECT_EQ(s1["interval_length_flags"][0]["interval_start"], "2024-03-04T16:30:00Z");
  EXPECT_EQ(s1["wh"], 3000);
  const auto [code, summary] = server.stop();
  EXPECT_EQ(code, 0);
  EXPECT_EQ(summary["configures"], 2);
}

}  // namespace
}  // namespace pevledger::gateway
