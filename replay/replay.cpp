#include "replay/replay.hpp"

#include <charconv>
#include <map>
#include <unordered_map>
#include <nlohmann/json.hpp>

#include "actors/apply.hpp"
#include "actors/projections.hpp"
#include "actors/snapshot_codec.hpp"
#include "base/time.hpp"
#include "storage/event_log.hpp"

namespace pevledger::replay {
namespace {

using ojson = nlohmann::ordered_json;

struct stop_rule {
  std::optional<std::uint64_t> seq;
  std::optional<unix_seconds> time;
};

result<stop_rule> parse_until(const std::string& until) {
  stop_rule rule;
  if (until.empty()) return rule;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(until.data(), until.data() + until.size(), n);
  if (ec == std::errc() && end == until.data() + until.size()) {
    rule.seq = n;
    return rule;
  }
  auto t = parse_timestamp(until);
  if (!t) return status(errc::usage, "--until takes a sequence number or YYYY-MM-DDTHH:MM:SSZ");
  rule.time = t.value();
  return rule;
}

// The last record a replay under `rule` applies (0 for none); the fold below applies the same rule
// record by record.
result<log_seq> replay_end(const storage::event_log& lg, const stop_rule& rule) {
  const std::uint64_t last = lg.last_seq().value();
  if (rule.time) {
    // Records carry their command's business time in log order: the records not after `time`
    // are a prefix, found by bisection.
    std::uint64_t lo = 0, hi = last;  // answer in [lo, hi]
    while (lo < hi) {
      const std::uint64_t mid = lo + (hi - lo + 1) / 2;
      auto r = lg.read(log_seq(mid));
      if (!r) return r.error();
      if (r->record().at() <= rule.time->value()) lo = mid; else hi = mid - 1;
    }
    return log_seq(lo);
  }
  if (!rule.seq || *rule.seq >= last) return log_seq(last);
  if (*rule.seq == 0) return log_seq(0);
  // To the end of the command that record belongs to (bounded by events_per_command_max).
  auto first = lg.read(log_seq(*rule.seq));
  if (!first) return first.error();
  const std::string command = first->record().command_id()->str();
  std::uint64_t end = *rule.seq;
  while (end < last) {
    auto next = lg.read(log_seq(end + 1));
    if (!next) return next.error();
    if (next->record().command_id()->string_view() != command) break;
    ++end;
  }
  return log_seq(end);
}

// The first field at which two JSON documents differ, as a path.
std::string first_difference(const ojson& a, const ojson& b, const std::string& path) {
  if (a.type() != b.type()) return path.empty() ? "(document)" : path;
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) return path + "/" + it.key();
      std::string d = first_difference(it.value(), b.at(it.key()), path + "/" + it.key());
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) return path + "/" + it.key();
    return "";
  }
  if (a.is_array()) {
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      std::string d = first_difference(a[i], b[i], path + "/" + std::to_string(i));
      if (!d.empty()) return d;
    }
    return a.size() == b.size() ? "" : path + "/length";
  }
  return a == b ? "" : (path.empty() ? "(document)" : path);
}

}  // namespace

result<report> run(const std::string& db, const std::string& until, bool verify, bool from_snapshots) {
  auto rule = parse_until(until);
  if (!rule) return rule.error();
  storage::log_options options;
  options.create_if_missing = false;
  auto log = storage::event_log::open(db, options);
  if (!log) return log.error();
  storage::event_log& lg = *log.value();

  actors::ledger_state state;
  // Events of a stream up to this stream sequence are in the snapshot the state started from.
  std::unordered_map<std::string, std::uint64_t> covered;
  if (from_snapshots) {
    auto end = replay_end(lg, *rule);
    if (!end) return end.error();
    std::unordered_map<std::string, storage::entity_snapshot> newest;
    PEV_RETURN_IF_ERROR(lg.scan_snapshots([&](std::string_view stream, const storage::entity_snapshot& snap) {
      if (snap.global_seq <= end.value()) newest[std::string(stream)] = snap;  // in stream order: newest last
      return status::ok();
    }));
    for (auto& [stream, snap] : newest) {
      PEV_RETURN_IF_ERROR(actors::restore_entity(state, stream, snap.state));
      covered[stream] = snap.stream_seq;
    }
  }
  std::uint64_t records = 0;
  std::uint64_t last_applied = 0;
  bool stopped = false;
  std::string stop_command;
  status scanned = lg.scan(log_seq(1), lg.last_seq(), [&](const schema::Record& r) -> status {
    if (stopped) return status::ok();
    if (rule->time && r.at() > rule->time->value()) {
      stopped = true;
      return status::ok();
    }
    if (rule->seq && r.global_seq() > *rule->seq && r.command_id()->str() != stop_command) {
      stopped = true;
      return status::ok();
    }
    if (covered.empty()) {
      actors::apply(state, *r.body_nested_root(), unix_seconds(r.at()));
    } else if (auto it = covered.find(r.stream()->str()); it == covered.end() || r.stream_seq() > it->second) {
      actors::apply(state, *r.body_nested_root(), unix_seconds(r.at()));
    }
    stop_command = r.command_id()->str();
    ++records;
    last_applied = r.global_seq();
    return status::ok();
  });
  if (!scanned.is_ok()) return scanned;

  const auto projections = actors::all_projections(state);
  std::string digest_input;
  for (const auto& [key, value] : projections) {
    digest_input += key;
    digest_input.push_back('\0');
    digest_input += value;
    digest_input.push_back('\0');
  }
  const std::string digest = storage::to_hex(storage::sha256(
      {reinterpret_cast<const std::uint8_t*>(digest_input.data()), digest_input.size()}));

  report out;
  ojson j;
  j["records"] = records;
  j["last_seq"] = last_applied;
  j["log_size"] = lg.last_seq().value();
  j["chain_head"] = storage::to_hex(lg.last_hash());
  j["projections"] = projections.size();
  j["digest"] = digest;
  ojson mismatches = ojson::array();
  if (verify) {
    if (last_applied != lg.last_seq().value())
      return status(errc::usage, "--verify compares the whole log; leave out --until");
    std::map<std::string, std::string> stored;
    PEV_RETURN_IF_ERROR(lg.scan_projections("", [&](std::string_view k, std::string_view v) {
      stored.emplace(std::string(k), std::string(v));
      return status::ok();
    }));
    // A projection follows one stream; the last record of that stream is where the stored and the
    // replayed values part.
    auto stream_of = [](const std::string& key) -> std::string {
      if (key.starts_with("balance/")) return "account/" + key.substr(8);
      if (key.starts_with("session/")) return key;
      if (key.starts_with("bill/")) return "account/" + key.substr(5, key.rfind('/') - 5);
      return "clearinghouse";
    };
    auto mismatch = [&](const std::string& key, const std::string& field) -> status {
      ojson m;
      const std::string stream = stream_of(key);
      auto records = lg.stream_records(stream);
      if (!records) return records.error();
      m["projection"] = key;
      m["stream"] = stream;
      m["seq"] = records->empty() ? 0 : records->back().value();
      m["field"] = field;
      mismatches.push_back(std::move(m));
      return status::ok();
    };
    for (const auto& [key, value] : projections) {
      auto it = stored.find(key);
      if (it == stored.end()) {
        PEV_RETURN_IF_ERROR(mismatch(key, "(missing from the store)"));
        continue;
      }
      if (it->second != value) {
        const auto a = ojson::parse(value, nullptr, false), b = ojson::parse(it->second, nullptr, false);
        PEV_RETURN_IF_ERROR(
            mismatch(key, a.is_discarded() || b.is_discarded() ? "(document)" : first_difference(a, b, "")));
      }
      stored.erase(it);
    }
    for (const auto& [key, value] : stored) PEV_RETURN_IF_ERROR(mismatch(key, "(stored, but not in the log)"));
    auto watermark = lg.projection_watermark();
    if (!watermark) return watermark.error();
    j["projection_watermark"] = watermark->value();
    out.ok = mismatches.empty();
    j["verified"] = out.ok;
    j["mismatches"] = mismatches;
  }
  ojson balances = ojson::array(), bills = ojson::array(), statements = ojson::array();
  for (const auto& [key, value] : projections) {
    if (key.starts_with("balance/")) balances.push_back(ojson::parse(value));
    if (key.starts_with("bill/")) bills.push_back(ojson::parse(value));
    if (key.starts_with("settlement/")) {
      ojson s;
      s["period"] = key.substr(std::string("settlement/").size());
      s["entries"] = ojson::parse(value);
      statements.push_back(std::move(s));
    }
  }
  j["balances"] = std::move(balances);
  j["bills"] = std::move(bills);
  j["settlements"] = std::move(statements);
  out.json = j.dump();

  std::string text = "replayed " + std::to_string(records) + " of " + std::to_string(lg.last_seq().value()) +
                     " records; " + std::to_string(projections.size()) + " projections\ndigest " + digest + "\n";
  if (verify) {
    text += out.ok ? "verify: hash chain intact, every stored projection matches\n"
                   : "verify: " + std::to_string(mismatches.size()) + " projection(s) differ; first: " +
                         mismatches[0]["projection"].get<std::string>() + " (stream " +
                         mismatches[0]["stream"].get<std::string>() + ", last record " +
                         std::to_string(mismatches[0]["seq"].get<std::uint64_t>()) + ") at " +
                         mismatches[0]["field"].get<std::string>() + "\n";
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  out.text = std::move(text);
  return out;
}

}  // namespace pevledger::replay
