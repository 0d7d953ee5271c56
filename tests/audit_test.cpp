// Replay and audit: signed checkpoints, point-in-time replay, and projection verification.

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "actors/recovery.hpp"
#include "core/snapshot_codec.hpp"
#include "replay/checkpoint.hpp"
#include "replay/replay.hpp"
#include "storage/event_log.hpp"
#include "tests/scenario.hpp"

namespace pevledger {
namespace {

using testing::json;

// Writes a fresh Ed25519 key pair as PEM files.
void make_keys(const std::string& private_path, const std::string& public_path) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  ASSERT_NE(key, nullptr);
  BIO* priv = BIO_new_file(private_path.c_str(), "w");
  BIO* pub = BIO_new_file(public_path.c_str(), "w");
  ASSERT_TRUE(priv != nullptr && pub != nullptr);
  EXPECT_EQ(PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  EXPECT_EQ(PEM_write_bio_PUBKEY(pub, key), 1);
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(key);
}

const std::string world =
    R"({"type":"utility.register","id":"1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})" "\n"
    R"({"type":"tariff.publish","id":"2","at":"2024-03-01T00:00:01Z","utility":"u","tariff":"f","kind":"flat","price":100000})" "\n"
    R"({"type":"account.open","id":"3","at":"2024-03-01T00:00:02Z","utility":"u","account":"a","customer":"c"})" "\n"
    R"({"type":"premise.register","id":"4","at":"2024-03-01T00:00:03Z","utility":"u","premise":"p","account":"a","default_tariff":"f"})" "\n"
    R"({"type":"device.commission","id":"5","at":"2024-03-01T00:00:04Z","premise":"p","device":"e","kind":"eumd"})" "\n"
    R"({"type":"session.plug","id":"6","at":"2024-03-05T10:00:00Z","session":"s","premise":"p"})" "\n"
    R"({"type":"meter.interval","id":"7","at":"2024-03-05T10:20:00Z","device":"e","session":"s","start":"2024-03-05T10:00:00Z","seconds":900,"wh":1000})" "\n"
    R"({"type":"session.unplug","id":"8","at":"2024-03-05T10:30:00Z","session":"s"})" "\n"
    R"({"type":"bill.run","id":"9","at":"2024-04-01T00:00:00Z","utility":"u","period":"2024-03"})" "\n";

void ingest(const std::string& db, const std::string& text) {
  auto e = engine::open(db);
  ASSERT_TRUE(e.has_value());
  std::istringstream in(text);
  auto s = e.value()->ingest(in, {});
  ASSERT_TRUE(s.has_value());
  ASSERT_EQ(s->refused, 0u);
}

class audit : public ::testing::Test {
 protected:
  void SetUp() override {
    db = dir.file("db");
    ingest(db, world);
    make_keys(dir.file("key.pem"), dir.file("pub.pem"));
    auto cp = replay::make_checkpoint(db, dir.file("key.pem"), unix_seconds(1712000000));
    ASSERT_TRUE(cp.has_value()) << cp.error().describe();
    checkpoint = cp.value();
  }
  replay::verification verify(const std::string& text, const std::string& pub = "") {
    auto v = replay::verify_checkpoint(db, text, pub.empty() ? dir.file("pub.pem") : pub);
    EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().describe());
    return v ? v.value() : replay::verification{};
  }
  testing::temp_dir dir;
  std::string db;
  std::string checkpoint;
};

TEST_F(audit, a_checkpoint_verifies_and_keeps_verifying_as_the_log_grows) {
  EXPECT_EQ(checkpoint.rfind("pevledger-checkpoint-v1\nseq ", 0), 0u);
  EXPECT_TRUE(verify(checkpoint).ok) << verify(checkpoint).message;
  ingest(db, R"({"type":"account.topup","id":"10","at":"2024-04-02T00:00:00Z","account":"a","amount":5})" "\n");
  const auto v = verify(checkpoint);
  EXPECT_TRUE(v.ok) << v.message;
}

TEST_F(audit, a_forged_checkpoint_or_another_key_is_detected) {
  std::string forged = checkpoint;
  const auto at = forged.find("\nseq ") + 5;
  forged[at] = forged[at] == '1' ? '2' : '1';  // claim another sequence
  EXPECT_FALSE(verify(forged).ok);
  std::string other_hash = checkpoint;
  const auto h = other_hash.find("chain_hash ") + 11;
  other_hash[h] = other_hash[h] == 'a' ? 'b' : 'a';
  EXPECT_FALSE(verify(other_hash).ok);
  make_keys(dir.file("key2.pem"), dir.file("pub2.pem"));
  EXPECT_FALSE(verify(checkpoint, dir.file("pub2.pem")).ok);
  auto malformed = replay::verify_checkpoint(db, "hello\n", dir.file("pub.pem"));
  ASSERT_FALSE(malformed.has_value());
  EXPECT_EQ(malformed.error().code(), errc::invalid_field);
}

TEST_F(audit, rewritten_history_fails_the_checkpoint_and_names_the_record) {
  {
    auto log = storage::event_log::open(db);
    ASSERT_TRUE(log.has_value());
    auto rec = log.value()->read(log_seq(3));
    ASSERT_TRUE(rec.has_value());
    std::vector<std::uint8_t> bytes = rec->bytes;
    const std::string needle = "customer";
    auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
    if (it == bytes.end()) it = bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2);
    *it ^= 0x01;
    ASSERT_TRUE(log.value()->overwrite_record_for_test(log_seq(3), bytes).is_ok());
  }
  const auto v = verify(checkpoint);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.message.find("record 3"), std::string::npos) << v.message;
}

TEST_F(audit, point_in_time_replay_before_and_after_the_bill_run) {
  auto before = replay::run(db, "2024-03-31T23:59:59Z", false);
  ASSERT_TRUE(before.has_value()) << before.error().describe();
  const json b = json::parse(before->json);
  EXPECT_TRUE(b["bills"].empty());
  auto after = replay::run(db, "2024-04-01T00:00:00Z", false);
  ASSERT_TRUE(after.has_value());
  const json a = json::parse(after->json);
  ASSERT_EQ(a["bills"].size(), 1u);
  EXPECT_EQ(a["bills"][0]["status"], "issued");
  EXPECT_EQ(a["bills"][0]["lines"][0]["kind"], "main_meter");
  EXPECT_EQ(a["records"], json::parse(replay::run(db, "", false)->json)["records"]);
  // --until SEQ inside the bill run's records folds to the end of that command.
  const std::uint64_t bill_run_first = b["records"].get<std::uint64_t>() + 1;
  auto mid = replay::run(db, std::to_string(bill_run_first), false);
  ASSERT_TRUE(mid.has_value());
  EXPECT_EQ(json::parse(mid->json)["records"], a["records"]);
  // The same log replayed twice gives the same digest.
  EXPECT_EQ(json::parse(replay::run(db, "", false)->json)["digest"], a["digest"]);
}

// Up to log-5 the engine stored every bill it issued; such a stored bill must still equal the log.
TEST_F(audit, verify_names_a_stored_bill_that_differs_from_the_log) {
  auto clean = replay::run(db, "", true);
  ASSERT_TRUE(clean.has_value());
  EXPECT_TRUE(clean->ok);
  auto e = engine::open(db, {.read_only = true});
  ASSERT_TRUE(e.has_value());
  auto issued = e.value()->bill("a", "2024-03");
  ASSERT_TRUE(issued.has_value());
  e.value().reset();
  json forged = json::parse(issued.value());
  ASSERT_EQ(forged["status"], "issued");
  forged["total_micro"] = 999;  // one field changed behind the log's back
  {
    auto log = storage::event_log::open(db);
    ASSERT_TRUE(log.has_value());
    storage::append_batch b;
    b.projections.push_back({"bill/a/2024-03", forged.dump()});
    ASSERT_TRUE(log.value()->append_and_wait(std::move(b)).has_value());
  }
  auto tampered = replay::run(db, "", true);
  ASSERT_TRUE(tampered.has_value());
  EXPECT_FALSE(tampered->ok);
  const json j = json::parse(tampered->json);
  ASSERT_EQ(j["mismatches"].size(), 1u);
  EXPECT_EQ(j["mismatches"][0]["projection"], "bill/a/2024-03");
  EXPECT_EQ(j["mismatches"][0]["stream"], "account/a");
  EXPECT_GT(j["mismatches"][0]["seq"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["mismatches"][0]["field"], "/total_micro");
}

// Verify holds the snapshots against a fold of the whole log; folding from them would agree with them.
TEST_F(audit, verify_from_snapshots_is_refused) {
  auto r = replay::run(db, "", true, true);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::usage);
  EXPECT_TRUE(replay::run(db, "", false, true).has_value());
}

// An id may hold '/': account "a"'s snapshot answers its own bills, not those of account "a/x".
TEST(audit_ids, verify_tells_apart_accounts_whose_ids_extend_each_other) {
  testing::temp_dir dir;
  const std::string db = dir.file("db");
  std::string lines = world;
  lines.insert(lines.find(R"({"type":"bill.run")"),
               R"({"type":"account.open","id":"3x","at":"2024-03-01T00:00:02Z","utility":"u","account":"a/x","customer":"c"})"
               "\n");
  ingest(db, lines);
  {
    auto log = storage::event_log::open(db);
    ASSERT_TRUE(log.has_value());
    core::ledger_state state;
    auto recovered = actors::recover_entity(*log.value(), "account/a", state);
    ASSERT_TRUE(recovered.has_value());
    storage::append_batch b;  // a true snapshot: the answer it gives is the log's
    b.snapshots.push_back({"account/a", recovered->stream_seq, core::encode_snapshot(state.accounts.resident("a")->state)});
    ASSERT_TRUE(log.value()->append_and_wait(std::move(b)).has_value());
  }
  auto verified = replay::run(db, "", true);
  ASSERT_TRUE(verified.has_value());
  const json j = json::parse(verified->json);
  EXPECT_TRUE(verified->ok) << j["mismatches"].dump();
  std::size_t bills = 0;
  for (const json& bill : j["bills"]) bills += bill["status"] == "issued";
  EXPECT_EQ(bills, 2u);
}

// A balance is not stored: a query renders it from the account's newest snapshot and the events
// after it. A snapshot changed behind the log's back changes that answer, and verify says where.
TEST_F(audit, verify_names_a_balance_whose_query_answer_differs_from_the_log) {
  {
    auto log = storage::event_log::open(db);
    ASSERT_TRUE(log.has_value());
    core::ledger_state state;
    auto recovered = actors::recover_entity(*log.value(), "account/a", state);
    ASSERT_TRUE(recovered.has_value());
    ASSERT_GT(recovered->stream_seq, 0u);
    core::account_state account = state.accounts.resident("a")->state;
    account.posted_micro += 1;  // one micro-unit more posted than the log says
    storage::append_batch b;
    b.snapshots.push_back({"account/a", recovered->stream_seq, core::encode_snapshot(account)});
    ASSERT_TRUE(log.value()->append_and_wait(std::move(b)).has_value());
  }
  auto tampered = replay::run(db, "", true);
  ASSERT_TRUE(tampered.has_value());
  EXPECT_FALSE(tampered->ok);
  const json j = json::parse(tampered->json);
  ASSERT_EQ(j["mismatches"].size(), 1u) << j["mismatches"].dump();
  EXPECT_EQ(j["mismatches"][0]["projection"], "balance/a");
  EXPECT_EQ(j["mismatches"][0]["stream"], "account/a");
  EXPECT_EQ(j["mismatches"][0]["field"], "/balance_micro");
}

TEST_F(audit, the_digest_does_not_depend_on_the_number_of_threads) {
  const auto one = replay::run(db, "", true, false, 1);
  ASSERT_TRUE(one.has_value() && one->ok);
  for (std::size_t threads : {2u, 3u, 5u}) {
    const auto many = replay::run(db, "", true, false, threads);
    ASSERT_TRUE(many.has_value() && many->ok) << threads;
    EXPECT_EQ(json::parse(many->json)["digest"], json::parse(one->json)["digest"]) << threads;
    EXPECT_EQ(many->json, one->json) << threads;
  }
}

TEST_F(audit, a_changed_byte_is_named_whatever_the_number_of_threads) {
  {
    // Change one character of record 5's command id: the structure stays valid, the hash does not.
    auto log = storage::event_log::open(db);
    ASSERT_TRUE(log.has_value());
    auto stored = log.value()->read(log_seq(5));
    ASSERT_TRUE(stored.has_value());
    std::vector<std::uint8_t> bytes = stored->bytes;
    const auto* id = stored->record().command_id();
    const std::size_t offset = reinterpret_cast<const std::uint8_t*>(id->data()) - stored->bytes.data();
    bytes[offset] ^= 0x01;
    ASSERT_TRUE(log.value()->overwrite_record_for_test(log_seq(5), bytes).is_ok());
  }
  for (std::size_t threads : {1u, 2u, 3u}) {
    const auto r = replay::run(db, "", true, false, threads);
    ASSERT_FALSE(r.has_value()) << threads;
    EXPECT_EQ(r.error().code(), errc::corruption);
    EXPECT_NE(r.error().message().find("record 5"), std::string::npos) << r.error().message();
  }
}

}  // namespace
}  // namespace pevledger
