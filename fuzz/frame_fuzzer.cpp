// libFuzzer target: the device gateway's reading of a connection (gateway/frame.hpp and
// gateway/requests.hpp): any bytes, split into frames in chunks whose sizes the input's first byte
// picks, each frame opened (one device, "esci-keyed", has a key) and turned into its request.
//
// Whatever the bytes: no crash, hang or assertion; and the promises the gateway keeps:
//   - a frame handed out is 1 to frame_bytes_max bytes, 8-aligned, and the splitter stops at its
//     first error;
//   - an opened frame's envelope is of this protocol's version; one signed by a key carries the
//     MAC of its envelope under that key, and one from the keyed device is always signed;
//   - a request is a command under the envelope's own id and time, or the batch bytes the frame
//     carried.
// scripts/fuzz.sh builds and runs it (PEVLEDGER_LIBFUZZER=ON).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "fuzz/check.hpp"
#include "gateway/frame.hpp"
#include "gateway/requests.hpp"

namespace {

using namespace pevledger;
using namespace pevledger::gateway;

const std::vector<std::uint8_t>& key() {
  static const std::vector<std::uint8_t> k(32, 0x5a);
  return k;
}

void check_frame(std::span<const std::uint8_t> frame) {
  FUZZ_CHECK(!frame.empty() && frame.size() <= frame_bytes_max);
  FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(frame.data()) % 8 == 0);
  const key_lookup keys = [](std::string_view device, std::optional<std::uint32_t>) {
    return device == "esci-keyed" ? std::optional<std::vector<std::uint8_t>>(key()) : std::nullopt;
  };
  std::optional<frame_error> error;
  const auto opened = open_frame(frame, keys, error);
  if (!opened) {
    FUZZ_CHECK(error.has_value() && to_string(error->code) != "unknown");
    return;
  }
  const protocol::Envelope& e = *opened->envelope;
  FUZZ_CHECK(e.version() == protocol_version);
  FUZZ_CHECK(opened->signed_by_key == (e.device()->string_view() == "esci-keyed"));
  if (opened->signed_by_key) {
    const auto* f = protocol::GetFrame(frame.data());
    const auto expected = mac_of(key(), opened->envelope_bytes);
    FUZZ_CHECK(f->mac() != nullptr && f->mac()->size() == mac_bytes &&
               std::memcmp(f->mac()->data(), expected.data(), mac_bytes) == 0);
  }
  std::optional<frame_error> request_error;
  // The keyed device plays the back office: it alone may send command lines, and only those.
  const bool from_operator = opened->signed_by_key;
  const auto request = request_of(e, from_operator, request_error);
  if (!request) {
    FUZZ_CHECK(request_error && request_error->code == frame_errc::unexpected_message);
    return;
  }
  if (const auto* c = std::get_if<command>(&*request)) {
    FUZZ_CHECK(!from_operator);
    FUZZ_CHECK(e.id() != nullptr && c->id == e.id()->str());
    FUZZ_CHECK(c->at.time_since_epoch().count() == e.at());
  } else if (const auto* line = std::get_if<operator_line>(&*request)) {
    FUZZ_CHECK(from_operator && e.message_type() == protocol::Message::OperatorCommand);
    FUZZ_CHECK(line->line == e.message_as_OperatorCommand()->line()->string_view());
  } else {
    FUZZ_CHECK(!from_operator);
    FUZZ_CHECK(e.message_type() == protocol::Message::Intervals);
    const auto bytes = std::get<interval_batch_bytes>(*request).bytes;
    FUZZ_CHECK(bytes.data() == e.message_as_Intervals()->batch()->data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::span<const std::uint8_t> stream(data + 1, size - 1);
  frame_splitter splitter;
  std::size_t at = 0;
  std::optional<frame_error> error;
  while (at < stream.size() && !error) {
    const std::size_t took = splitter.feed(stream.subspan(at, std::min(chunk, stream.size() - at)));
    at += took;
    while (auto frame = splitter.next(error)) check_frame(*frame);
    if (error) FUZZ_CHECK(error->code == frame_errc::oversize_frame);
    if (took == 0 && !error) FUZZ_CHECK(false && "the splitter took nothing while no frame waited");
  }
  if (!error) {
    const auto closed = splitter.finish();
    FUZZ_CHECK(!closed || closed->code == frame_errc::truncated_frame);
  }
  return 0;
}
