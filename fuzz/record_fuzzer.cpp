// libFuzzer target: the record decoder (storage/record.hpp) and the event printer
// (schema/event_text.hpp), given arbitrary bytes as a record read back from the log.
//
// The log's readers verify a record's structure (the FlatBuffers verifier, its nested body
// included) before they read a field of it, then its hash, and `export` prints the verified body.
// Whatever the bytes, that path must give an error value (corruption, naming the sequence), never
// crash, read out of bounds or reach an assertion. Invariants checked besides:
//   - a record whose structure verifies for the sequence it carries fails for any other sequence,
//     its body's event type equals the envelope's, and its body starts 8-aligned;
//   - verify_record is verify_record_structure then verify_record_hash;
//   - the printer's text of a verified body, when it gives one, is one line of valid JSON.
// scripts/fuzz.sh builds and runs it (PEVLEDGER_LIBFUZZER=ON).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>

#include <flatbuffers/flatbuffers.h>

#include "base/limits.hpp"
#include "fuzz/check.hpp"
#include "schema/event_text.hpp"
#include "schema/json_line.hpp"
#include "storage/record.hpp"

namespace {

using namespace pevledger;

const schema::event_printer& printer() {
  static const std::unique_ptr<schema::event_printer> p = [] {
    auto created = schema::event_printer::create();
    FUZZ_CHECK(created.has_value());
    return std::move(created.value());
  }();
  return *p;
}

// An error of the decoder: corruption, with a message naming the record.
void check_error(const status& s) {
  FUZZ_CHECK(s.code() == errc::corruption);
  FUZZ_CHECK(s.message().rfind("record ", 0) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The log hands its readers records at an 8-aligned address (storage/event_log.cpp copies a
  // misaligned RocksDB value first); a heap copy of exactly `size` bytes keeps AddressSanitizer's
  // bounds at the record's end.
  std::unique_ptr<std::uint8_t[]> copy(new std::uint8_t[size > 0 ? size : 1]);
  if (size > 0) std::memcpy(copy.get(), data, size);
  const std::span<const std::uint8_t> bytes(copy.get(), size);

  // The sequence a reader expects: the one the record carries when it verifies as a Record (so
  // that the fuzzer gets past that check), else 1.
  std::uint64_t claimed = 1;
  {
    flatbuffers::Verifier verifier(bytes.data(), bytes.size());
    if (schema::VerifyRecordBuffer(verifier)) claimed = schema::GetRecord(bytes.data())->global_seq();
  }
  const status structure = storage::verify_record_structure(bytes, log_seq(claimed));
  const status whole = storage::verify_record(bytes, log_seq(claimed));
  if (!structure.is_ok()) {
    check_error(structure);
    FUZZ_CHECK(whole.code() == structure.code() && whole.message() == structure.message());
    return 0;
  }
  // Verified: every field is safe to read.
  const schema::Record* r = schema::GetRecord(bytes.data());
  const schema::EventBody* body = r->body_nested_root();
  FUZZ_CHECK(body != nullptr && static_cast<std::uint8_t>(body->event_type()) == r->event_type());
  FUZZ_CHECK(r->stream() != nullptr && r->command_id() != nullptr);
  // The verifier checks a nested buffer's alignment from the buffer's own start: FlatBuffers then
  // reads the body's 8-byte scalars (in core::apply, the printer) at aligned addresses only if
  // the body starts 8-aligned in the (8-aligned) record, as build_record makes it.
  FUZZ_CHECK((r->body()->data() - bytes.data()) % 8 == 0);
  const status other = storage::verify_record_structure(bytes, log_seq(claimed ^ 1));
  FUZZ_CHECK(!other.is_ok());
  check_error(other);

  const status hash = storage::verify_record_hash(bytes);
  if (hash.is_ok()) {
    FUZZ_CHECK(whole.is_ok());
  } else {
    check_error(hash);
    FUZZ_CHECK(whole.code() == hash.code() && whole.message() == hash.message());
  }
  (void)storage::record_hash(*r);
  (void)storage::record_prev_hash(*r);

  // export prints a body once its record verified (the hash does not change what is safe to read).
  const auto text = printer().body_json({r->body()->data(), r->body()->size()});
  if (!text.has_value()) {
    FUZZ_CHECK(text.error().code() == errc::corruption);
    return 0;
  }
  const std::string& json = text.value();
  FUZZ_CHECK(json.find('\n') == std::string::npos);
  // json_line bounds its nodes by the command line's limit; a longer text is not read back.
  if (json.size() <= limits::command_line_bytes_max) {
    static schema::json_line reader;
    FUZZ_CHECK(reader.read(json));
    FUZZ_CHECK(reader.at(0).type == schema::json_line::kind::object);
  }
  return 0;
}
