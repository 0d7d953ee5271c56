#include "replay/replay.hpp"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
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
    // Up to the first record whose business time is after `time`.
    std::uint64_t end = 0;
    bool past = false;
    PEV_RETURN_IF_ERROR(lg.scan(log_seq(1), log_seq(last), [&](const schema::Record& r) {
      if (!past && r.at() > rule.time->value()) past = true;
      if (!past) end = r.global_seq();
      return status::ok();
    }));
    return log_seq(end);
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

// Folds records into partitions of the state, one thread each, while the caller reads and verifies
// the log. Every stream goes to one partition, and an entity's state depends only on its own
// stream, so the partitions together are the state a single fold builds: the same projections,
// the same digest, whatever the number of threads.
class parallel_fold {
 public:
  // `partitions` 0: apply on the caller's thread.
  explicit parallel_fold(std::size_t partitions) : states_(std::max<std::size_t>(partitions, 1)) {
    for (std::size_t i = 0; i < partitions; ++i) workers_.push_back(std::make_unique<worker>());
    for (std::size_t i = 0; i < partitions; ++i)
      workers_[i]->thread = std::thread([this, i] { run(*workers_[i], states_[i]); });
  }
  ~parallel_fold() { finish(); }

  [[nodiscard]] actors::ledger_state& state_of(std::string_view stream) { return states_[partition(stream)]; }

  // `covered`: the events of each stream already in the state (from its snapshot).
  void set_covered(std::unordered_map<std::string, std::uint64_t> covered) { covered_ = std::move(covered); }

  void add(const schema::Record& r, std::span<const std::uint8_t> bytes) {
    if (!covered_.empty()) {
      auto it = covered_.find(r.stream()->str());
      if (it != covered_.end() && r.stream_seq() <= it->second) return;
    }
    if (workers_.empty()) {
      actors::apply(states_[0], *r.body_nested_root(), unix_seconds(r.at()));
      return;
    }
    worker& w = *workers_[partition(r.stream()->string_view())];
    batch& b = w.filling;
    // Records start 8-byte aligned, as FlatBuffers expects of a buffer.
    const std::size_t at = (b.bytes.size() + 7) & ~std::size_t{7};
    b.bytes.resize(at + bytes.size());
    std::memcpy(b.bytes.data() + at, bytes.data(), bytes.size());
    b.offsets.push_back(at);
    if (b.offsets.size() >= batch_records_max || b.bytes.size() >= batch_bytes_max) hand_over(w);
  }

  void finish() {
    for (auto& w : workers_) {
      if (!w->thread.joinable()) continue;
      hand_over(*w);
      {
        std::lock_guard lock(w->mu);
        w->done = true;
      }
      w->changed.notify_all();
      w->thread.join();
    }
  }

  [[nodiscard]] std::vector<std::pair<std::string, std::string>> projections() const {
    std::vector<std::pair<std::string, std::string>> all;
    for (const auto& st : states_) {
      auto part = actors::all_projections(st);
      all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    std::sort(all.begin(), all.end());
    return all;
  }

 private:
  static constexpr std::size_t batch_records_max = 4096;
  static constexpr std::size_t batch_bytes_max = 4u << 20;
  static constexpr std::size_t queued_batches_max = 8;  // per worker: bounds memory and lead

  struct batch {
    std::vector<std::uint8_t> bytes;
    std::vector<std::size_t> offsets;
  };
  struct worker {
    std::thread thread;
    std::mutex mu;
    std::condition_variable changed;
    std::deque<batch> queue;
    bool done = false;
    batch filling;
  };

  std::size_t partition(std::string_view stream) const {
    return workers_.empty() ? 0 : std::hash<std::string_view>{}(stream) % workers_.size();
  }

  void hand_over(worker& w) {
    if (w.filling.offsets.empty()) return;
    std::unique_lock lock(w.mu);
    w.changed.wait(lock, [&] { return w.queue.size() < queued_batches_max; });
    w.queue.push_back(std::move(w.filling));
    w.filling = {};
    lock.unlock();
    w.changed.notify_all();
  }

  static void run(worker& w, actors::ledger_state& state) {
    for (;;) {
      batch b;
      {
        std::unique_lock lock(w.mu);
        w.changed.wait(lock, [&] { return !w.queue.empty() || w.done; });
        if (w.queue.empty()) return;
        b = std::move(w.queue.front());
        w.queue.pop_front();
      }
      w.changed.notify_all();
      for (const std::size_t at : b.offsets) {
        const schema::Record* r = schema::GetRecord(b.bytes.data() + at);  // verified by the reader
        actors::apply(state, *r->body_nested_root(), unix_seconds(r->at()));
      }
    }
  }

  std::vector<actors::ledger_state> states_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::unordered_map<std::string, std::uint64_t> covered_;
};

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

result<report> run(const std::string& db, const std::string& until, bool verify, bool from_snapshots,
                   std::size_t threads) {
  auto rule = parse_until(until);
  if (!rule) return rule.error();
  storage::log_options options;
  options.create_if_missing = false;
  auto log = storage::event_log::open(db, options);
  if (!log) return log.error();
  storage::event_log& lg = *log.value();

  auto end = replay_end(lg, *rule);
  if (!end) return end.error();
  if (threads == 0) threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  // One thread reads and verifies; the others apply. With one thread, it does both.
  parallel_fold fold(threads - 1);
  if (from_snapshots) {
    // Events of a stream up to this stream sequence are in the snapshot the state started from.
    std::unordered_map<std::string, std::uint64_t> covered;
    std::unordered_map<std::string, storage::entity_snapshot> newest;
    PEV_RETURN_IF_ERROR(lg.scan_snapshots([&](std::string_view stream, const storage::entity_snapshot& snap) {
      if (snap.global_seq <= end.value()) newest[std::string(stream)] = snap;  // in stream order: newest last
      return status::ok();
    }));
    for (auto& [stream, snap] : newest) {
      PEV_RETURN_IF_ERROR(actors::restore_entity(fold.state_of(stream), stream, snap.state));
      covered[stream] = snap.stream_seq;
    }
    fold.set_covered(std::move(covered));
  }
  const std::uint64_t last_applied = end->value();
  const std::uint64_t records = last_applied;
  // The whole chain is read and verified, also past the end of a point-in-time replay.
  status scanned = lg.scan_bytes(log_seq(1), lg.last_seq(), [&](const schema::Record& r, std::span<const std::uint8_t> bytes) {
    if (r.global_seq() <= last_applied) fold.add(r, bytes);
    return status::ok();
  });
  fold.finish();
  if (!scanned.is_ok()) return scanned;

  const auto projections = fold.projections();
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
