#include "schema/interval_batch.hpp"

#include <string>

#include "base/limits.hpp"
#include "schema/field_checks.hpp"

namespace pevledger::schema {
namespace {

status invalid(std::string message) { return {errc::invalid_field, std::move(message)}; }

status check_identifier_field(const flatbuffers::String* s, const char* name) {
  if (s == nullptr) return {errc::missing_field, std::string("missing field '") + name + "'"};
  if (!is_utf8(s->string_view())) return invalid(std::string("field '") + name + "' is not UTF-8");
  return check_identifier(s->string_view(), name);
}

status check_reading(const wire::IntervalRow& r, std::size_t i) {
  // The field's path is written only for a refusal: most batches are valid.
  auto bad = [&](const char* what) { return invalid("readings[" + std::to_string(i) + "]." + what); };
  if (!is_business_time(unix_seconds(r.start()))) return bad("start is outside 1970-01-03 to 9999-12-29");
  if (r.seconds() < 1 || r.seconds() > 86400) return bad("seconds must be 1 to 86400");
  if (r.wh() < 0 || r.wh() > 1'000'000'000) return bad("wh must be 0 to 1000000000");
  if (r.has_register() && (r.register_wh() < 0 || r.register_wh() > 1'000'000'000'000'000))
    return bad("register_wh must be 0 to 1000000000000000");
  return status::ok();
}

}  // namespace

std::optional<command> read_interval_batch(std::span<const std::uint8_t> bytes, parse_failure& failure) {
  auto refuse = [&](status why) {
    failure.error = std::move(why);
    return std::nullopt;
  };
  if (bytes.size() > limits::interval_batch_bytes_max)
    return refuse(invalid("an interval batch is longer than " + std::to_string(limits::interval_batch_bytes_max) +
                          " bytes"));
  if (bytes.size() < 8 || !wire::IntervalBatchBufferHasIdentifier(bytes.data()))
    return refuse(invalid("not an interval batch (file identifier PVIB)"));
  // Copied first: the caller's bytes need not be aligned, and the command keeps its own.
  command out;
  out.table.assign(bytes.begin(), bytes.end());
  // Depth and table counts far above what a batch holds; the size bound above bounds the work.
  flatbuffers::Verifier verifier(out.table.data(), out.table.size(), 8, 16);
  if (!wire::VerifyIntervalBatchBuffer(verifier)) return refuse(invalid("the interval batch does not verify"));
  const wire::IntervalBatch& b = *wire::GetIntervalBatch(out.table.data());
  if (status s = check_identifier_field(b.id(), "id"); !s.is_ok()) return refuse(std::move(s));
  failure.id = b.id()->str();  // a refusal from here on names the batch
  if (!is_business_time(unix_seconds(b.at()))) return refuse(invalid("field 'at' is outside 1970-01-03 to 9999-12-29"));
  if (status s = check_identifier_field(b.device(), "device"); !s.is_ok()) return refuse(std::move(s));
  if (status s = check_identifier_field(b.session(), "session"); !s.is_ok()) return refuse(std::move(s));
  const auto* readings = b.readings();
  if (readings == nullptr) return refuse({errc::missing_field, "missing field 'readings'"});
  // FlatBuffers' verifier checks a vector of structs at 4-byte alignment; its rows need 8 (a
  // builder always writes them so, the copy starts 8-aligned).
  if (reinterpret_cast<std::uintptr_t>(readings->Data()) % alignof(wire::IntervalRow) != 0)
    return refuse(invalid("the readings do not start 8-aligned"));
  if (readings->size() == 0 || readings->size() > limits::interval_batch_readings_max)
    return refuse(invalid("an interval batch holds 1 to " + std::to_string(limits::interval_batch_readings_max) +
                          " readings, not " + std::to_string(readings->size())));
  for (flatbuffers::uoffset_t i = 0; i < readings->size(); ++i) {
    const wire::IntervalRow& r = *readings->Get(i);
    if (status s = check_reading(r, i); !s.is_ok()) return refuse(std::move(s));
    if (i > 0 && r.start() <= readings->Get(i - 1)->start())
      return refuse(invalid("readings[" + std::to_string(i) + "] does not start after the reading before it"));
  }
  out.kind = command_kind::interval_batch;
  out.id = b.id()->str();
  out.at = unix_seconds(b.at());
  return out;
}

}  // namespace pevledger::schema
