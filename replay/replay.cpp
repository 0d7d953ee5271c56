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
#include <memory>
#include <unordered_map>
#include <nlohmann/json.hpp>

#include "core/apply.hpp"
#include "core/projections.hpp"
#include "core/snapshot_codec.hpp"
#include "core/stream_name.hpp"
#include "storage/record.hpp"
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
  explicit parallel_fold(std::size_t partitions) {
    for (std::size_t i = 0; i < std::max<std::size_t>(partitions, 1); ++i)
      states_.push_back(std::make_shared<core::ledger_state>());
    for (std::size_t i = 0; i < partitions; ++i) {
      auto w = std::make_shared<worker>();
      // The thread shares the worker and its partition, so that it can outlive the fold while it
      // frees the partition (see `run`).
      w->thread = std::thread([w, state = states_[i]]() mutable { run(*w, std::move(state)); });
      workers_.push_back(std::move(w));
    }
  }
  ~parallel_fold() { finish(); }
  parallel_fold(const parallel_fold&) = delete;
  parallel_fold& operator=(const parallel_fold&) = delete;

  [[nodiscard]] core::ledger_state& state_of(std::string_view stream) { return *states_[partition(stream)]; }

  // `covered`: the events of each stream already in the state (from its snapshot).
  void set_covered(std::unordered_map<std::string, std::uint64_t> covered) { covered_ = std::move(covered); }

  // Whether the workers check each record's hash (the reader then checks only structure and chain).
  [[nodiscard]] bool hashes_records() const { return !workers_.empty(); }

  void add(const schema::Record& r, std::span<const std::uint8_t> bytes) {
    if (!covered_.empty()) {
      auto it = covered_.find(r.stream()->str());
      if (it != covered_.end() && r.stream_seq() <= it->second) return;
    }
    if (workers_.empty()) {
      core::apply(*states_[0], *r.body_nested_root(), unix_seconds(r.at()));
      return;
    }
    worker& w = *workers_[partition(r.stream()->string_view())];
    batch& b = w.filling;
    const std::size_t at = b.bytes.append(bytes);
    b.offsets.push_back(at);
    b.sizes.push_back(bytes.size());
    if (b.offsets.size() >= batch_records_max || b.bytes.size() >= batch_bytes_max) hand_over(w);
  }

  // Waits until every worker has applied its share and rendered its projections.
  void finish() {
    if (!workers_.empty()) states_.clear();  // each worker becomes the only owner of its partition
    for (auto& w : workers_) {
      if (!w->thread.joinable()) continue;
      hand_over(*w);
      std::unique_lock lock(w->mu);
      w->done = true;
      w->changed.notify_all();
      w->changed.wait(lock, [&] { return w->rendered; });
      lock.unlock();
      w->thread.detach();  // it only frees its partition now, which nothing else refers to
    }
  }

  // After `finish`: the lowest record whose hash did not match, if a worker found one.
  [[nodiscard]] std::optional<std::pair<std::uint64_t, status>> first_bad_hash() const {
    std::optional<std::pair<std::uint64_t, status>> out;
    for (const auto& w : workers_)
      if (w->first_bad && (!out || w->first_bad->first < out->first)) out = w->first_bad;
    return out;
  }

  // After `finish`: every projection of every partition, in key order.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> projections() {
    std::vector<std::pair<std::string, std::string>> all;
    if (workers_.empty()) return core::all_projections(*states_[0]);
    for (auto& w : workers_) {
      all.insert(all.end(), std::make_move_iterator(w->projections.begin()),
                 std::make_move_iterator(w->projections.end()));
      w->projections.clear();
    }
    std::sort(all.begin(), all.end());
    return all;
  }

 private:
  static constexpr std::size_t batch_records_max = 4096;
  static constexpr std::size_t batch_bytes_max = 4u << 20;
  static constexpr std::size_t queued_batches_max = 8;  // per worker: bounds memory and lead
  static constexpr std::size_t spent_batches_max = 2;   // per worker: enough to refill without allocating

  // A batch's record bytes. It grows without zero-filling (every byte is copied over) and keeps its
  // capacity when the batch is reused, so the reader neither clears nor faults in fresh pages for
  // each batch.
  class record_bytes {
   public:
    // Appends a record 8-byte aligned, as FlatBuffers expects of a buffer; returns its offset.
    std::size_t append(std::span<const std::uint8_t> record) {
      const std::size_t at = (size_ + 7) & ~std::size_t{7};
      if (at + record.size() > capacity_) {
        const std::size_t grown = std::max(at + record.size(), std::max(capacity_ * 2, batch_bytes_max + (64u << 10)));
        auto bigger = std::make_unique_for_overwrite<std::uint8_t[]>(grown);
        if (size_ > 0) std::memcpy(bigger.get(), data_.get(), size_);
        data_ = std::move(bigger);
        capacity_ = grown;
      }
      std::memcpy(data_.get() + at, record.data(), record.size());
      size_ = at + record.size();
      return at;
    }
    [[nodiscard]] const std::uint8_t* data() const { return data_.get(); }
    [[nodiscard]] std::size_t size() const { return size_; }
    void clear() { size_ = 0; }

   private:
    std::unique_ptr<std::uint8_t[]> data_;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
  };
  struct batch {
    record_bytes bytes;
    std::vector<std::size_t> offsets;
    std::vector<std::size_t> sizes;
    void clear() {
      bytes.clear();
      offsets.clear();
      sizes.clear();
    }
  };
  struct worker {
    std::thread thread;
    std::mutex mu;
    std::condition_variable changed;
    std::deque<batch> queue;
    bool done = false;
    bool rendered = false;
    batch filling;
    std::vector<batch> spent;  // applied, back for the reader to refill: at most spent_batches_max
    std::vector<std::pair<std::string, std::string>> projections;  // rendered once the fold is done
    std::optional<std::pair<std::uint64_t, status>> first_bad;       // lowest record whose hash failed
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
    if (!w.spent.empty()) {
      w.filling = std::move(w.spent.back());
      w.spent.pop_back();
      w.filling.clear();
    }
    w.changed.notify_all();
  }

  static void run(worker& w, std::shared_ptr<core::ledger_state> state) {
    for (;;) {
      batch b;
      {
        std::unique_lock lock(w.mu);
        w.changed.wait(lock, [&] { return !w.queue.empty() || w.done; });
        if (w.queue.empty()) break;
        b = std::move(w.queue.front());
        w.queue.pop_front();
        w.changed.notify_all();
      }
      for (std::size_t i = 0; i < b.offsets.size(); ++i) {
        const std::span<const std::uint8_t> bytes(b.bytes.data() + b.offsets[i], b.sizes[i]);
        const schema::Record* r = schema::GetRecord(bytes.data());  // its structure was verified by the reader
        if (w.first_bad) break;  // the replay fails; what follows may depend on the bad record
        if (status hashed = storage::verify_record_hash(bytes); !hashed.is_ok()) {
          w.first_bad = {r->global_seq(), hashed};
          break;
        }
        core::apply(*state, *r->body_nested_root(), unix_seconds(r->at()));
      }
      std::lock_guard lock(w.mu);
      if (w.spent.size() < spent_batches_max) w.spent.push_back(std::move(b));
    }
    w.projections = core::all_projections(*state);
    {
      std::lock_guard lock(w.mu);
      w.rendered = true;
      w.changed.notify_all();
    }
    // Freeing millions of map nodes takes seconds nobody needs to wait for: the caller has its
    // projections and detaches this thread, which frees the partition as the last owner.
  }

  std::vector<std::shared_ptr<core::ledger_state>> states_;
  std::vector<std::shared_ptr<worker>> workers_;
  std::unordered_map<std::string, std::uint64_t> covered_;
};

std::string first_difference(const ojson& a, const ojson& b, const std::string& path);

// Where two renderings of one projection differ: "" when they agree, else the first field.
std::string difference(const std::string& replayed, const std::string& other) {
  if (replayed == other) return "";
  const auto a = ojson::parse(replayed, nullptr, false), b = ojson::parse(other, nullptr, false);
  return a.is_discarded() || b.is_discarded() ? "(document)" : first_difference(a, b, "");
}

// The replayed projections of the entity of `stream`: (first, last) in `projections` (key order).
using projection_list = std::vector<std::pair<std::string, std::string>>;
std::pair<projection_list::const_iterator, projection_list::const_iterator> replayed_of(const projection_list& projections,
                                                                                     std::string_view from,
                                                                                     std::string_view to) {
  auto at = [&](std::string_view key) {
    return std::lower_bound(projections.begin(), projections.end(), key,
                            [](const auto& p, std::string_view k) { return p.first < k; });
  };
  return {at(from), at(to)};
}

// Holds every projection that a query answers from a snapshot against its replayed rendering:
// the stream's newest snapshot, then the events after it, rendered as a query renders them (an
// account's balance and issued bills, a session's report, the clearinghouse's settlements). Calls
// `differs(key, field)` for each that differs or that only one side has. An entity with no
// snapshot is answered by folding its whole stream, the fold replay did, so only snapshots can
// make a query's answer differ from the log's. One pass over the snapshots, newest of each stream
// only; one entity in memory at a time.
status compare_snapshot_answers(const storage::event_log& lg, const projection_list& projections,
                                const std::function<status(const std::string&, const std::string&)>& differs) {
  std::string stream;
  storage::entity_snapshot newest;
  auto answer = [&]() -> status {
    if (stream.empty()) return status::ok();
    const core::stream_name name = core::stream_name::split(stream);
    const std::string id(name.id);
    // The entity's keys, as a range [from, to) in key order ('0' follows '/').
    std::string from, to;
    if (name.kind == core::stream_kind::account) {
      from = core::balance_key(id);  // "balance/ID", then "bill/ID/..." further on
    } else if (name.kind == core::stream_kind::session) {
      from = core::session_key(id);
    } else if (name.kind == core::stream_kind::clearinghouse) {
      from = "settlement/";
      to = "settlement0";
    } else {
      return status::ok();  // renders no projection
    }
    core::ledger_state one;
    PEV_RETURN_IF_ERROR(core::restore_entity(one, stream, newest.state));
    PEV_RETURN_IF_ERROR(lg.scan_stream(stream, newest.stream_seq, lg.last_seq(), [&](const schema::Record& r) {
      core::apply(one, *r.body_nested_root(), unix_seconds(r.at()));
      return status::ok();
    }));
    const projection_list answered = core::all_projections(one);
    projection_list replayed;
    auto add = [&](std::string_view a, std::string_view b) {
      const auto [first, last] = replayed_of(projections, a, b);
      replayed.insert(replayed.end(), first, last);
    };
    if (name.kind == core::stream_kind::account) {
      add(from, from + '\0');  // the balance alone
      // "bill/ID/YYYY-MM": an id may hold '/', so the range may also hold another account's
      // ("bill/ID/x/YYYY-MM"), which has a '/' after the prefix.
      const std::string bills = "bill/" + id + "/";
      const auto [first, last] = replayed_of(projections, bills, "bill/" + id + "0");
      for (auto it = first; it != last; ++it)
        if (it->first.find('/', bills.size()) == std::string::npos) replayed.push_back(*it);
      std::sort(replayed.begin(), replayed.end());
    } else {
      add(from, to.empty() ? from + '\0' : to);
    }
    // Both in key order: one merging pass.
    auto a = answered.begin();
    for (const auto& [key, value] : replayed) {
      for (; a != answered.end() && a->first < key; ++a) PEV_RETURN_IF_ERROR(differs(a->first, "(not in the log)"));
      if (a == answered.end() || a->first != key) {
        PEV_RETURN_IF_ERROR(differs(key, "(not in the snapshot's answer)"));
        continue;
      }
      const std::string field = difference(value, a->second);
      if (!field.empty()) PEV_RETURN_IF_ERROR(differs(key, field));
      ++a;
    }
    for (; a != answered.end(); ++a) PEV_RETURN_IF_ERROR(differs(a->first, "(not in the log)"));
    return status::ok();
  };
  PEV_RETURN_IF_ERROR(lg.scan_snapshots([&](std::string_view s, const storage::entity_snapshot& snap) -> status {
    if (s != stream) {
      PEV_RETURN_IF_ERROR(answer());
      stream = std::string(s);
    }
    newest = snap;  // in stream order: the newest comes last
    return status::ok();
  }));
  return answer();
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

result<report> run(const std::string& db, const std::string& until, bool verify, bool from_snapshots,
                   std::size_t threads, const progress_callback& progress) {
  // Verify holds the snapshots against the log: a fold that starts from them would agree with them.
  if (verify && from_snapshots)
    return status(errc::usage, "--verify compares the snapshots with a fold of the whole log; leave out --from-snapshots");
  auto rule = parse_until(until);
  if (!rule) return rule.error();
  storage::log_options options;
  options.access = storage::log_access::read_only;
  auto log = storage::event_log::open(db, options);
  if (!log) return log.error();
  storage::event_log& lg = *log.value();

  auto end = replay_end(lg, *rule);
  if (!end) return end.error();
  // By default one reader plus one applier per core: the reader waits on the store part of the time.
  if (threads == 0) threads = std::clamp<std::size_t>(std::thread::hardware_concurrency() + 1, 1, 9);
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
      PEV_RETURN_IF_ERROR(core::restore_entity(fold.state_of(stream), stream, snap.state));
      covered[stream] = snap.stream_seq;
    }
    fold.set_covered(std::move(covered));
  }
  const std::uint64_t last_applied = end->value();
  const std::uint64_t records = last_applied;
  // The whole chain is read and verified, also past the end of a point-in-time replay.
  // A record is folded only once the next one has shown that the chain holds through it: a forged
  // record with a recomputed hash breaks the next link, and must never reach `apply`.
  std::uint64_t read = 0;
  std::vector<std::uint8_t> pending;  // the last record read, not yet folded
  auto fold_pending = [&] {
    if (pending.empty()) return;
    const schema::Record* r = schema::GetRecord(pending.data());
    if (r->global_seq() <= last_applied) fold.add(*r, pending);
    pending.clear();
  };
  status scanned = lg.scan_bytes(
      log_seq(1), lg.last_seq(),
      [&](const schema::Record& r, std::span<const std::uint8_t> bytes) {
        read = r.global_seq();
        if (progress && read % progress_records_step == 0) progress(read, lg.last_seq().value());
        fold_pending();
        if (r.global_seq() > last_applied) {
          if (fold.hashes_records()) PEV_RETURN_IF_ERROR(storage::verify_record_hash(bytes));
          return status::ok();
        }
        pending.assign(bytes.begin(), bytes.end());
        return status::ok();
      },
      !fold.hashes_records());
  if (scanned.is_ok()) fold_pending();
  if (progress) progress(read, lg.last_seq().value());
  fold.finish();
  // The first bad record wins, whichever thread found it.
  if (auto bad = fold.first_bad_hash(); bad && (scanned.is_ok() || bad->first <= read)) return bad->second;
  if (!scanned.is_ok()) return scanned;

  const auto projections = fold.projections();
  storage::sha256_hasher hasher;  // over key NUL value NUL, in key order
  for (const auto& [key, value] : projections) {
    hasher.update(key);
    hasher.update(std::string_view("", 1));
    hasher.update(value);
    hasher.update(std::string_view("", 1));
  }
  const std::string digest = storage::to_hex(hasher.finish());

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

    // A projection follows one stream; the last record of that stream is where the stored and the
    // replayed values part.
    auto stream_of = [](const std::string& key) -> std::string {
      namespace stream_kind = core::stream_kind;
      const std::string_view k(key);
      if (k.starts_with("balance/")) return core::stream_of(stream_kind::account, k.substr(8));
      if (k.starts_with("session/")) return core::stream_of(stream_kind::session, k.substr(8));
      if (k.starts_with("bill/")) return core::stream_of(stream_kind::account, k.substr(5, k.rfind('/') - 5));
      return std::string(stream_kind::clearinghouse);
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
    // Since log-6 nothing is stored; an older database may hold balances, bills, settlements and
    // session reports, and each must equal the replayed one.
    PEV_RETURN_IF_ERROR(lg.scan_projections("", [&](std::string_view key, std::string_view value) -> status {
      const auto [at, end] = replayed_of(projections, key, std::string(key) + '\0');
      if (at == end) return mismatch(std::string(key), "(stored, but not in the log)");
      const std::string field = difference(at->second, std::string(value));
      return field.empty() ? status::ok() : mismatch(std::string(key), field);
    }));
    // What a query answers from a snapshot.
    PEV_RETURN_IF_ERROR(compare_snapshot_answers(lg, projections, mismatch));
    out.ok = mismatches.empty();
    j["verified"] = out.ok;
    j["mismatches"] = mismatches;
  }
  // The projections are JSON documents already: they are spliced in, not parsed and printed again.
  std::string balances, bills, statements;
  auto append = [](std::string& list, std::string_view item) {
    if (!list.empty()) list.push_back(',');
    list.append(item);
  };
  for (const auto& [key, value] : projections) {
    if (key.starts_with("balance/")) append(balances, value);
    if (key.starts_with("bill/")) append(bills, value);
    if (key.starts_with("settlement/")) {
      const std::string period = key.substr(std::string("settlement/").size());
      append(statements, R"({"period":")" + period + R"(","entries":)" + value + "}");
    }
  }
  out.json = j.dump();
  out.json.pop_back();  // the closing brace
  out.json += R"(,"balances":[)" + balances + R"(],"bills":[)" + bills + R"(],"settlements":[)" + statements + "]}";

  std::string text = "replayed " + std::to_string(records) + " of " + std::to_string(lg.last_seq().value()) +
                     " records; " + std::to_string(projections.size()) + " projections\ndigest " + digest + "\n";
  if (verify) {
    text += out.ok ? "verify: hash chain intact, every projection matches\n"
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
