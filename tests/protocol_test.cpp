// The device protocol (docs/protocol.md): frames split from a byte stream however it arrives,
// refused with a stable code when oversize, cut off, malformed, of another version or wrongly
// signed; and each device message becomes the command SPEC section 6 names, so that a session run
// through frames bills as the same session run through command lines, resends included.

#include <gtest/gtest.h>

#include <random>
#include <sstream>

#include "gateway/frame.hpp"
#include "gateway/keys.hpp"
#include "gateway/requests.hpp"
#include "pevledger/engine.hpp"
#include "pevledger/interval_batch.hpp"
#include "tests/gateway_scenario.hpp"
#include "tests/test_support.hpp"

namespace pevledger::gateway {
namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;

constexpr const char* vin = "1HGCM82633A004352";
constexpr std::int64_t march_4_16h = 1709568000;  // 2024-03-04T16:00:00Z

template <class Make>
bytes envelope(const std::string& device, const std::optional<std::string>& id, std::int64_t at, Make make,
               std::uint16_t version = protocol_version) {
  return build_envelope(device, id, at, make, version);
}

auto plug(const std::string& session, const std::string& premise) {
  return [=](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::Plug, p::CreatePlugDirect(fbb, session.c_str(), premise.c_str()).Union()};
  };
}

auto bind(const std::string& session) {
  return [=](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, session.c_str(), vin).Union()};
  };
}

auto intervals(const bytes& batch) {
  return [=](flatbuffers::FlatBufferBuilder& fbb) {
    fbb.ForceVectorAlignment(batch.size(), 1, 8);
    return std::pair{p::Message::Intervals, p::CreateIntervals(fbb, fbb.CreateVector(batch)).Union()};
  };
}

// The frame's bytes without the length in front (what frame_splitter::next gives).
bytes body_of(const bytes& wire) { return {wire.begin() + 4, wire.end()}; }

std::optional<opened_frame> open(const bytes& frame, const key_lookup& keys, std::optional<frame_error>& error) {
  return open_frame(frame, keys, error);
}

const key_lookup no_keys = [](std::string_view, std::optional<std::uint32_t>) { return std::optional<bytes>(); };

TEST(frame_splitter, frames_come_out_whole_however_the_bytes_arrive) {
  std::vector<bytes> sent;
  bytes stream;
  for (int i = 0; i < 20; ++i) {
    sent.push_back(encode_frame(envelope("esci-1", "f" + std::to_string(i), march_4_16h, plug("s" + std::to_string(i), "p1"))));
    stream.insert(stream.end(), sent.back().begin(), sent.back().end());
  }
  std::mt19937 rng(4);
  for (int round = 0; round < 20; ++round) {
    frame_splitter splitter;
    std::vector<bytes> got;
    std::size_t at = 0;
    std::optional<frame_error> error;
    while (at < stream.size()) {
      const std::size_t n = std::min<std::size_t>(stream.size() - at, 1 + rng() % 97);
      at += splitter.feed(std::span(stream).subspan(at, n));
      while (auto f = splitter.next(error)) {
        got.emplace_back(f->begin(), f->end());
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f->data()) % 8, 0u);
      }
      ASSERT_FALSE(error) << error->message;
    }
    EXPECT_FALSE(splitter.finish());
    ASSERT_EQ(got.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(got[i], body_of(sent[i]));
  }
}

TEST(frame_splitter, a_length_out_of_bounds_or_a_close_inside_a_frame_is_an_error) {
  std::optional<frame_error> error;
  frame_splitter oversize;
  const bytes huge = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3};
  EXPECT_EQ(oversize.feed(huge), huge.size());
  EXPECT_FALSE(oversize.next(error));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, frame_errc::oversize_frame);

  error.reset();
  frame_splitter empty;
  (void)empty.feed(bytes{0, 0, 0, 0});
  EXPECT_FALSE(empty.next(error));
  ASSERT_TRUE(error);
  EXPECT_EQ(error->code, frame_errc::oversize_frame);

  error.reset();
  frame_splitter cut;
  const bytes whole = encode_frame(envelope("esci-1", "f1", march_4_16h, plug("s1", "p1")));
  (void)cut.feed(std::span(whole).first(whole.size() - 3));
  EXPECT_FALSE(cut.next(error));
  EXPECT_FALSE(error);
  ASSERT_TRUE(cut.finish());
  EXPECT_EQ(cut.finish()->code, frame_errc::truncated_frame);

  // A splitter takes at most one largest frame: the rest waits for the caller (backpressure).
  frame_splitter bounded;
  const bytes flood(frame_length_bytes + frame_bytes_max + 100, 0);
  EXPECT_EQ(bounded.feed(flood), frame_length_bytes + frame_bytes_max);
}

TEST(open_frame, structure_version_and_mac_are_checked) {
  const bytes key(32, 7), other(32, 8);
  const key_lookup keys = [&](std::string_view device, std::optional<std::uint32_t>) {
    return device == "esci-keyed" ? std::optional<bytes>(key) : std::nullopt;
  };
  std::optional<frame_error> error;
  auto code = [&](const bytes& frame) {
    error.reset();
    const auto opened = open(frame, keys, error);
    return opened ? std::optional<frame_errc>() : std::optional<frame_errc>(error->code);
  };
  const bytes keyless = envelope("esci-1", "f1", march_4_16h, plug("s1", "p1"));
  const bytes keyed = envelope("esci-keyed", "f1", march_4_16h, plug("s1", "p1"));

  EXPECT_EQ(code(body_of(encode_frame(keyless))), std::nullopt);
  EXPECT_EQ(code(body_of(encode_frame(keyed, key))), std::nullopt);
  {
    const bytes frame = body_of(encode_frame(keyed, key));
    std::optional<frame_error> e;
    const auto opened = open(frame, keys, e);
    ASSERT_TRUE(opened);
    EXPECT_TRUE(opened->signed_by_key);
    EXPECT_EQ(opened->envelope->device()->str(), "esci-keyed");
  }
  EXPECT_EQ(code(body_of(encode_frame(keyed, other))), frame_errc::bad_mac);
  EXPECT_EQ(code(body_of(encode_frame(keyed))), frame_errc::missing_mac);
  EXPECT_EQ(code(body_of(encode_frame(keyless, key))), frame_errc::unexpected_mac);
  EXPECT_EQ(code(body_of(encode_frame(envelope("esci-1", "f1", march_4_16h, plug("s1", "p1"), 2)))),
            frame_errc::unsupported_version);
  EXPECT_EQ(code(bytes(64, 0)), frame_errc::malformed_frame);
  // A byte of the signed envelope changed on the way: the MAC no longer matches (or the envelope
  // no longer verifies); never accepted.
  const bytes signed_frame = body_of(encode_frame(keyed, key));
  int refused = 0;
  for (std::size_t i = 0; i < signed_frame.size(); ++i) {
    bytes damaged = signed_frame;
    damaged[i] ^= 0x20;
    const auto c = code(damaged);
    if (!c) continue;
    ++refused;
    EXPECT_TRUE(*c == frame_errc::bad_mac || *c == frame_errc::malformed_frame || *c == frame_errc::missing_mac ||
                       *c == frame_errc::unexpected_mac || *c == frame_errc::unsupported_version)
        << to_string(*c);
  }
  EXPECT_GT(refused, static_cast<int>(signed_frame.size()) / 2);
}

// What each device message asks of the engine, as the command line that spells it.
TEST(request_of, each_device_message_becomes_the_command_spec_names) {
  auto line_of = [](const bytes& env) {
    const auto& e = *flatbuffers::GetRoot<p::Envelope>(env.data());
    std::optional<frame_error> error;
    const auto r = request_of(e, false, error);
    if (!r) return "error " + std::string(to_string(error->code));
    if (const auto* c = std::get_if<command>(&*r)) return to_json_line(*c);
    return std::string("batch");
  };
  auto msg = [](auto create, p::Message type) {
    return [=](flatbuffers::FlatBufferBuilder& fbb) { return std::pair{type, create(fbb).Union()}; };
  };
  const std::int64_t t = march_4_16h;
  EXPECT_EQ(line_of(envelope("e", "a", t, plug("s1", "p1"))),
            R"({"id":"a","at":"2024-03-04T16:00:00Z","type":"session.plug","session":"s1","premise":"p1"})");
  EXPECT_EQ(line_of(envelope("e", "b", t, bind("s1"))),
            R"({"id":"b","at":"2024-03-04T16:00:00Z","type":"session.bind","session":"s1","pev":"1HGCM82633A004352"})");
  EXPECT_EQ(line_of(envelope("e", "c", t, msg([](auto& f) { return p::CreateSetupDirect(f, vin, "p1", "e", "m"); },
                                              p::Message::Setup))),
            R"({"id":"c","at":"2024-03-04T16:00:00Z","type":"pev.setup","pev":"1HGCM82633A004352","premise":"p1","esci":"e","eumd":"m"})");
  EXPECT_EQ(line_of(envelope("e", "d", t, msg([](auto& f) { return p::CreateEumdDetectedDirect(f, "p1", "m"); },
                                              p::Message::EumdDetected))),
            R"({"id":"d","at":"2024-03-04T16:00:00Z","type":"device.commission","premise":"p1","device":"m","kind":"eumd"})");
  EXPECT_EQ(line_of(envelope("m", "e", t, msg([](auto& f) { return p::CreateEumdConfiguredDirect(f, "m", 300); },
                                              p::Message::EumdConfigured))),
            R"({"id":"e","at":"2024-03-04T16:00:00Z","type":"device.configure","device":"m","interval_s":300})");
  EXPECT_EQ(line_of(envelope("e", "f", t, msg([&](auto& f) { return p::CreateEnergyRequestDirect(f, "s1", 20000, t + 3600 * 14); },
                                              p::Message::EnergyRequest))),
            R"({"id":"f","at":"2024-03-04T16:00:00Z","type":"energy.request","session":"s1","wh":20000,"depart":"2024-03-05T06:00:00Z"})");
  EXPECT_EQ(line_of(envelope("e", "g", t, msg([](auto& f) { return p::CreatePevTotalDirect(f, "s1", 5000); },
                                              p::Message::PevTotal))),
            R"({"id":"g","at":"2024-03-04T16:00:00Z","type":"pev.total","session":"s1","wh":5000})");
  EXPECT_EQ(line_of(envelope("e", "h", t, msg([](auto& f) { return p::CreateUnplugDirect(f, "s1"); }, p::Message::Unplug))),
            R"({"id":"h","at":"2024-03-04T16:00:00Z","type":"session.unplug","session":"s1"})");
  EXPECT_EQ(line_of(envelope("st", "i", t, msg([](auto& f) { return p::CreateCardSessionDirect(f, "s2", "st", "card-9", false); },
                                               p::Message::CardSession))),
            R"({"id":"i","at":"2024-03-04T16:00:00Z","type":"session.start","session":"s2","premise":"st","card":"card-9","online":false})");
  EXPECT_EQ(line_of(envelope("m", std::nullopt, t, intervals(encode(interval_batch{"b", timestamp(std::chrono::seconds(t)), "m", "s1", {}})))),
            "batch");
  // What only the gateway sends, and a device message without its id.
  EXPECT_EQ(line_of(envelope("e", "j", t, msg([](auto& f) { return p::CreateAckDirect(f, "a"); }, p::Message::Ack))),
            "error unexpected_message");
  EXPECT_EQ(line_of(envelope("e", std::nullopt, t, plug("s1", "p1"))), "error unexpected_message");
}

// The back office sends command lines, and only those; devices never do.
TEST(request_of, only_the_back_office_sends_command_lines) {
  auto request = [](const bytes& env, bool from_operator) {
    const auto& e = *flatbuffers::GetRoot<p::Envelope>(env.data());
    std::optional<frame_error> error;
    const auto r = request_of(e, from_operator, error);
    if (!r) return "error " + std::string(to_string(error->code));
    if (const auto* line = std::get_if<operator_line>(&*r)) return "line " + std::string(line->line);
    return std::string("device request");
  };
  const std::string topup = R"({"type":"account.topup","id":"t1","at":"2024-03-04T16:00:00Z","account":"a1","amount":5})";
  const bytes line_envelope = envelope("back-office", "t1", march_4_16h, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::OperatorCommand, p::CreateOperatorCommandDirect(fbb, topup.c_str()).Union()};
  });
  EXPECT_EQ(request(line_envelope, true), "line " + topup);
  EXPECT_EQ(request(line_envelope, false), "error unexpected_message");
  EXPECT_EQ(request(envelope("back-office", "p", march_4_16h, plug("s1", "p1")), true), "error unexpected_message");
  EXPECT_EQ(request(envelope("e", "p", march_4_16h, plug("s1", "p1")), false), "device request");
}

TEST(key_from_hex, a_key_is_16_to_64_bytes_of_hex) {
  const auto key = key_from_hex("  000102030405060708090a0b0c0d0e0F\n");
  ASSERT_TRUE(key);
  EXPECT_EQ(key->size(), 16u);
  EXPECT_EQ(key->back(), 0x0f);
  for (const std::string& bad : std::vector<std::string>{"", "00", std::string(30, 'a'), std::string(33, 'a'), std::string(130, 'a'),
                                std::string(31, 'a') + "g", "00112233445566778899aabbccddeeff 00"})
    EXPECT_EQ(key_from_hex(bad).error().code(), errc::invalid_field) << bad;
  EXPECT_EQ(read_key_file("/nonexistent/key").error().code(), errc::io_error);
}

// One residential session through frames (plug, bind, two interval batches, unplug), each frame
// sent twice as a device resends until acknowledged, against the same session as command lines.
// Device keys are derived from the operator key: one per device and key number, none alike, the
// same again for the same inputs (so a restarted gateway checks the same keys), and a resent
// setup gets the same number.
TEST(device_key, a_key_per_device_and_number_derived_from_the_operator_key) {
  const auto secret = device_key_secret(bytes(32, 0x5a));
  EXPECT_EQ(secret.size(), 32u);
  EXPECT_NE(secret, device_key_secret(bytes(32, 0x5b)));
  const auto esci = device_key(secret, "esci-1", 7);
  EXPECT_EQ(esci.size(), 32u);
  EXPECT_EQ(esci, device_key(secret, "esci-1", 7));
  EXPECT_NE(esci, device_key(secret, "esci-2", 7));
  EXPECT_NE(esci, device_key(secret, "esci-1", 8));
  EXPECT_NE(esci, device_key(device_key_secret(bytes(32, 0x5b)), "esci-1", 7));
  EXPECT_EQ(key_id_of_setup("setup-1"), key_id_of_setup("setup-1"));
  EXPECT_NE(key_id_of_setup("setup-1"), key_id_of_setup("setup-2"));
}

TEST(request_of, a_session_through_frames_bills_as_its_command_lines) {
  testing::temp_dir dir;
  auto run_lines = [&](engine& e, const std::string& text) {
    std::istringstream in(text);
    auto s = e.ingest(in, {});
    ASSERT_TRUE(s);
    ASSERT_EQ(s->refused, 0u);
  };
  auto by_lines = engine::open(dir.file("lines"));
  auto by_frames = engine::open(dir.file("frames"));
  ASSERT_TRUE(by_lines && by_frames);
  run_lines(*by_lines.value(), std::string(scenario::setup_lines) + scenario::session_lines);
  run_lines(*by_frames.value(), scenario::setup_lines);
  const std::vector<bytes> frames = scenario::session_frames();
  std::size_t accepted = 0, duplicates = 0;
  for (const bytes& wire : frames) {
    for (int copy = 0; copy < 2; ++copy) {  // the resend of an unacknowledged frame
      frame_splitter splitter;
      ASSERT_EQ(splitter.feed(wire), wire.size());
      std::optional<frame_error> error;
      const auto frame = splitter.next(error);
      ASSERT_TRUE(frame);
      const bytes copy_of_frame(frame->begin(), frame->end());
      const auto opened = open_frame(copy_of_frame, no_keys, error);
      ASSERT_TRUE(opened) << error->message;
      const auto request = request_of(*opened->envelope, false, error);
      ASSERT_TRUE(request);
      command_outcome outcome;
      if (const auto* c = std::get_if<command>(&*request)) {
        auto out = by_frames.value()->submit(std::span(c, 1));
        ASSERT_TRUE(out);
        outcome = out->at(0);
      } else {
        const std::span<const std::uint8_t> batch = std::get<interval_batch_bytes>(*request).bytes;
        auto out = by_frames.value()->submit_interval_batches(std::span(&batch, 1));
        ASSERT_TRUE(out);
        outcome = out->at(0);
      }
      ASSERT_NE(outcome.what, command_outcome::kind::refused) << outcome.refusal.message();
      (outcome.what == command_outcome::kind::accepted ? accepted : duplicates) += 1;
    }
  }
  EXPECT_EQ(accepted, frames.size());
  EXPECT_EQ(duplicates, frames.size());
  EXPECT_EQ(by_frames.value()->session("s1").value(), by_lines.value()->session("s1").value());
  EXPECT_EQ(by_frames.value()->bill("a1", "2024-03").value(), by_lines.value()->bill("a1", "2024-03").value());
  EXPECT_EQ(by_frames.value()->balance("a1").value(), by_lines.value()->balance("a1").value());
}

}  // namespace
}  // namespace pevledger::gateway
