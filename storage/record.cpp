#include "storage/record.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace pevledger::storage {
namespace {

// OpenSSL 3 looks an algorithm up (under a lock) on every implicit use; fetch SHA-256 once, and
// keep one digest context per thread.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  PEV_ASSERT(md != nullptr);
  return md;
}

EVP_MD_CTX* thread_digest_context() {
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  PEV_ASSERT(ctx != nullptr);
  return ctx.get();
}

schema::Digest to_fb(const digest& d) {
  schema::Digest out;
  for (std::size_t i = 0; i < d.size(); ++i) out.mutable_bytes()->Mutate(i, d[i]);
  return out;
}

digest from_fb(const schema::Digest& d) {
  digest out;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = d.bytes()->Get(i);
  return out;
}

// Hash of a record's bytes with its hash field taken as 32 zero bytes, without copying the record:
// the bytes before the field, 32 zeros, the bytes after it.
digest hash_with_zeroed_field(std::span<const std::uint8_t> bytes, const schema::Digest* field) {
  const auto* field_bytes = reinterpret_cast<const std::uint8_t*>(field);
  const std::size_t offset = static_cast<std::size_t>(field_bytes - bytes.data());
  PEV_ASSERT(offset + sizeof(schema::Digest) <= bytes.size());
  static constexpr std::uint8_t zeros[sizeof(schema::Digest)] = {};
  EVP_MD_CTX* ctx = thread_digest_context();
  digest out{};
  unsigned int len = 0;
  const bool ok = EVP_DigestInit_ex(ctx, sha256_md(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, bytes.data(), offset) == 1 &&
                  EVP_DigestUpdate(ctx, zeros, sizeof zeros) == 1 &&
                  EVP_DigestUpdate(ctx, bytes.data() + offset + sizeof zeros, bytes.size() - offset - sizeof zeros) == 1 &&
                  EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  PEV_ASSERT(ok && len == out.size());
  return out;
}

}  // namespace

digest sha256(std::span<const std::uint8_t> bytes) {
  digest out{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = thread_digest_context();
  const bool ok = EVP_DigestInit_ex(ctx, sha256_md(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, bytes.data(), bytes.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  PEV_ASSERT(ok && len == out.size());
  return out;
}

sha256_hasher::sha256_hasher() : ctx_(EVP_MD_CTX_new()) {
  PEV_ASSERT(ctx_ != nullptr && EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), sha256_md(), nullptr) == 1);
}
sha256_hasher::~sha256_hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }
void sha256_hasher::update(std::string_view piece) {
  PEV_ASSERT(EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), piece.data(), piece.size()) == 1);
}
digest sha256_hasher::finish() {
  digest out{};
  unsigned int len = 0;
  PEV_ASSERT(EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), out.data(), &len) == 1 && len == out.size());
  return out;
}

std::string to_hex(const digest& d) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (std::uint8_t b : d) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

digest record_hash(const schema::Record& r) { return from_fb(*r.hash()); }
digest record_prev_hash(const schema::Record& r) { return from_fb(*r.prev_hash()); }

digest build_record(flatbuffers::FlatBufferBuilder& fbb, const record_position& pos, std::string_view stream,
                    unix_seconds at, std::string_view command_id, std::span<const std::uint8_t> body) {
  PEV_ASSERT(pos.global.value() >= 1);
  const auto* body_root = flatbuffers::GetRoot<schema::EventBody>(body.data());
  const auto event_type = static_cast<std::uint8_t>(body_root->event_type());
  PEV_ASSERT(event_type != 0);

  fbb.Clear();
  const auto stream_off = fbb.CreateString(stream.data(), stream.size());
  const auto command_off = fbb.CreateString(command_id.data(), command_id.size());
  // A nested buffer keeps its own alignment only if the vector starts 8-aligned.
  fbb.ForceVectorAlignment(body.size(), sizeof(std::uint8_t), 8);
  const auto body_off = fbb.CreateVector(body.data(), body.size());
  const schema::Digest zero = to_fb(digest{});
  const schema::Digest prev = to_fb(pos.prev_hash);
  schema::RecordBuilder rb(fbb);
  rb.add_global_seq(pos.global.value());
  rb.add_stream_seq(pos.stream_seq);
  rb.add_at(at.value());
  rb.add_stream(stream_off);
  rb.add_command_id(command_off);
  rb.add_event_type(event_type);
  rb.add_body(body_off);
  rb.add_prev_hash(&prev);
  rb.add_hash(&zero);
  fbb.Finish(rb.Finish());

  std::span<std::uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetSize());
  schema::Record* record = schema::GetMutableRecord(bytes.data());
  const digest h = sha256(bytes);  // the hash field is still zero here
  schema::Digest* field = record->mutable_hash();
  for (std::size_t i = 0; i < h.size(); ++i) field->mutable_bytes()->Mutate(i, h[i]);
  PEV_DEBUG_ASSERT(verify_record(bytes, pos.global).is_ok());
  return h;
}

status verify_record_structure(std::span<const std::uint8_t> bytes, log_seq expected) {
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!schema::VerifyRecordBuffer(verifier))
    return {errc::corruption, "record " + std::to_string(expected.value()) + ": does not verify as a Record"};
  const schema::Record* r = schema::GetRecord(bytes.data());
  if (r->global_seq() != expected.value())
    return {errc::corruption, "record " + std::to_string(expected.value()) + ": carries sequence " +
                                  std::to_string(r->global_seq())};
  const schema::EventBody* body = r->body_nested_root();
  if (body == nullptr || static_cast<std::uint8_t>(body->event_type()) != r->event_type())
    return {errc::corruption, "record " + std::to_string(expected.value()) + ": event type differs from its body"};
  // The verifier accepts a union whose type is NONE (its type field absent or 0) or a type this
  // schema does not have (as a newer schema's), whatever its value: no record is built so (build_record
  // asserts a type), and reading one aborted the event printer (flatbuffers' text generator asserts
  // that a union's type field is present) and core::apply (an assertion). Found by
  // fuzz/record_fuzzer.cpp.
  if (body->event_type() == schema::Event::NONE || body->event_type() > schema::Event::MAX)
    return {errc::corruption, "record " + std::to_string(expected.value()) + ": carries no event of this schema (type " +
                                  std::to_string(r->event_type()) + ")"};
  return status::ok();
}

status verify_record_hash(std::span<const std::uint8_t> bytes) {
  const schema::Record* r = schema::GetRecord(bytes.data());
  if (hash_with_zeroed_field(bytes, r->hash()) != record_hash(*r))
    return {errc::corruption, "record " + std::to_string(r->global_seq()) + ": hash does not match its bytes"};
  return status::ok();
}

status verify_record(std::span<const std::uint8_t> bytes, log_seq expected) {
  PEV_RETURN_IF_ERROR(verify_record_structure(bytes, expected));
  return verify_record_hash(bytes);
}

}  // namespace pevledger::storage
