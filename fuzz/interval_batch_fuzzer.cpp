// libFuzzer target: the reader of binary interval batches (schema/interval_batch.hpp), the bytes a
// device adapter hands the engine as they came off the wire.
//
// Whatever the bytes, the reader must neither crash, hang nor reach an assertion. Beyond that, the
// promises its answer keeps:
//   - a refusal is invalid_field or missing_field, and the id it reports is 1 to 256 bytes;
//   - an accepted batch holds exactly the input's bytes, its id and every identifier are 1 to 256
//     bytes without a control character, its time and its starts are business times, it has 1 to
//     4,096 readings with strictly increasing starts and every value within its bounds;
//   - reading its own bytes again gives the same command.
// scripts/fuzz.sh builds and runs it (PEVLEDGER_LIBFUZZER=ON).

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/limits.hpp"
#include "fuzz/check.hpp"
#include "schema/field_checks.hpp"
#include "schema/interval_batch.hpp"

namespace {

using namespace pevledger;

bool is_identifier(const flatbuffers::String* s) {
  return s != nullptr && schema::is_utf8(s->string_view()) && schema::check_identifier(s->string_view(), "x").is_ok();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  schema::parse_failure failure;
  const auto read = schema::read_interval_batch(bytes, failure);
  if (!read) {
    const errc code = failure.error.code();
    FUZZ_CHECK(code == errc::invalid_field || code == errc::missing_field);
    FUZZ_CHECK(!failure.id || (!failure.id->empty() && failure.id->size() <= limits::identifier_bytes_max));
    return 0;
  }
  const schema::command& c = *read;
  FUZZ_CHECK(c.kind == schema::command_kind::interval_batch);
  FUZZ_CHECK(c.table.size() == size && std::equal(c.table.begin(), c.table.end(), data));
  FUZZ_CHECK(schema::is_business_time(c.at));
  const auto& b = *c.as<wire::IntervalBatch>();
  FUZZ_CHECK(is_identifier(b.id()) && b.id()->str() == c.id);
  FUZZ_CHECK(is_identifier(b.device()) && is_identifier(b.session()));
  const auto& readings = *b.readings();
  FUZZ_CHECK(readings.size() >= 1 && readings.size() <= limits::interval_batch_readings_max);
  for (flatbuffers::uoffset_t i = 0; i < readings.size(); ++i) {
    const wire::IntervalRow& r = *readings.Get(i);
    FUZZ_CHECK(schema::is_business_time(unix_seconds(r.start())));
    FUZZ_CHECK(i == 0 || r.start() > readings.Get(i - 1)->start());
    FUZZ_CHECK(r.seconds() >= 1 && r.seconds() <= 86400);
    FUZZ_CHECK(r.wh() >= 0 && r.wh() <= 1'000'000'000);
    FUZZ_CHECK(!r.has_register() || (r.register_wh() >= 0 && r.register_wh() <= 1'000'000'000'000'000));
  }
  schema::parse_failure again_failure;
  const auto again = schema::read_interval_batch(c.table, again_failure);
  FUZZ_CHECK(again && again->id == c.id && again->at == c.at && again->table == c.table);
  return 0;
}
