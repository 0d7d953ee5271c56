// Writes the record fuzzer's seeds (fuzz/corpus/record/): a short chain of valid log records, each
// as its stored bytes, one file a record. Bodies are written as JSON and built by flatbuffers' parser
// from the embedded events schema; storage::build_record adds the envelope and the chain hash.
//
//   build-fuzz/fuzz/make_record_seeds fuzz/corpus/record
//
// Built with the fuzzers (PEVLEDGER_LIBFUZZER=ON); the seeds are committed, so only a change of the
// record layout needs it run again.

#include <flatbuffers/idl.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/check.hpp"
#include "storage/record.hpp"

namespace pevledger::schema {
extern const std::string_view commands_fbs_text;
extern const std::string_view events_fbs_text;
}  // namespace pevledger::schema

namespace {

using namespace pevledger;

struct seed {
  const char* file;
  const char* stream;
  const char* command_id;
  std::int64_t at;
  const char* body_json;
};

// One record of each shape: a configuration fact, a table with a vector of tables, a batch (the
// nested vectors of a batched record), a list of strings, and a session's decision.
const seed seeds[] = {
    {"01_utility_registered.rec", "utility/u1", "L1", 1708873201,
     R"({"event_type":"UtilityRegistered","event":{"utility":"u1","timezone":"Europe/Helsinki",)"
     R"("comm_timeout_s":60,"prepaid_reserve_micro":5000000}})"},
    {"02_tariff_published.rec", "tariff/u1/t", "T1", 1708873205,
     R"({"event_type":"TariffPublished","event":{"utility":"u1","tariff":"t","version":1,"kind":"tou",)"
     R"("base_price_micro_per_kwh":235000,"windows":[{"name":"peak","weekday_mask":17,"from_min":960,)"
     R"("to_min":1260,"price_micro_per_kwh":453250}],"cpp_price_micro_per_kwh":1147250}})"},
    {"03_whitelist_pushed.rec", "premise/p1", "W1", 1708873210,
     R"({"event_type":"WhitelistPushed","event":{"premise":"p1","version":3,"cards":["c1","c2","c3"]}})"},
    {"04_session_decided.rec", "session/s1", "B1", 1709251200,
     R"({"event_type":"SessionDecided","event":{"session":"s1","payer":"pev_account","reason":"none",)"
     R"("pev":"1HGCM82633A004352","payer_account":"a1","payer_utility":"u1","tariff":"t",)"
     R"("tariff_utility":"u1","roaming":false,"reserved_micro":0}})"},
    {"05_intervals_recorded.rec", "session/s1", "M1", 1709252100,
     R"({"event_type":"IntervalsRecorded","event":{"readings":[)"
     R"({"device":"e1","session":"s1","start":1709251200,"seconds":900,"wh":1800,"register_wh":1800},)"
     R"({"device":"e1","session":"s1","start":1709252100,"seconds":900,"wh":1750}],)"
     R"("command_ids":["M1","M2"]}})"},
    {"06_lines_booked.rec", "account/a1", "M2", 1709253000,
     R"({"event_type":"LinesBooked","event":{"lines":[{"account":"a1","utility":"u1","period":"2024-03",)"
     R"("session":"s1","kind":"charge","tariff":"t","window":"peak","wh":1800,"amount_micro":815850,)"
     R"("interval_start":1709251200}],"command_ids":["M1"]}})"},
    {"07_anomaly_recorded.rec", "session/s1", "X1", 1709253900,
     R"({"event_type":"AnomalyRecorded","event":{"kind":"reconciliation","session":"s1","device":"e1",)"
     R"("interval_start":1709251200,"expected_wh":3550,"observed_wh":3300,"detail":"\u00e9\ud83d\ude00"}})"},
    {"08_settlement_issued.rec", "clearinghouse", "S1", 1711929600,
     R"({"event_type":"SettlementIssued","event":{"period":"2024-03","entries":[{"home_utility":"u1",)"
     R"("roaming_utility":"u2","wh":1800,"amount_micro":815850,"net":true}]}})"},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_record_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  // The events schema as event_printer reads it: commands.fbs, then events.fbs without its include.
  std::string events(schema::events_fbs_text);
  const std::string include_line = "include \"commands.fbs\";";
  events.erase(events.find(include_line), include_line.size());
  const std::string text = std::string(schema::commands_fbs_text) + "\n" + events;
  flatbuffers::Parser parser;
  if (!parser.Parse(text.c_str(), nullptr, "events.fbs") || !parser.SetRootType("EventBody")) {
    std::fprintf(stderr, "make_record_seeds: schema: %s\n", parser.error_.c_str());
    return 1;
  }
  storage::record_position pos;
  flatbuffers::FlatBufferBuilder fbb;
  std::uint64_t seq = 0;
  for (const seed& s : seeds) {
    if (!parser.ParseJson(s.body_json)) {
      std::fprintf(stderr, "make_record_seeds: %s: %s\n", s.file, parser.error_.c_str());
      return 1;
    }
    const std::vector<std::uint8_t> body(parser.builder_.GetBufferPointer(),
                                         parser.builder_.GetBufferPointer() + parser.builder_.GetSize());
    pos.global = log_seq(++seq);
    ++pos.stream_seq;
    const storage::digest hash = storage::build_record(fbb, pos, s.stream, unix_seconds(s.at), s.command_id, body);
    const std::span<const std::uint8_t> bytes(fbb.GetBufferPointer(), fbb.GetSize());
    // A seed the log's reader would refuse is a bug here, not an input: every seed verifies, as the
    // record it follows links to it.
    const status verified = storage::verify_record(bytes, pos.global);
    if (!verified.is_ok()) std::fprintf(stderr, "make_record_seeds: %s: %s\n", s.file, verified.describe().c_str());
    FUZZ_CHECK(verified.is_ok());
    FUZZ_CHECK(storage::verify_record(bytes, log_seq(pos.global.value() + 1)).code() == errc::corruption);
    std::ofstream out(dir + "/" + s.file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_record_seeds: cannot write %s/%s\n", dir.c_str(), s.file);
      return 1;
    }
    pos.prev_hash = hash;
  }
  return 0;
}
