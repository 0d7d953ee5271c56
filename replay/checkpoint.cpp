#include "replay/checkpoint.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <charconv>
#include <memory>
#include <sstream>
#include <vector>

#include "base/time.hpp"
#include "storage/event_log.hpp"

namespace pevledger::replay {
namespace {

constexpr std::string_view magic = "pevledger-checkpoint-v1";

struct pkey_deleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_deleter>;

result<pkey_ptr> load_key(const std::string& path, bool is_private) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "r"), BIO_free);
  if (!bio) return status(errc::usage, "cannot read key file '" + path + "'");
  pkey_ptr key(is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                          : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return status(errc::usage, "'" + path + "' holds no PEM " + (is_private ? "private" : "public") + " key");
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) return status(errc::usage, "'" + path + "' is not an Ed25519 key");
  return key;
}

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 15]);
  }
  return out;
}

std::optional<std::vector<unsigned char>> unhex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<unsigned char> out;
  for (std::size_t i = 0; i < s.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<unsigned char>(hi * 16 + lo));
  }
  return out;
}

// The signed part of a checkpoint: its first four lines, each ending in LF.
std::string signed_text(std::uint64_t seq, const std::string& chain_hash, const std::string& time) {
  return std::string(magic) + "\nseq " + std::to_string(seq) + "\nchain_hash " + chain_hash + "\ntime " + time + "\n";
}

status invalid(const std::string& what) { return {errc::invalid_field, "checkpoint file: " + what}; }

}  // namespace

result<std::string> make_checkpoint(const std::string& db, const std::string& private_key_pem, unix_seconds now) {
  auto key = load_key(private_key_pem, true);
  if (!key) return key.error();
  storage::log_options options;
  options.access = storage::log_access::read_only;
  auto log = storage::event_log::open(db, options);
  if (!log) return log.error();
  const std::uint64_t seq = log.value()->last_seq().value();
  if (seq == 0) return status(errc::usage, "the log is empty: nothing to checkpoint");
  // Sign only a log that verifies: a checkpoint vouches for everything before it.
  PEV_RETURN_IF_ERROR(log.value()->scan(log_seq(1), log_seq(seq), [](const schema::Record&) { return status::ok(); }));
  const std::string body = signed_text(seq, storage::to_hex(log.value()->last_hash()), format_timestamp(now));
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  std::size_t sig_len = sizeof sig;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key->get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_len, reinterpret_cast<const unsigned char*>(body.data()), body.size()) != 1 ||
      sig_len != sizeof sig)
    return status(errc::io_error, "Ed25519 signing failed");
  return body + "signature " + hex(sig, sig_len) + "\n";
}

result<verification> verify_checkpoint(const std::string& db, const std::string& text, const std::string& public_key_pem) {
  // Parse strictly: exactly the five lines of the format.
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l) && lines.size() <= 5;) lines.push_back(l);
  if (lines.size() != 5 || lines[0] != magic) return invalid("not a pevledger-checkpoint-v1 file");
  auto field = [&](std::size_t i, std::string_view name) -> std::optional<std::string> {
    const std::string prefix = std::string(name) + " ";
    if (lines[i].rfind(prefix, 0) != 0) return std::nullopt;
    return lines[i].substr(prefix.size());
  };
  const auto seq_text = field(1, "seq"), chain = field(2, "chain_hash"), time = field(3, "time"),
             sig_text = field(4, "signature");
  if (!seq_text || !chain || !time || !sig_text) return invalid("a line is missing or out of order");
  std::uint64_t seq = 0;
  auto [end, ec] = std::from_chars(seq_text->data(), seq_text->data() + seq_text->size(), seq);
  if (ec != std::errc() || end != seq_text->data() + seq_text->size() || seq == 0) return invalid("bad seq");
  const auto sig = unhex(*sig_text);
  if (chain->size() != 64 || !unhex(*chain) || !sig || sig->size() != 64 || !parse_timestamp(*time))
    return invalid("bad chain_hash, time or signature");

  auto key = load_key(public_key_pem, false);
  if (!key) return key.error();
  const std::string body = signed_text(seq, *chain, *time);
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  const bool signed_ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key->get()) == 1 &&
      EVP_DigestVerify(ctx.get(), sig->data(), sig->size(), reinterpret_cast<const unsigned char*>(body.data()),
                       body.size()) == 1;
  if (!signed_ok) return verification{false, "the signature does not match the checkpoint and this public key"};

  storage::log_options options;
  options.access = storage::log_access::read_only;
  auto log = storage::event_log::open(db, options);
  if (!log) return log.error();
  const std::uint64_t head = log.value()->last_seq().value();
  if (head < seq)
    return verification{false, "the log has " + std::to_string(head) + " records; the checkpoint covers " +
                                   std::to_string(seq) + ": history was removed"};
  std::string seen_hash;
  const status chain_status = log.value()->scan(log_seq(1), log_seq(head), [&](const schema::Record& r) {
    if (r.global_seq() == seq) seen_hash = storage::to_hex(storage::record_hash(r));
    return status::ok();
  });
  if (!chain_status.is_ok()) return verification{false, chain_status.message()};
  if (seen_hash != *chain)
    return verification{false, "record " + std::to_string(seq) + " has hash " + seen_hash +
                                   ", not the checkpointed " + *chain + ": history was rewritten"};
  return verification{true, "the log (" + std::to_string(head) + " records) extends the checkpoint at record " +
                                std::to_string(seq) + " of " + *time + " unchanged"};
}

}  // namespace pevledger::replay
