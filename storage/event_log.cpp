#include "storage/event_log.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <ctime>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/limits.hpp"

namespace pevledger::storage {
namespace {

constexpr const char* cf_names[] = {"default",  "events",      "streams",   "stream_heads",
                                    "commands", "projections", "snapshots", "intervals"};
enum cf_index {
  cf_default = 0,
  cf_events,
  cf_streams,
  cf_stream_heads,
  cf_commands,
  cf_projections,
  cf_snapshots,
  cf_intervals,
  cf_count
};
constexpr std::string_view watermark_key = "projection_watermark";
// The on-disk format this code reads and writes; any change to keys, column families or the record
// layout gets a new one, and a database of another format is refused, never misread.
constexpr std::string_view format_key = "format";
constexpr std::string_view format_version = "pevledger-log-6";
// Older formats this code reads as they are: log-3 only added record kinds (batched records),
// log-4 events (an EUMD's open sessions) and log-5 events and an anomaly kind (access grants,
// session summaries, interval-length flags), so an older database is a log-6 database that holds
// none of them yet. Log-6 stores no projections (queries render them from the entity); an older
// database's are read by nothing and compared by replay --verify, and upgrading deletes its
// balances and session reports (a writer would leave them stale; issued bills and settlements
// never change) with the format key, in one write.
constexpr std::string_view format_versions_readable[] = {"pevledger-log-2", "pevledger-log-3", "pevledger-log-4",
                                                         "pevledger-log-5"};
// Prefixes of the projections older formats stored for every account and session.
constexpr std::string_view projection_prefixes_dropped[] = {"balance/", "session/"};
void put_be64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (i * 8)) & 0xff));
}
std::uint64_t get_be64(std::string_view s) {
  PEV_ASSERT(s.size() >= 8);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  return v;
}
std::string seq_key(log_seq seq) {
  std::string k;
  put_be64(k, seq.value());
  return k;
}
// A stream's name ends at the first NUL of its index keys (`stream '\0' stream_seq`, and the prefix
// filters that cut there): a name that holds one would read as another stream's, or as none.
// Identifiers hold no control character (the command parser refuses them), so no stream the engine
// names has one; the log refuses to write such a stream and finds none by such a name.
bool valid_stream_name(std::string_view stream) {
  return !stream.empty() && stream.find('\0') == std::string_view::npos;
}
status invalid_stream_name(std::string_view stream) {
  return {errc::usage, "stream name '" + std::string(stream.substr(0, stream.find('\0'))) +
                           "' is empty or holds a NUL byte, which ends a stream's name in the log's keys"};
}
std::string stream_key(std::string_view stream, std::uint64_t stream_seq) {
  PEV_ASSERT(valid_stream_name(stream));  // append refuses the others, and lookups find none
  std::string k(stream);
  k.push_back('\0');
  put_be64(k, stream_seq);
  return k;
}
status io_error(const rocksdb::Status& s, std::string_view what) {
  return {errc::io_error, std::string(what) + ": " + s.ToString()};
}
std::span<const std::uint8_t> as_bytes(const rocksdb::Slice& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// FlatBuffers reads a buffer at its own alignment (8: records hold 64-bit fields), and RocksDB
// hands out values at any address; reading a misaligned record is undefined behaviour (UBSan
// reports it). A misaligned value is copied into `scratch` first, which its caller reuses.
std::span<const std::uint8_t> aligned(const rocksdb::Slice& value, std::vector<std::uint64_t>& scratch) {
  if (reinterpret_cast<std::uintptr_t>(value.data()) % alignof(std::uint64_t) == 0) return as_bytes(value);
  scratch.resize((value.size() + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t));
  std::memcpy(scratch.data(), value.data(), value.size());
  return {reinterpret_cast<const std::uint8_t*>(scratch.data()), value.size()};
}

// Closing a handle can only fail on a handle we never opened; nothing is lost either way.
void ignore_rocksdb(const rocksdb::Status&) {}

// A writer's info log (RocksDB's LOG file in the database directory). RocksDB's own file logger
// ignores a failed write of its file and writes the next line through the same file writer, which
// RocksDB's checks then stop with an assertion ("Assertion `sync_without_flush_called_' failed"):
// a full disk ended an ingest with exit 134 rather than with the failed write's error. This one
// writes each line with write(2) and, once a write fails, writes nothing more: the LOG is for
// people, and a database never depends on it.
class info_log_file final : public rocksdb::Logger {
 public:
  explicit info_log_file(int fd) : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL), fd_(fd) {}
  ~info_log_file() override { close_fd(); }
  info_log_file(const info_log_file&) = delete;
  info_log_file& operator=(const info_log_file&) = delete;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    timeval now{};
    ::gettimeofday(&now, nullptr);
    std::tm local{};
    ::localtime_r(&now.tv_sec, &local);
    char head[64];
    const int head_size = std::snprintf(head, sizeof head, "%04d/%02d/%02d-%02d:%02d:%02d.%06ld ", local.tm_year + 1900,
                                        local.tm_mon + 1, local.tm_mday, local.tm_hour, local.tm_min, local.tm_sec,
                                        static_cast<long>(now.tv_usec));
    std::string line(head, head_size > 0 ? static_cast<std::size_t>(head_size) : 0);
    va_list measure;
    va_copy(measure, ap);
    const int body = std::vsnprintf(nullptr, 0, format, measure);
    va_end(measure);
    if (body > 0) {
      const std::size_t at = line.size();
      line.resize(at + static_cast<std::size_t>(body) + 1);
      std::vsnprintf(line.data() + at, static_cast<std::size_t>(body) + 1, format, ap);
      line.resize(at + static_cast<std::size_t>(body));
    }
    if (line.empty() || line.back() != '\n') line.push_back('\n');
    std::lock_guard lock(mu_);
    for (std::size_t written = 0; fd_ >= 0 && written < line.size();) {
      const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) close_fd();  // a full disk, a file size limit: the log stops here
      else written += static_cast<std::size_t>(n);
    }
  }

  // Opens `dir`/LOG for appending, after moving an older LOG aside as RocksDB does (LOG.old.<micros>;
  // RocksDB deletes the oldest beyond keep_log_file_num). When the file cannot be made, the log
  // writes nothing: that is no reason to refuse the database.
  static std::shared_ptr<rocksdb::Logger> open(const std::string& dir) {
    const std::filesystem::path log = std::filesystem::path(dir) / "LOG";
    std::error_code ec;
    if (std::filesystem::exists(log, ec)) {
      timeval now{};
      ::gettimeofday(&now, nullptr);
      const auto micros = static_cast<std::uint64_t>(now.tv_sec) * 1000000 + static_cast<std::uint64_t>(now.tv_usec);
      std::filesystem::rename(log, std::filesystem::path(dir) / ("LOG.old." + std::to_string(micros)), ec);
    }
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return std::make_shared<info_log_file>(fd);
  }

 protected:
  rocksdb::Status CloseImpl() override {
    std::lock_guard lock(mu_);
    close_fd();
    return rocksdb::Status::OK();
  }

 private:
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  std::mutex mu_;
  int fd_;
};

// Options of a writer of the database at `dir`, which exists: its info log is info_log_file.
void log_info_to(rocksdb::DBOptions& db_options, const std::string& dir) { db_options.info_log = info_log_file::open(dir); }

// "db/" and "db/." name "db": a sibling built as dir + ".creating" must not land inside it.
std::string without_trailing_slash(const std::string& dir) {
  std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
  if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
  return p.string();
}

// A new name is durable once the directory that holds it is synced.
status sync_parent_directory(const std::string& path) {
  std::error_code ec;
  const auto parent = std::filesystem::absolute(path, ec).parent_path();
  const int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    return status(errc::io_error, "syncing " + parent.string());
  }
  ::close(fd);
  return status::ok();
}

// Writers this process has open, by directory: a probe of the LOCK file does not see the locks
// of the process that asks.
std::mutex writers_here_mu;
std::multiset<std::string> writers_here;

std::string canonical_dir(const std::string& dir) {
  std::error_code ec;
  auto path = std::filesystem::weakly_canonical(dir, ec);
  return ec ? dir : path.string();
}


// Puts of one column family whose keys arrive in no useful order (command ids, projection keys,
// stream names), written to a group's batch in key order: each memtable insert then starts from
// the one before it (the column family's one insert hint, see open) instead of at the top of a
// skiplist of random keys. Equal keys keep their order, so the last put of a key still wins.
// Holds one entry per put of one group, which the group's bounds bound.
class key_ordered_puts {
 public:
  // `key` and `value` must outlive write_to; keep() makes them do so.
  void put(std::string_view key, std::string_view value) { puts_.emplace_back(key, value); }
  std::string_view keep(std::string bytes) { return owned_.emplace_back(std::move(bytes)); }
  void write_to(rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* cf) {
    std::stable_sort(puts_.begin(), puts_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [key, value] : puts_)
      batch.Put(cf, rocksdb::Slice(key.data(), key.size()), rocksdb::Slice(value.data(), value.size()));
  }

 private:
  std::vector<std::pair<std::string_view, std::string_view>> puts_;
  std::deque<std::string> owned_;  // a deque: what keep() returned stays where it is
};

struct pending_append {
  append_batch batch;
  std::size_t bytes = 0;  // what it adds to its group's WriteBatch, estimated: bounds and sizes the group
  std::promise<result<append_receipt>> done;
};

}  // namespace

// A group sealed into one WriteBatch, waiting for (or in) its synced write.
struct sealed_group {
  rocksdb::WriteBatch batch;
  std::vector<std::unique_ptr<pending_append>> appends;
  std::vector<append_receipt> receipts;
  log_seq last;
  digest last_hash{};
};

// Group commit runs as a two-stage pipeline: the sealer assigns sequences, builds and hashes
// records into a WriteBatch while the syncer writes and fsyncs the group before it. Sealed groups
// wait in a queue of at most sealed_groups_max, so memory stays bounded.
constexpr std::size_t sealed_groups_max = 2;

struct event_log::impl {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  log_options options;
  bool read_only = false;
  bool secondary = false;   // a reader that follows a writer (RocksDB secondary instance)
  std::string writer_dir;   // a writer: its directory, as registered in writers_here
  std::string format;  // what the database holds

  // Durable head; written by the syncer after each successful group commit.
  mutable std::mutex head_mu;
  log_seq head_seq{0};
  digest head_hash{};

  std::mutex queue_mu;
  std::condition_variable queue_not_empty;
  std::condition_variable queue_not_full;
  std::deque<std::unique_ptr<pending_append>> queue;
  bool stopping = false;
  bool failed = false;  // a write failed: every later append fails too

  std::mutex sealed_mu;
  std::condition_variable sealed_changed;
  std::deque<std::unique_ptr<sealed_group>> sealed;
  bool sealer_done = false;

  // Owned by the sealer: the head including sealed but not yet durable groups, and stream heads.
  log_seq sealed_seq{0};
  digest sealed_hash{};
  // stream -> last stream_seq and the global sequence of that event (0: not known, it is durable).
  struct stream_head_entry {
    std::uint64_t stream_seq = 0;
    std::uint64_t global_seq = 0;
  };
  std::unordered_map<std::string, stream_head_entry> stream_heads;
  flatbuffers::FlatBufferBuilder fbb{4096};

  // Batches already written, handed back so that the thread that built them frees them (in its
  // next `append`). glibc's per-thread caches only serve a thread the memory it freed itself: when
  // the syncer freed what the ingest thread allocated, every allocation of the ingest thread went
  // the slow way through the shared heap (docs/performance.md). Holds at most the batches written
  // between two appends of the caller: the groups sealed or queued, since `append` blocks beyond.
  std::mutex spent_mu;
  std::vector<append_batch> spent;
  std::thread sealer;
  std::thread syncer;

  ~impl() {
    {
      std::lock_guard lock(queue_mu);
      stopping = true;
    }
    queue_not_empty.notify_all();
    queue_not_full.notify_all();
    if (sealer.joinable()) sealer.join();
    if (syncer.joinable()) syncer.join();
    // Flush memtables on a clean close so the next open need not replay the whole WAL. Nothing is
    // lost if it fails: the synced WAL still holds every write. A reader has nothing to flush.
    // After a failed write nothing more is written: the flush would write table files to the
    // disk that just refused a write, and RocksDB meets a second failure of a file it already saw
    // fail with an assertion. The next open replays the WAL instead.
    if (db && !cfs.empty() && !read_only && !has_failed()) ignore_rocksdb(db->Flush(rocksdb::FlushOptions(), cfs));
    close_db();
    if (!writer_dir.empty()) {
      std::lock_guard lock(writers_here_mu);
      writers_here.erase(writers_here.find(writer_dir));
    }
  }

  void close_db() {
    for (auto* cf : cfs)
      if (db) ignore_rocksdb(db->DestroyColumnFamilyHandle(cf));
    cfs.clear();
    db.reset();
  }

  status find_head();
  status check_format(const std::string& dir, bool writing, bool upgrade);

  bool has_failed() {
    std::lock_guard lock(queue_mu);
    return failed;
  }

  // Waits until the syncer has written every sealed group.
  void drain_sealed() {
    std::unique_lock lock(sealed_mu);
    sealed_changed.wait(lock, [&] { return sealed.empty(); });
  }

  // The cached head of a stream (loaded from the store on a miss), to be advanced by the caller.
  result<stream_head_entry*> stream_head(const std::string& stream, bool first_of_stream = false) {
    if (auto it = stream_heads.find(stream); it != stream_heads.end()) {
      PEV_ASSERT(!first_of_stream || it->second.stream_seq == 0);
      return &it->second;
    }
    if (first_of_stream) return &stream_heads.emplace(stream, stream_head_entry{}).first->second;
    std::string value;
    auto s = db->Get(rocksdb::ReadOptions(), cfs[cf_stream_heads], stream, &value);
    std::uint64_t head = 0;
    if (s.ok()) {
      if (value.size() != 8) return status(errc::corruption, "stream head of '" + stream + "' is malformed");
      head = get_be64(value);
    } else if (!s.IsNotFound()) {
      return io_error(s, "reading stream heads");
    }
    return &stream_heads.emplace(stream, stream_head_entry{head, 0}).first->second;
  }

  // The global sequence of a durable stream event.
  result<log_seq> stream_event_seq(std::string_view stream, std::uint64_t stream_seq) {
    std::string value;
    auto s = db->Get(rocksdb::ReadOptions(), cfs[cf_streams], stream_key(stream, stream_seq), &value);
    if (!s.ok()) return io_error(s, "reading the stream index");
    if (value.size() != 8) return status(errc::corruption, "stream index entry is malformed");
    return log_seq(get_be64(value));
  }

  // Assigns positions and hashes to a group of appends and packs them into one WriteBatch.
  status seal(sealed_group& g) {
    // Forget the stream heads only between groups, and only once everything they knew is durable:
    // mid-group, the heads of streams this group already moved exist nowhere else. The cache
    // exceeds its bound by at most the streams of one group.
    if (stream_heads.size() >= options.stream_heads_cached_max) {
      drain_sealed();
      stream_heads.clear();
    }
    log_seq seq = sealed_seq;
    digest hash = sealed_hash;
    bool has_projections = false;
    std::unordered_map<std::string_view, std::uint64_t> touched;  // stream heads this group moves
    key_ordered_puts stream_index, commands, projections, interval_index, snapshots, heads;
    g.receipts.reserve(g.appends.size());
    for (auto& p : g.appends) {
      const log_seq first(seq.value() + 1);
      for (auto& cmd : p->batch.commands) {
        const log_seq cmd_first(seq.value() + 1);
        PEV_ASSERT(cmd.events.size() <= limits::events_per_command_max);
        for (auto& ev : cmd.events) {
          auto head = stream_head(ev.stream, ev.first_of_stream);
          if (!head) return head.error();
          const std::uint64_t stream_seq = ++head.value()->stream_seq;
          seq = log_seq(seq.value() + 1);
          head.value()->global_seq = seq.value();
          touched[ev.stream] = stream_seq;
          hash = build_record(fbb, {seq, stream_seq, hash}, ev.stream, cmd.at, cmd.command_id, ev.body);
          g.batch.Put(cfs[cf_events], seq_key(seq),
                      rocksdb::Slice(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()));
          stream_index.put(stream_index.keep(stream_key(ev.stream, stream_seq)), stream_index.keep(seq_key(seq)));
        }
        if (!cmd.indexed) continue;
        std::string outcome;
        put_be64(outcome, cmd_first.value());
        const auto count = static_cast<std::uint32_t>(seq.value() + 1 - cmd_first.value());
        for (int i = 3; i >= 0; --i) outcome.push_back(static_cast<char>((count >> (i * 8)) & 0xff));
        commands.put(cmd.command_id, commands.keep(std::move(outcome)));
      }
      for (auto& put : p->batch.projections) {
        projections.put(put.key, put.value);
        has_projections = true;
      }
      for (auto& put : p->batch.intervals) interval_index.put(put.key, put.value);
      for (auto& snap : p->batch.snapshots) {
        // A snapshot covers events already sealed: the head of its stream, or an earlier event.
        auto head = stream_head(snap.stream);
        if (!head) return head.error();
        // It covers every event of its stream appended so far.
        PEV_ASSERT(snap.stream_seq >= 1 && snap.stream_seq == head.value()->stream_seq);
        log_seq covered(head.value()->global_seq);
        if (covered.value() == 0) {
          auto global = stream_event_seq(snap.stream, snap.stream_seq);
          if (!global) return global.error();
          covered = global.value();
        }
        std::string value;
        value.reserve(8 + snap.state.size());
        put_be64(value, covered.value());
        value.append(snap.state);
        snapshots.put(snapshots.keep(stream_key(snap.stream, snap.stream_seq)), snapshots.keep(std::move(value)));
      }
      g.receipts.push_back({first, seq});
    }
    for (const auto& [stream, head] : touched) {
      std::string value;
      put_be64(value, head);
      heads.put(stream, heads.keep(std::move(value)));
    }
    stream_index.write_to(g.batch, cfs[cf_streams]);
    commands.write_to(g.batch, cfs[cf_commands]);
    projections.write_to(g.batch, cfs[cf_projections]);
    interval_index.write_to(g.batch, cfs[cf_intervals]);
    snapshots.write_to(g.batch, cfs[cf_snapshots]);
    heads.write_to(g.batch, cfs[cf_stream_heads]);
    if (has_projections) g.batch.Put(cfs[cf_default], std::string(watermark_key), seq_key(seq));
    g.last = seq;
    g.last_hash = hash;
    sealed_seq = seq;
    sealed_hash = hash;
    return status::ok();
  }

  void fail_group(sealed_group& g, const status& why) {
    for (auto& p : g.appends) p->done.set_value(why);
  }

  void sealer_loop() {
    for (;;) {
      auto g = std::make_unique<sealed_group>();
      std::size_t bytes = 0;
      {
        std::unique_lock lock(queue_mu);
        queue_not_empty.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) break;  // stopping, and everything queued is sealed
        while (!queue.empty() && g->appends.size() < limits::log_batch_requests_max &&
               (g->appends.empty() || bytes + queue.front()->bytes <= limits::log_batch_bytes_max)) {
          bytes += queue.front()->bytes;
          g->appends.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      // Sized once: grown by doubling, a group's batch of tens of megabytes was copied and faulted
      // in several times over.
      g->batch = rocksdb::WriteBatch(bytes + bytes / 8);
      queue_not_full.notify_all();
      if (has_failed()) {
        fail_group(*g, status(errc::log_closed, "the log stopped after a failed write"));
        continue;
      }
      if (status s = seal(*g); !s.is_ok()) {
        {
          std::lock_guard lock(queue_mu);
          failed = true;
        }
        fail_group(*g, s);
        continue;
      }
      std::unique_lock lock(sealed_mu);
      sealed_changed.wait(lock, [&] { return sealed.size() < sealed_groups_max; });
      sealed.push_back(std::move(g));
      sealed_changed.notify_all();
    }
    std::lock_guard lock(sealed_mu);
    sealer_done = true;
    sealed_changed.notify_all();
  }

  void syncer_loop() {
    for (;;) {
      std::unique_ptr<sealed_group> g;
      {
        std::unique_lock lock(sealed_mu);
        sealed_changed.wait(lock, [&] { return sealer_done || !sealed.empty(); });
        if (sealed.empty()) return;
        g = std::move(sealed.front());
      }
      // A group sealed after a failed write chains on records that never landed: refuse it.
      status result_status = has_failed() ? status(errc::log_closed, "the log stopped after a failed write")
                                          : status::ok();
      if (result_status.is_ok()) {
        rocksdb::WriteOptions wo;
        wo.sync = options.sync;
        if (auto s = db->Write(wo, &g->batch); !s.ok()) {
          result_status = io_error(s, "group commit");
          std::lock_guard lock(queue_mu);
          failed = true;
        }
      }
      if (result_status.is_ok()) {
        {
          std::lock_guard lock(head_mu);
          head_seq = g->last;
          head_hash = g->last_hash;
        }
        PEV_ASSERT(g->receipts.size() == g->appends.size());
        for (std::size_t i = 0; i < g->appends.size(); ++i) g->appends[i]->done.set_value(g->receipts[i]);
      } else {
        fail_group(*g, result_status);
      }
      {
        std::lock_guard lock(spent_mu);
        for (auto& p : g->appends) spent.push_back(std::move(p->batch));
      }
      std::lock_guard lock(sealed_mu);
      sealed.pop_front();
      sealed_changed.notify_all();
    }
  }

  result<stored_record> read(log_seq seq) const {
    std::string value;
    auto s = db->Get(rocksdb::ReadOptions(), cfs[cf_events], seq_key(seq), &value);
    if (s.IsNotFound()) return status(errc::corruption, "record " + std::to_string(seq.value()) + " is missing");
    if (!s.ok()) return io_error(s, "reading record " + std::to_string(seq.value()));
    stored_record out;
    out.bytes.assign(value.begin(), value.end());
    PEV_RETURN_IF_ERROR(verify_record(out.bytes, seq));
    return out;
  }
};

event_log::event_log(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
event_log::~event_log() = default;

namespace {

// The stream of a `stream '\0' stream_seq` key, '\0' included: the unit that lookups of one
// entity's events and snapshots stay within. With it, RocksDB keeps a prefix bloom filter per table
// file, and a seek for a stream that a file does not hold skips that file without reading a block.
// Without it, activating an entity that has no snapshot landed on the next stream's snapshot, often
// a multi-megabyte utility snapshot, and decompressed it (docs/design.md, "Residency").
class stream_prefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "pevledger.stream_prefix.v1"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const auto* end = static_cast<const char*>(std::memchr(key.data(), '\0', key.size()));
    PEV_ASSERT(end != nullptr);  // InDomain holds
    return {key.data(), static_cast<std::size_t>(end - key.data()) + 1};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return std::memchr(key.data(), '\0', key.size()) != nullptr;
  }
};

// Reads of one stream's keys: only table files whose prefix filter admits the stream are read.
rocksdb::ReadOptions within_stream() {
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  return ro;
}

// Reads that cross streams must not use the prefix filters.
rocksdb::ReadOptions across_streams() {
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  return ro;
}

}  // namespace

namespace {

// A reader's RocksDB info log: a reader writes no file, so RocksDB's chatter goes nowhere.
class no_info_log final : public rocksdb::Logger {
 public:
  no_info_log() : rocksdb::Logger(rocksdb::InfoLogLevel::FATAL_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

// Column family options: the same for the writer and for readers (readers use the prefix
// extractors and filters too).
std::vector<rocksdb::ColumnFamilyDescriptor> column_families(const std::shared_ptr<rocksdb::Cache>& block_cache) {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : cf_names) {
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.write_buffer_size = std::string_view(name) == "events" ? 64u << 20 : 16u << 20;
    // Records are keyed by ascending sequence: each insert lands right after the last one, so the
    // memtable starts its search there instead of at the top of the skiplist (one hint, as every
    // key shares its upper four bytes until four billion records).
    if (std::string_view(name) == "events")
      cf_options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
    // The other column families' keys arrive in no useful order (command ids, projection keys,
    // stream names; a group's streams and interval identities interleave), but a group writes
    // each column family's puts in key order (key_ordered_puts), so one hint for the whole column
    // family (an empty prefix) starts each insert next to the one before: O(log D) comparisons
    // for D keys between the two, instead of a search from the top of the skiplist (about 13,700
    // instructions: 34 comparisons and the splice recomputed). One hint per stream, tried before,
    // cost a full search and a 220-byte splice for each stream's first key in each memtable.
    else
      cf_options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(0));
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = block_cache;
    // Ingest is CPU-bound on small machines: block checksums by XXH3 and LZ4 compression cost a
    // fraction of crc32c (this RocksDB is built without its SSE 4.2 path) and snappy.
    table.checksum = rocksdb::kXXH3;
    cf_options.compression = rocksdb::kLZ4Compression;
    // Flushes write L0 and compaction rewrites L0 into L1 soon after: compressing them only to
    // decompress them again cost half of every flush (callgrind, the fleet month's first 120,000
    // lines: 1.27 G instructions of flushing instead of 2.37 G). Deeper levels, where the log's bulk
    // ends up, are compressed once, by compaction. Disk: L0 and L1 are held uncompressed, a few
    // hundred megabytes a column family at most (L1's target size).
    cf_options.compression_per_level = {rocksdb::kNoCompression, rocksdb::kNoCompression, rocksdb::kLZ4Compression,
                                        rocksdb::kLZ4Compression, rocksdb::kLZ4Compression, rocksdb::kLZ4Compression,
                                        rocksdb::kLZ4Compression};
    if (std::string_view(name) == "stream_heads" || std::string_view(name) == "commands" ||
        std::string_view(name) == "intervals") {
      // Point lookups that mostly miss (a new stream, a new command id, a new interval): a bloom
      // filter answers them.
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      // The memtables too: every ingested line looks up its id, every interval its identity.
      cf_options.memtable_whole_key_filtering = true;
      cf_options.memtable_prefix_bloom_size_ratio = 0.02;
    }
    if (std::string_view(name) == "streams" || std::string_view(name) == "snapshots") {
      cf_options.prefix_extractor = std::make_shared<stream_prefix>();
      table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      table.whole_key_filtering = false;
    }
    if (std::string_view(name) == "snapshots") {
      // Large snapshots (a utility's lists its accounts) live in blob files: compactions and
      // seeks then move references, not megabytes.
      cf_options.enable_blob_files = true;
      cf_options.min_blob_size = limits::log_snapshot_inline_bytes_max;
    }
    cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    descriptors.emplace_back(name, cf_options);
  }
  return descriptors;
}

rocksdb::DBOptions writer_options(const log_options& options) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = options.create_if_missing;
  db_options.max_background_jobs = 2;
  // One thread writes (the syncer); insert hints (below) work only without concurrent inserts.
  db_options.allow_concurrent_memtable_write = false;
  // RocksDB's memory has a bound of its own, whatever the number of column families: memtables
  // share log_memtables_bytes_max (flushed early when they reach it) and blocks share one cache.
  db_options.db_write_buffer_size = limits::log_memtables_bytes_max;
  if (options.env != nullptr) db_options.env = options.env;
  return db_options;
}

// Opening a reader can race with the writer deleting a file the reader just listed (a WAL after a
// flush, a table file after a compaction): the open fails with a missing file and succeeds when
// tried again. Bounded, so that a database that really lost a file still fails.
constexpr int reader_open_attempts_max = 8;

// Whether a writer has the database open: this process, or another one that holds RocksDB's lock
// (an fcntl write lock on LOCK, which F_GETLK reports without taking it).
bool writer_active(const std::string& dir) {
  {
    std::lock_guard lock(writers_here_mu);
    if (writers_here.count(canonical_dir(dir)) != 0) return true;
  }
  const int fd = ::open((std::filesystem::path(dir) / "LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // no LOCK file: no writer ever ran here, or a copy without one
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

// A reader opens the database strictly (RocksDB's read-only mode: a missing or damaged file is an
// error) unless a writer has it open or the reader will follow one: then as a secondary instance,
// which tolerates the writer's flushes and compactions, but which also recovers, without a word,
// the newest state whose files are all present. A live writer has opened every file of its
// database, so a secondary beside one reads what is there.
status open_reader(const std::string& dir, bool follow_writer,
                   const std::vector<rocksdb::ColumnFamilyDescriptor>& descriptors,
                   std::vector<rocksdb::ColumnFamilyHandle*>& cfs, std::unique_ptr<rocksdb::DB>& db,
                   bool& secondary) {
  // Without a CURRENT file there is no database; the reader must not go on to look for one.
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return status(errc::io_error, "no database at '" + dir + "' (not a directory)");
  if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec))
    return status(errc::io_error, "no database at '" + dir + "' (no CURRENT file)");
  rocksdb::DBOptions db_options;
  db_options.info_log = std::make_shared<no_info_log>();
  db_options.max_open_files = -1;  // every table file stays open: a writer may delete it later
  db_options.stats_dump_period_sec = 0;
  db_options.stats_persist_period_sec = 0;
  // The secondary's own directory holds only its info log, which goes nowhere: it is never created.
  const std::string secondary_path = (std::filesystem::temp_directory_path(ec) / "pevledger-reader").string();
  rocksdb::Status s;
  for (int attempt = 0; attempt < reader_open_attempts_max; ++attempt) {
    rocksdb::DB* raw = nullptr;
    cfs.clear();
    secondary = follow_writer || writer_active(dir);
    s = secondary ? rocksdb::DB::OpenAsSecondary(db_options, dir, secondary_path, descriptors, &cfs, &raw)
                  : rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &cfs, &raw);
    if (s.ok()) {
      db.reset(raw);
      return status::ok();
    }
    // Only a secondary races with a writer's deletions; a strict open that misses a file fails.
    if (!secondary) break;
    if (!s.IsPathNotFound() && !(s.IsIOError() && s.ToString().find("No such file") != std::string::npos)) break;
  }
  if (s.IsInvalidArgument() && s.ToString().find("Column family not found") != std::string::npos)
    return status(errc::corruption, dir + " is not a " + std::string(format_version) + " database (" + s.ToString() + ")");
  if (s.IsCorruption()) return status(errc::corruption, "opening " + dir + " to read: " + s.ToString());
  return io_error(s, "opening " + dir + " to read");
}

// Makes a new, empty database at `dir` (missing or empty) whole or not at all: it is created
// under a name of its own, given its format, closed and renamed into place, so that a writer
// killed while it creates leaves no half-made database behind, only `dir.creating`, which the next
// creation clears.
status create_database(const std::string& dir_given, const std::vector<rocksdb::ColumnFamilyDescriptor>& descriptors) {
  const std::string dir = without_trailing_slash(dir_given);
  const std::string making = dir + ".creating";
  std::error_code ec;
  std::filesystem::remove_all(making, ec);
  if (ec) return status(errc::io_error, "clearing " + making + ": " + ec.message());
  log_options options;
  rocksdb::DBOptions db_options = writer_options(options);
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.error_if_exists = true;
  std::filesystem::create_directories(making, ec);
  if (ec) return status(errc::io_error, "creating " + making + ": " + ec.message());
  log_info_to(db_options, making);
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, making, descriptors, &cfs, &raw);
  if (!s.ok()) return io_error(s, "creating " + dir);
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Put(wo, cfs[cf_default], std::string(format_key), std::string(format_version));
  for (auto* cf : cfs) ignore_rocksdb(db->DestroyColumnFamilyHandle(cf));
  if (s.ok()) s = db->Close();
  db.reset();
  if (!s.ok()) return io_error(s, "creating " + dir);
  std::filesystem::rename(making, dir, ec);  // over an empty directory, or to a new name
  if (ec) return status(errc::io_error, "renaming " + making + " to " + dir + ": " + ec.message());
  return sync_parent_directory(dir);
}

}  // namespace

std::string_view log_format_written() { return format_version; }

status event_log::impl::find_head() {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[cf_events]));
  it->SeekToLast();
  if (!it->status().ok()) return io_error(it->status(), "finding the log head");
  if (it->Valid()) {
    const log_seq last(get_be64(it->key().ToStringView()));
    std::vector<std::uint64_t> scratch;
    const auto bytes = aligned(it->value(), scratch);
    PEV_RETURN_IF_ERROR(verify_record(bytes, last));
    std::lock_guard lock(head_mu);
    head_seq = last;
    head_hash = record_hash(*schema::GetRecord(bytes.data()));
  }
  return status::ok();
}

// Reads the format key; a database that has none and no record is new (or was created by a
// writer that stopped before it wrote the key).
status event_log::impl::check_format(const std::string& dir, bool writing, bool upgrade) {
  std::string stored;
  auto s = db->Get(rocksdb::ReadOptions(), cfs[cf_default], std::string(format_key), &stored);
  if (!s.ok() && !s.IsNotFound()) return io_error(s, "reading the format version");
  const bool readable_older = s.ok() && std::find(std::begin(format_versions_readable),
                                                  std::end(format_versions_readable), stored) !=
                                            std::end(format_versions_readable);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[cf_events]));
    it->SeekToFirst();
    if (!it->status().ok()) return io_error(it->status(), "reading the log");
    if (it->Valid()) return status(errc::corruption, dir + " holds records but no format version: not a pevledger database");
    format = std::string(format_version);
    if (!writing) return status::ok();  // an empty log reads as one of this format
  } else if (stored == format_version) {
    format = stored;
    return status::ok();
  } else if (!readable_older) {
    return status(errc::corruption, dir + " holds format '" + stored + "'; this pevledger reads " +
                                        std::string(format_version) + " and pevledger-log-5 down to pevledger-log-2");
  } else {
    format = stored;
    if (!writing) return status::ok();
    if (!upgrade)
      return status(errc::usage, dir + " holds format '" + stored + "', which this pevledger reads but does not extend; " +
                                     "`pevledger upgrade --db " + dir + "` marks it " + std::string(format_version));
  }
  rocksdb::WriteBatch marked;
  if (readable_older)
    for (std::string_view prefix : projection_prefixes_dropped) {
      std::string end(prefix);
      end.back() = static_cast<char>(end.back() + 1);  // '/' + 1: the first key past the prefix
      s = marked.DeleteRange(cfs[cf_projections], std::string(prefix), end);
      if (!s.ok()) return io_error(s, "dropping stored projections");
    }
  s = marked.Put(cfs[cf_default], std::string(format_key), std::string(format_version));
  if (!s.ok()) return io_error(s, "writing the format version");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &marked);
  if (!s.ok()) return io_error(s, "writing the format version");
  format = std::string(format_version);
  return status::ok();
}

result<std::unique_ptr<event_log>> event_log::open(const std::string& dir, log_options options) {
  auto p = std::make_unique<impl>();
  p->options = options;
  p->read_only = options.access == log_access::read_only;
  const auto descriptors = column_families(rocksdb::NewLRUCache(options.block_cache_bytes));
  if (p->read_only) {
    PEV_RETURN_IF_ERROR(open_reader(dir, options.follow_writer, descriptors, p->cfs, p->db, p->secondary));
  } else {
    // A writer creates a database only where there is nothing: a directory that holds files but
    // no CURRENT, or a MANIFEST that lost column families, is a damaged database, and creating a
    // new one over it would hide what it held.
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
      return status(errc::io_error, "'" + dir + "' is not a directory");
    const bool nothing_there = !std::filesystem::exists(dir, ec) || std::filesystem::is_empty(dir, ec);
    if (!nothing_there && !std::filesystem::exists(std::filesystem::path(dir) / "CURRENT", ec))
      return status(errc::corruption, "'" + dir + "' holds files but no database (no CURRENT file): not creating one over them");
    if (nothing_there) {
      if (!options.create_if_missing) return status(errc::io_error, "no database at '" + dir + "'");
      PEV_RETURN_IF_ERROR(create_database(dir, descriptors));
    }
    rocksdb::DBOptions db_options = writer_options(options);
    db_options.create_if_missing = false;
    log_info_to(db_options, dir);
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(db_options, dir, descriptors, &p->cfs, &raw);
    if (!s.ok() && s.IsInvalidArgument() && s.ToString().find("Column family not found") != std::string::npos)
      return status(errc::corruption, dir + " is not a " + std::string(format_version) + " database (" + s.ToString() + ")");
    if (!s.ok()) return io_error(s, "opening " + dir);
    p->db.reset(raw);
    p->writer_dir = canonical_dir(dir);
    std::lock_guard lock(writers_here_mu);
    writers_here.insert(p->writer_dir);
  }
  PEV_ASSERT(p->cfs.size() == cf_count);
  PEV_RETURN_IF_ERROR(p->check_format(dir, !p->read_only, options.upgrade_format));
  // The head is the last record; it must verify, or the log is not safe to extend.
  PEV_RETURN_IF_ERROR(p->find_head());
  if (p->read_only) return std::unique_ptr<event_log>(new event_log(std::move(p)));
  p->sealed_seq = p->head_seq;
  p->sealed_hash = p->head_hash;
  p->sealer = std::thread([raw_impl = p.get()] { raw_impl->sealer_loop(); });
  p->syncer = std::thread([raw_impl = p.get()] { raw_impl->syncer_loop(); });
  return std::unique_ptr<event_log>(new event_log(std::move(p)));
}

std::future<result<append_receipt>> event_log::append(append_batch batch) {
  if (impl_->read_only) {
    std::promise<result<append_receipt>> refused;
    refused.set_value(status(errc::log_closed, "the log is open read-only"));
    return refused.get_future();
  }
  {
    std::vector<append_batch> written;
    {
      std::lock_guard lock(impl_->spent_mu);
      written.swap(impl_->spent);
    }
  }  // freed here, on the caller's thread
  // Refused alone, before it is queued: the log stays open for the batches after it.
  auto refuse = [](status why) {
    std::promise<result<append_receipt>> refused;
    refused.set_value(std::move(why));
    return refused.get_future();
  };
  for (const auto& c : batch.commands)
    for (const auto& e : c.events)
      if (!valid_stream_name(e.stream)) return refuse(invalid_stream_name(e.stream));
  for (const auto& snap : batch.snapshots)
    if (!valid_stream_name(snap.stream)) return refuse(invalid_stream_name(snap.stream));
  auto pending = std::make_unique<pending_append>();
  // A WriteBatch entry costs its key and value and a few bytes of framing. An event is its record
  // (body, stream, command id, and about 160 bytes of sequences and hashes), its stream index entry
  // and its share of the stream heads.
  constexpr std::size_t entry_framing = 8;
  for (const auto& c : batch.commands) {
    for (const auto& e : c.events) pending->bytes += e.body.size() + 2 * e.stream.size() + c.command_id.size() + 224;
    if (c.indexed) pending->bytes += c.command_id.size() + 12 + entry_framing;
  }
  for (const auto& p : batch.projections) pending->bytes += p.key.size() + p.value.size() + entry_framing;
  for (const auto& i : batch.intervals) pending->bytes += i.key.size() + i.value.size() + entry_framing;
  // A snapshot: key stream NUL stream_seq, value covered sequence then state.
  for (const auto& snap : batch.snapshots) pending->bytes += snap.stream.size() + 9 + 8 + snap.state.size() + entry_framing;
  pending->batch = std::move(batch);
  auto future = pending->done.get_future();
  {
    std::unique_lock lock(impl_->queue_mu);
    impl_->queue_not_full.wait(lock, [&] {
      return impl_->stopping || impl_->queue.size() < limits::log_queue_requests_max;
    });
    if (impl_->stopping || impl_->failed) {
      pending->done.set_value(status(errc::log_closed, "the log is closed or stopped after a failed write"));
      return future;
    }
    impl_->queue.push_back(std::move(pending));
  }
  impl_->queue_not_empty.notify_one();
  return future;
}

result<append_receipt> event_log::append_and_wait(append_batch batch) { return append(std::move(batch)).get(); }

log_seq event_log::last_seq() const {
  std::lock_guard lock(impl_->head_mu);
  return impl_->head_seq;
}

digest event_log::last_hash() const {
  std::lock_guard lock(impl_->head_mu);
  return impl_->head_hash;
}

const std::string& event_log::format() const { return impl_->format; }

bool event_log::read_only() const { return impl_->read_only; }

result<log_seq> event_log::catch_up() {
  impl& m = *impl_;
  if (!m.read_only) return last_seq();
  if (m.secondary) {
    if (auto s = m.db->TryCatchUpWithPrimary(); !s.ok()) return io_error(s, "catching up with the writer");
  } else {
    // A strict reader cannot catch up: it opens again, as a secondary if a writer now runs.
    const std::string dir = m.db->GetName();
    m.close_db();
    const auto descriptors = column_families(rocksdb::NewLRUCache(m.options.block_cache_bytes));
    PEV_RETURN_IF_ERROR(open_reader(dir, m.options.follow_writer, descriptors, m.cfs, m.db, m.secondary));
    PEV_RETURN_IF_ERROR(m.check_format(dir, false, false));
  }
  PEV_RETURN_IF_ERROR(m.find_head());
  return last_seq();
}

result<std::optional<command_outcome>> event_log::find_command(std::string_view id) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[cf_commands], rocksdb::Slice(id.data(), id.size()),
                          &value);
  if (s.IsNotFound()) return std::optional<command_outcome>();
  if (!s.ok()) return io_error(s, "reading the command index");
  if (value.size() != 12) return status(errc::corruption, "command index entry for '" + std::string(id) + "' is malformed");
  command_outcome out;
  out.first = log_seq(get_be64(value));
  for (int i = 8; i < 12; ++i) out.events = (out.events << 8) | static_cast<std::uint8_t>(value[i]);
  return std::optional<command_outcome>(out);
}

result<std::optional<std::string>> event_log::get_projection(std::string_view key) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[cf_projections], rocksdb::Slice(key.data(), key.size()),
                          &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return io_error(s, "reading a projection");
  return std::optional<std::string>(std::move(value));
}

status event_log::scan_projections(std::string_view prefix,
                                   const std::function<status(std::string_view, std::string_view)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cfs[cf_projections]));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    if (key.substr(0, prefix.size()) != prefix) break;
    PEV_RETURN_IF_ERROR(visit(key, it->value().ToStringView()));
  }
  if (!it->status().ok()) return io_error(it->status(), "scanning projections");
  return status::ok();
}

result<log_seq> event_log::projection_watermark() const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[cf_default], std::string(watermark_key), &value);
  if (s.IsNotFound()) return log_seq(0);
  if (!s.ok()) return io_error(s, "reading the projection watermark");
  if (value.size() != 8) return status(errc::corruption, "projection watermark is malformed");
  return log_seq(get_be64(value));
}

result<stored_record> event_log::read(log_seq seq) const { return impl_->read(seq); }

status event_log::scan(log_seq first, log_seq last, const std::function<status(const schema::Record&)>& visit) const {
  return scan_bytes(first, last, [&](const schema::Record& r, std::span<const std::uint8_t>) { return visit(r); });
}

status event_log::scan_bytes(
    log_seq first, log_seq last,
    const std::function<status(const schema::Record&, std::span<const std::uint8_t>)>& visit,
    bool check_hashes) const {
  if (first.value() == 0) first = log_seq(1);
  if (last < first) return status::ok();
  digest prev{};
  if (first.value() > 1) {
    auto before = impl_->read(log_seq(first.value() - 1));
    if (!before) return before.error();
    prev = record_hash(before->record());
  }
  rocksdb::ReadOptions ro;
  ro.readahead_size = 4u << 20;
  ro.fill_cache = false;  // a scan reads each block once: caching it only evicts what point reads need
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cfs[cf_events]));
  std::uint64_t expected = first.value();
  std::vector<std::uint64_t> scratch;  // a misaligned record's copy, reused
  for (it->Seek(seq_key(first)); it->Valid() && expected <= last.value(); it->Next(), ++expected) {
    const std::uint64_t key_seq = get_be64(it->key().ToStringView());
    if (key_seq != expected)
      return {errc::corruption, "record " + std::to_string(expected) + " is missing (next stored is " +
                                    std::to_string(key_seq) + ")"};
    const auto bytes = aligned(it->value(), scratch);
    PEV_RETURN_IF_ERROR(check_hashes ? verify_record(bytes, log_seq(expected))
                                     : verify_record_structure(bytes, log_seq(expected)));
    const schema::Record* r = schema::GetRecord(bytes.data());
    if (record_prev_hash(*r) != prev)
      return {errc::corruption, "record " + std::to_string(expected) + ": previous hash breaks the chain"};
    prev = record_hash(*r);
    PEV_RETURN_IF_ERROR(visit(*r, bytes));
  }
  if (!it->status().ok()) return io_error(it->status(), "scanning the log");
  if (expected <= last.value() && expected <= last_seq().value())
    return {errc::corruption, "record " + std::to_string(expected) + " is missing"};
  return status::ok();
}

result<std::vector<log_seq>> event_log::stream_records(std::string_view stream) const {
  std::vector<log_seq> out;
  if (!valid_stream_name(stream)) return out;  // no such stream can be written
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(within_stream(), impl_->cfs[cf_streams]));
  const std::string prefix = std::string(stream) + '\0';
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    if (key.substr(0, prefix.size()) != prefix) break;
    out.emplace_back(get_be64(it->value().ToStringView()));
  }
  if (!it->status().ok()) return io_error(it->status(), "reading stream index");
  return out;
}

status event_log::scan_stream(std::string_view stream, std::uint64_t after_stream_seq, log_seq until,
                              const std::function<status(const schema::Record&)>& visit) const {
  if (!valid_stream_name(stream)) return status::ok();  // no such stream can be written
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(within_stream(), impl_->cfs[cf_streams]));
  const std::string prefix = std::string(stream) + '\0';
  std::uint64_t expected = after_stream_seq + 1;
  for (it->Seek(stream_key(stream, expected)); it->Valid(); it->Next(), ++expected) {
    const auto key = it->key().ToStringView();
    if (key.substr(0, prefix.size()) != prefix) break;
    if (get_be64(key.substr(prefix.size())) != expected)
      return status(errc::corruption, "stream '" + std::string(stream) + "' misses event " + std::to_string(expected));
    const auto value = it->value().ToStringView();
    if (value.size() != 8) return status(errc::corruption, "stream index entry is malformed");
    const log_seq global(get_be64(value));
    if (global > until) break;
    auto stored = impl_->read(global);
    if (!stored) return stored.error();
    const schema::Record& r = stored->record();
    if (r.stream()->string_view() != stream || r.stream_seq() != expected)
      return status(errc::corruption, "record " + std::to_string(global.value()) + " is not event " +
                                          std::to_string(expected) + " of stream '" + std::string(stream) + "'");
    PEV_RETURN_IF_ERROR(visit(r));
  }
  if (!it->status().ok()) return io_error(it->status(), "reading the stream index");
  return status::ok();
}

result<std::uint64_t> event_log::stream_length(std::string_view stream) const {
  if (!valid_stream_name(stream)) return std::uint64_t{0};  // no such stream can be written
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[cf_stream_heads],
                          rocksdb::Slice(stream.data(), stream.size()), &value);
  if (s.IsNotFound()) return std::uint64_t{0};
  if (!s.ok()) return io_error(s, "reading stream heads");
  if (value.size() != 8) return status(errc::corruption, "stream head is malformed");
  return get_be64(value);
}

status event_log::scan_streams(std::string_view prefix,
                               const std::function<status(std::string_view, std::uint64_t)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cfs[cf_stream_heads]));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    if (key.substr(0, prefix.size()) != prefix) break;
    if (it->value().size() != 8) return status(errc::corruption, "stream head is malformed");
    PEV_RETURN_IF_ERROR(visit(key, get_be64(it->value().ToStringView())));
  }
  if (!it->status().ok()) return io_error(it->status(), "scanning stream heads");
  return status::ok();
}

namespace {
result<entity_snapshot> parse_snapshot(std::string_view key_suffix, std::string_view value) {
  if (key_suffix.size() != 8 || value.size() < 8) return status(errc::corruption, "snapshot entry is malformed");
  entity_snapshot s;
  s.stream_seq = get_be64(key_suffix);
  s.global_seq = log_seq(get_be64(value));
  s.state.assign(value.substr(8));
  return s;
}
}  // namespace

result<std::optional<entity_snapshot>> event_log::newest_snapshot(std::string_view stream, log_seq until) const {
  if (!valid_stream_name(stream)) return std::optional<entity_snapshot>();  // no such stream can be written
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(within_stream(), impl_->cfs[cf_snapshots]));
  const std::string prefix = std::string(stream) + '\0';
  // Newest first; snapshots of one stream are few (older ones are kept for point-in-time replay).
  for (it->SeekForPrev(stream_key(stream, ~std::uint64_t{0})); it->Valid(); it->Prev()) {
    const auto key = it->key().ToStringView();
    if (key.substr(0, prefix.size()) != prefix) break;
    auto snap = parse_snapshot(key.substr(prefix.size()), it->value().ToStringView());
    if (!snap) return snap.error();
    if (snap->global_seq <= until) return std::optional<entity_snapshot>(std::move(snap.value()));
  }
  if (!it->status().ok()) return io_error(it->status(), "reading snapshots");
  return std::optional<entity_snapshot>();
}

status event_log::scan_snapshots(
    const std::function<status(std::string_view stream, const entity_snapshot&)>& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(across_streams(), impl_->cfs[cf_snapshots]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    const auto cut = key.find('\0');
    if (cut == std::string_view::npos) return status(errc::corruption, "snapshot key is malformed");
    auto snap = parse_snapshot(key.substr(cut + 1), it->value().ToStringView());
    if (!snap) return snap.error();
    PEV_RETURN_IF_ERROR(visit(key.substr(0, cut), snap.value()));
  }
  if (!it->status().ok()) return io_error(it->status(), "scanning snapshots");
  return status::ok();
}

result<std::optional<std::string>> event_log::get_interval(std::string_view key) const {
  std::string value;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cfs[cf_intervals], rocksdb::Slice(key.data(), key.size()),
                          &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return io_error(s, "reading the interval index");
  return std::optional<std::string>(std::move(value));
}

result<event_log::index_neighbours> event_log::interval_neighbours(std::string_view key, std::string_view lower,
                                                                  std::string_view upper) const {
  const rocksdb::Slice lower_slice(lower.data(), lower.size()), upper_slice(upper.data(), upper.size());
  rocksdb::ReadOptions ro = across_streams();
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cfs[cf_intervals]));
  const rocksdb::Slice at(key.data(), key.size());
  index_neighbours out;
  it->Seek(at);
  if (it->Valid() && it->key() == at) it->Next();
  if (it->Valid()) out.after = index_entry{it->key().ToString(), it->value().ToString()};
  if (!it->status().ok()) return io_error(it->status(), "reading the interval index");
  it->SeekForPrev(at);
  if (it->Valid() && it->key() == at) it->Prev();
  if (it->Valid()) out.before = index_entry{it->key().ToString(), it->value().ToString()};
  if (!it->status().ok()) return io_error(it->status(), "reading the interval index");
  return out;
}

status event_log::overwrite_record_for_test(log_seq seq, std::span<const std::uint8_t> bytes) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Put(wo, impl_->cfs[cf_events], seq_key(seq),
                          rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  return s.ok() ? status::ok() : io_error(s, "overwriting a record");
}

status event_log::delete_record_for_test(log_seq seq) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Delete(wo, impl_->cfs[cf_events], seq_key(seq));
  return s.ok() ? status::ok() : io_error(s, "deleting a record");
}

result<log_stats> event_log::stats() const {
  rocksdb::DB& db = *impl_->db;
  log_stats out;
  out.format = impl_->format;
  out.last_seq = last_seq();
  out.last_hash = last_hash();
  if (out.last_seq.value() > 0) {
    auto last = impl_->read(out.last_seq);
    if (!last) return last.error();
    out.last_at = unix_seconds(last->record().at());
  }
  // Streams by kind: the part of the name before '/' ("account/a1"), or the whole name.
  std::map<std::string, std::uint64_t, std::less<>> kinds;
  PEV_RETURN_IF_ERROR(scan_streams("", [&](std::string_view stream, std::uint64_t) {
    const std::string_view kind = stream.substr(0, stream.find('/'));
    auto it = kinds.find(kind);
    if (it == kinds.end()) it = kinds.emplace(std::string(kind), 0).first;
    ++it->second;
    ++out.streams;
    return status::ok();
  }));
  out.streams_by_kind.assign(kinds.begin(), kinds.end());
  for (std::size_t i = 0; i < cf_count; ++i) {
    rocksdb::ColumnFamilyHandle* cf = impl_->cfs[i];
    auto property = [&](const std::string& name) {
      std::uint64_t v = 0;
      return db.GetIntProperty(cf, name, &v) ? v : 0;
    };
    log_stats::column_family c;
    c.name = cf_names[i];
    c.estimated_keys = property("rocksdb.estimate-num-keys");
    c.sst_bytes = property("rocksdb.total-sst-files-size");
    c.blob_bytes = property("rocksdb.total-blob-file-size");
    c.memtable_bytes = property("rocksdb.cur-size-all-mem-tables");
    for (int level = 0; level < 7; ++level) {
      std::string files;
      if (!db.GetProperty(cf, "rocksdb.num-files-at-level" + std::to_string(level), &files)) break;
      c.files_per_level.push_back(std::strtoull(files.c_str(), nullptr, 10));
    }
    out.pending_compaction_bytes += property("rocksdb.estimate-pending-compaction-bytes");
    out.column_families.push_back(std::move(c));
  }
  std::error_code ec;
  // Bounded by the directory's files; RocksDB keeps it flat.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(db.GetName(), ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const std::uint64_t size = entry.file_size(ec);
    if (ec) continue;  // deleted by the writer while we looked
    out.disk_bytes += size;
    if (entry.path().extension() == ".log") {
      ++out.wal_files;
      out.wal_bytes += size;
    }
  }
  if (ec) return status(errc::io_error, "listing " + db.GetName() + ": " + ec.message());
  return out;
}

namespace {
// A copy is written in batches of about this many bytes (unsynced, without a WAL: the copy is
// flushed and synced as a whole before it gets its final name).
constexpr std::size_t copy_batch_bytes = 8u << 20;
}  // namespace

status event_log::copy_to(const std::string& dir_given, const std::function<void(std::uint64_t)>& progress) const {
  const std::string dir = without_trailing_slash(dir_given);
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) return status(errc::usage, "'" + dir + "' already exists");
  const std::string partial = dir + ".partial";
  if (std::filesystem::exists(partial, ec))
    return status(errc::usage, "'" + partial + "' exists (an interrupted copy?): remove it first");
  log_options copy_options;
  copy_options.block_cache_bytes = 8u << 20;
  const auto descriptors = column_families(rocksdb::NewLRUCache(copy_options.block_cache_bytes));
  rocksdb::DBOptions db_options = writer_options(copy_options);
  db_options.error_if_exists = true;
  std::filesystem::create_directories(partial, ec);
  if (ec) return status(errc::io_error, "creating " + partial + ": " + ec.message());
  log_info_to(db_options, partial);
  std::vector<rocksdb::ColumnFamilyHandle*> to_cfs;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_options, partial, descriptors, &to_cfs, &raw);
  if (!s.ok()) return io_error(s, "creating " + partial);
  std::unique_ptr<rocksdb::DB> to(raw);
  auto close_copy = [&] {
    for (auto* cf : to_cfs) ignore_rocksdb(to->DestroyColumnFamilyHandle(cf));
    to_cfs.clear();
    to.reset();
  };
  struct close_on_error {
    const std::function<void()> close;
    ~close_on_error() { close(); }
  } closer{close_copy};

  // A writer copies from one snapshot; a reader's view is fixed until its next catch_up.
  const rocksdb::Snapshot* snapshot = impl_->read_only ? nullptr : impl_->db->GetSnapshot();
  struct release_snapshot {
    rocksdb::DB& db;
    const rocksdb::Snapshot* snapshot;
    ~release_snapshot() {
      if (snapshot != nullptr) db.ReleaseSnapshot(snapshot);
    }
  } releaser{*impl_->db, snapshot};
  rocksdb::WriteOptions wo;
  wo.disableWAL = true;
  std::uint64_t keys_copied = 0;
  for (std::size_t i = 0; i < cf_count; ++i) {
    rocksdb::ReadOptions ro = across_streams();
    ro.snapshot = snapshot;
    ro.readahead_size = 4u << 20;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cfs[i]));
    rocksdb::WriteBatch batch;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      batch.Put(to_cfs[i], it->key(), it->value());
      if (progress && ++keys_copied % copy_progress_keys_step == 0) progress(keys_copied);
      if (batch.GetDataSize() < copy_batch_bytes) continue;
      if (s = to->Write(wo, &batch); !s.ok()) return io_error(s, "writing " + partial);
      batch.Clear();
    }
    if (!it->status().ok()) return io_error(it->status(), "reading the log to copy it");
    if (s = to->Write(wo, &batch); !s.ok()) return io_error(s, "writing " + partial);
  }
  if (progress) progress(keys_copied);
  rocksdb::FlushOptions flush;
  flush.wait = true;
  if (s = to->Flush(flush, to_cfs); !s.ok()) return io_error(s, "flushing " + partial);
  if (s = to->SyncWAL(); !s.ok() && !s.IsNotSupported()) return io_error(s, "syncing " + partial);
  close_copy();
  std::filesystem::rename(partial, dir, ec);
  if (ec) return status(errc::io_error, "renaming " + partial + " to " + dir + ": " + ec.message());
  return sync_parent_directory(dir);
}

}  // namespace pevledger::storage
