// Readers and operators, through the binary: queries in parallel and beside an ingest, a
// write-protected copy read by a user who cannot write it, no file added by a query, format
// versions, backup during an ingest, the change feed, JSON errors and progress.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>

#include <fstream>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "tests/test_support.hpp"

extern char** environ;

namespace pevledger {
namespace {

using json = nlohmann::json;
using testing::command_result;
using testing::run_pevledger;
using testing::temp_dir;
namespace fs = std::filesystem;

std::string slurp(const std::string& path) { return testing::detail::slurp(path); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// A month of a small fleet from the repository's seeded generator.
std::string make_fleet(const temp_dir& dir, const std::string& name, int premises_per_utility, int days) {
  const std::string path = dir.file(name);
  const std::string cmd = std::string(PEVLEDGER_FLEET_GEN) + " --seed 11 --premises-per-utility " +
                          std::to_string(premises_per_utility) + " --days " + std::to_string(days) + " >" + path;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("fleet_gen failed");
  return path;
}

std::vector<std::string> accounts_in(const std::string& fleet, std::size_t max) {
  std::vector<std::string> out;
  for (const auto& line : lines_of(slurp(fleet))) {
    const json j = json::parse(line);
    if (j["type"] == "account.open" && out.size() < max) out.push_back(j["account"]);
  }
  return out;
}

// A pevledger process running in the background, its output in files.
class background {
 public:
  // `stdin_path`: what the process reads (a FIFO the test feeds, so that it is sure to be running).
  background(const std::string& args, const temp_dir& io, const std::string& name,
             const std::string& stdin_path = "/dev/null")
      : out_(io.file(name + ".out")), err_(io.file(name + ".err")) {
    const std::string cmd =
        "exec " + std::string(PEVLEDGER_BIN) + " " + args + " <" + stdin_path + " >" + out_ + " 2>" + err_;
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    if (posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
      throw std::runtime_error("posix_spawn failed");
  }
  ~background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] bool running() {
    if (pid_ <= 0) return false;
    int raw = 0;
    if (::waitpid(pid_, &raw, WNOHANG) == 0) return true;
    finish(raw);
    return false;
  }
  int wait() {
    if (pid_ > 0) {
      int raw = 0;
      ::waitpid(pid_, &raw, 0);
      finish(raw);
    }
    return exit_code_;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  [[nodiscard]] std::string out() const { return slurp(out_); }
  [[nodiscard]] std::string err() const { return slurp(err_); }

 private:
  void finish(int raw) {
    exit_code_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    pid_ = -1;
  }
  std::string out_, err_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

std::uint64_t records_of(const std::string& db) {
  auto r = run_pevledger("stats --db " + db + " --format json");
  if (r.exit_code != 0) throw std::runtime_error("stats failed: " + r.err);
  return json::parse(r.out)["records"].get<std::uint64_t>();
}

// Every file of a directory with its size and modification time.
std::map<std::string, std::pair<std::uintmax_t, fs::file_time_type>> listing(const std::string& dir) {
  std::map<std::string, std::pair<std::uintmax_t, fs::file_time_type>> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    out[e.path().string()] = {e.is_regular_file() ? e.file_size() : 0, e.last_write_time()};
  return out;
}

// One database shared by the tests that only read it.
class readers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new temp_dir();
    fleet_ = make_fleet(*dir_, "fleet.jsonl", 12, 10);
    db_ = dir_->file("db");
    auto r = run_pevledger("ingest --db " + db_ + " " + fleet_);
    ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.err;
    accounts_ = accounts_in(fleet_, 16);
    ASSERT_EQ(accounts_.size(), 16u);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // The read commands, each with its arguments (the database goes after --db).
  static std::vector<std::string> read_commands(const std::string& checkpoint_dir) {
    return {"bill --account " + accounts_[0] + " --period 2024-03 --format json",
            "balance --account " + accounts_[1] + " --format json",
            "settlement --period 2024-03 --format json",
            "report --period 2024-03 --format json",
            "replay --verify --format json",
            "export --raw",
            "stats --format json",
            "checkpoint --key " + checkpoint_dir + "/key.pem --out " + checkpoint_dir + "/cp.txt"};
  }
  static inline temp_dir* dir_ = nullptr;
  static inline std::string fleet_, db_;
  static inline std::vector<std::string> accounts_;
};

TEST_F(readers, sixteen_queries_in_parallel_all_answer_as_they_do_alone) {
  temp_dir io;
  std::vector<std::string> args;
  for (std::size_t i = 0; i < 16; ++i) {
    const std::string& a = accounts_[i];
    switch (i % 4) {
      case 0: args.push_back("bill --db " + db_ + " --account " + a + " --period 2024-03 --format json"); break;
      case 1: args.push_back("balance --db " + db_ + " --account " + a + " --format json"); break;
      case 2: args.push_back("report --db " + db_ + " --period 2024-03 --format json"); break;
      default: args.push_back("settlement --db " + db_ + " --period 2024-03 --format json"); break;
    }
  }
  std::vector<std::unique_ptr<background>> running;
  for (std::size_t i = 0; i < args.size(); ++i)
    running.push_back(std::make_unique<background>(args[i], io, "q" + std::to_string(i)));
  for (std::size_t i = 0; i < args.size(); ++i) {
    EXPECT_EQ(running[i]->wait(), 0) << args[i] << ": " << running[i]->err();
    const auto alone = run_pevledger(args[i]);
    ASSERT_EQ(alone.exit_code, 0) << alone.err;
    EXPECT_EQ(running[i]->out(), alone.out) << args[i];
    EXPECT_FALSE(json::parse(running[i]->out()).is_null());
  }
}

TEST_F(readers, no_read_command_adds_or_changes_a_file_of_the_database) {
  temp_dir keys;
  ASSERT_EQ(std::system(("openssl genpkey -algorithm ed25519 -out " + keys.file("key.pem") + " 2>/dev/null").c_str()), 0);
  const auto before = listing(db_);
  for (const auto& args : read_commands(keys.path())) {
    const auto r = run_pevledger(args.substr(0, args.find(' ')) + " --db " + db_ + args.substr(args.find(' ')));
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
  }
  EXPECT_EQ(listing(db_), before);
}

TEST_F(readers, a_write_protected_copy_answers_every_read_command_for_a_user_who_cannot_write_it) {
  // The copy belongs to root and nobody may write it; as root, the commands run as `nobody`.
  temp_dir area;
  fs::permissions(area.path(), fs::perms::all);  // others reach the copy, the keys and the output
  const std::string copy = area.file("copy");
  fs::copy(db_, copy, fs::copy_options::recursive);
  ASSERT_EQ(std::system(("openssl genpkey -algorithm ed25519 -out " + area.file("key.pem") + " 2>/dev/null && openssl pkey -in " +
                         area.file("key.pem") + " -pubout -out " + area.file("pub.pem"))
                            .c_str()),
            0);
  fs::create_directory(area.file("out"));
  fs::permissions(area.file("out"), fs::perms::all);
  fs::copy_file(PEVLEDGER_BIN, area.file("pevledger"));
  ASSERT_EQ(std::system(("chmod a+r " + area.file("key.pem") + " " + area.file("pub.pem") + " && chmod -R a+rX,a-w " + copy)
                            .c_str()),
            0);
  const bool root = ::geteuid() == 0;
  const std::string as_other = root ? "setpriv --reuid=65534 --regid=65534 --clear-groups -- " : "";
  auto run = [&](const std::string& args) {
    const std::string out = area.file("out/stdout"), err = area.file("out/stderr");
    const std::string cmd = as_other + area.file("pevledger") + " " + args + " >" + out + " 2>" + err + " </dev/null";
    const int raw = std::system(cmd.c_str());
    return command_result{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
  };
  if (root) {  // the user the commands run as really cannot write the copy
    auto probe = run("--version");
    ASSERT_EQ(probe.exit_code, 0) << probe.err;
    ASSERT_NE(std::system((as_other + "touch " + copy + "/probe 2>/dev/null").c_str()), 0);
  }
  const auto before = listing(copy);
  for (const auto& args : read_commands(area.path() + "/out")) {
    // The checkpoint key is read from the area, written to out/.
    std::string a = args;
    if (a.starts_with("checkpoint")) a = "checkpoint --key " + area.file("key.pem") + " --out " + area.file("out/cp.txt");
    const auto r = run(a.substr(0, a.find(' ')) + " --db " + copy + a.substr(a.find(' ')));
    EXPECT_EQ(r.exit_code, 0) << a << ": " << r.err;
    EXPECT_FALSE(r.out.empty() && !a.starts_with("checkpoint")) << a;
  }
  auto verified = run("verify --db " + copy + " --checkpoint " + area.file("out/cp.txt") + " --pubkey " + area.file("pub.pem"));
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  auto backup = run("backup --db " + copy + " --to " + area.file("out/backup"));
  EXPECT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_EQ(listing(copy), before);
  // What the copy answers is what the original answers.
  const auto original = run_pevledger("replay --db " + db_ + " --verify --format json");
  const auto protected_copy = run("replay --db " + copy + " --verify --format json");
  ASSERT_EQ(original.exit_code, 0);
  EXPECT_EQ(json::parse(protected_copy.out)["digest"], json::parse(original.out)["digest"]);
}

TEST_F(readers, export_from_a_sequence_writes_that_record_and_every_later_one) {
  const std::uint64_t records = records_of(db_);
  ASSERT_GT(records, 10u);
  const auto r = run_pevledger("export --db " + db_ + " --from " + std::to_string(records - 4));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u);
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(json::parse(lines[i])["seq"], records - 4 + i);
  EXPECT_TRUE(lines_of(run_pevledger("export --db " + db_ + " --from " + std::to_string(records + 1)).out).empty());
}

TEST_F(readers, stats_count_the_records_and_the_entities) {
  const auto r = run_pevledger("stats --db " + db_ + " --format json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json s = json::parse(r.out);
  EXPECT_EQ(s["format"], "pevledger-log-6");
  EXPECT_EQ(s["records"].get<std::size_t>(), lines_of(run_pevledger("export --db " + db_).out).size());
  EXPECT_GE(s["entities"]["account"].get<std::size_t>(), 16u);
  EXPECT_GT(s["entities"]["session"].get<std::size_t>(), 0u);
  EXPECT_GT(s["disk_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(s["column_families"].size(), 8u);
  const auto text = run_pevledger("stats --db " + db_);
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.out.find("records     " + std::to_string(s["records"].get<std::uint64_t>())), std::string::npos);
}

// An ingest that reads its lines from a FIFO the test feeds in parts: between two parts the writer
// is certainly running (it holds the database and waits for more), however fast the machine.
class fed_ingest {
 public:
  fed_ingest(const temp_dir& dir, const std::string& db, const std::string& fleet, std::size_t parts)
      : fifo_(dir.file("feed")), lines_(lines_of(slurp(fleet))), parts_(parts) {
    if (::mkfifo(fifo_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
    writer_ = std::make_unique<background>("ingest --db " + db + " --group-lines 32 -", dir, "ingest", fifo_);
    feed_.open(fifo_, std::ios::binary);  // opens once the writer's shell has opened the other end
  }
  // Sends the next part; false when every part was sent (the FIFO is then closed).
  bool send_part() {
    if (sent_ == parts_) return false;
    const std::size_t from = lines_.size() * sent_ / parts_, to = lines_.size() * (sent_ + 1) / parts_;
    for (std::size_t i = from; i < to; ++i) feed_ << lines_[i] << '\n';
    feed_.flush();
    if (++sent_ == parts_) feed_.close();
    return true;
  }
  background& writer() { return *writer_; }

 private:
  std::string fifo_;
  std::vector<std::string> lines_;
  std::size_t parts_, sent_ = 0;
  std::unique_ptr<background> writer_;
  std::ofstream feed_;
};

// Waits until a reader sees more than `records` records (the writer made a part durable).
std::uint64_t wait_for_more_than(const std::string& db, std::uint64_t records) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < give_up) {
    const auto s = run_pevledger("stats --db " + db + " --format json");
    if (s.exit_code == 0) {
      const auto n = json::parse(s.out)["records"].get<std::uint64_t>();
      if (n > records) return n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return records;
}

TEST(readers_and_a_writer, queries_answer_while_an_ingest_writes) {
  temp_dir dir;
  const std::string db = dir.file("db");
  const std::string fleet = make_fleet(dir, "fleet.jsonl", 20, 14);
  const auto accounts = accounts_in(fleet, 4);
  fed_ingest ingest(dir, db, fleet, 4);
  std::uint64_t seen = 0;
  int rounds_during = 0;
  bool account_known = false;
  while (ingest.send_part()) {
    seen = wait_for_more_than(db, seen);
    if (!ingest.writer().running()) break;
    // The reader may run before the group holding the account's opening is durable: then the
    // account is unknown. Once a reader has seen it, every later reader does.
    const auto balance = run_pevledger("balance --db " + db + " --account " + accounts[0] + " --format json");
    if (account_known || balance.exit_code == 0) {
      EXPECT_EQ(balance.exit_code, 0) << balance.err;
      account_known = true;
    } else {
      EXPECT_EQ(balance.exit_code, 1);
      EXPECT_NE(balance.err.find("\"unknown_account\""), std::string::npos) << balance.err;
    }
    const auto report = run_pevledger("report --db " + db + " --period 2024-03 --format json");
    EXPECT_EQ(report.exit_code, 0) << report.err;
    const auto exported = run_pevledger("export --db " + db);
    EXPECT_EQ(exported.exit_code, 0) << exported.err;
    // A reader sees a prefix at a group boundary, never less than a reader before it.
    const auto records = lines_of(exported.out).size();
    EXPECT_GE(records, seen);
    seen = records;
    ++rounds_during;
  }
  EXPECT_EQ(ingest.writer().wait(), 0) << ingest.writer().err();
  EXPECT_GE(rounds_during, 3) << "the readers did not run beside the writer";
  EXPECT_EQ(run_pevledger("balance --db " + db + " --account " + accounts[0]).exit_code, 0);
  EXPECT_EQ(run_pevledger("replay --db " + db + " --verify").exit_code, 0);
}

TEST(readers_and_a_writer, a_backup_taken_mid_ingest_opens_and_replays_clean) {
  temp_dir dir;
  const std::string db = dir.file("db");
  const std::string fleet = make_fleet(dir, "fleet.jsonl", 20, 14);
  fed_ingest ingest(dir, db, fleet, 2);
  ASSERT_TRUE(ingest.send_part());
  ASSERT_GT(wait_for_more_than(db, 100), 100u);
  const auto backup = run_pevledger("backup --db " + db + " --to " + dir.file("backup") + " --format json");
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_TRUE(ingest.writer().running()) << "the writer is waiting for its second part";
  ASSERT_TRUE(ingest.send_part());
  EXPECT_EQ(ingest.writer().wait(), 0) << ingest.writer().err();
  const auto copied = json::parse(backup.out)["records"].get<std::uint64_t>();
  EXPECT_GT(copied, 100u);
  EXPECT_EQ(records_of(dir.file("backup")), copied);
  EXPECT_LT(copied, records_of(db));
  const auto replayed = run_pevledger("replay --db " + dir.file("backup") + " --verify --format json");
  EXPECT_EQ(replayed.exit_code, 0) << replayed.out << replayed.err;
  EXPECT_TRUE(json::parse(replayed.out)["verified"].get<bool>());
  // The copy is a prefix of the log, record for record.
  const auto original = lines_of(run_pevledger("export --db " + db).out);
  const auto copy = lines_of(run_pevledger("export --db " + dir.file("backup")).out);
  ASSERT_EQ(copy.size(), copied);
  for (std::size_t i = 0; i < copy.size(); ++i) ASSERT_EQ(copy[i], original[i]) << "record " << i + 1;
  // A copy is never written over an existing directory.
  EXPECT_EQ(run_pevledger("backup --db " + db + " --to " + dir.file("backup")).exit_code, 2);
}

TEST(readers_and_a_writer, export_follow_delivers_what_is_committed_after_it_started_and_stops_cleanly) {
  temp_dir dir;
  const std::string db = dir.file("db");
  const std::string fleet = make_fleet(dir, "fleet.jsonl", 6, 6);
  const auto all = lines_of(slurp(fleet));
  std::string first, second;
  for (std::size_t i = 0; i < all.size(); ++i) (i < all.size() / 2 ? first : second) += all[i] + "\n";
  auto r = run_pevledger("ingest --db " + db + " -", first);
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.err;
  const std::uint64_t before = records_of(db);
  background follower("export --db " + db + " --follow", dir, "follow");
  auto wait_for_lines = [&](std::size_t n) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (lines_of(follower.out()).size() < n && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return lines_of(follower.out()).size();
  };
  EXPECT_EQ(wait_for_lines(before), before);
  r = run_pevledger("ingest --db " + db + " -", second);
  ASSERT_TRUE(r.exit_code == 0 || r.exit_code == 3) << r.err;
  const std::uint64_t after = records_of(db);
  ASSERT_GT(after, before);
  EXPECT_EQ(wait_for_lines(after), after);
  ASSERT_TRUE(follower.running());
  follower.signal(SIGTERM);
  EXPECT_EQ(follower.wait(), 0) << follower.err();
  const auto lines = lines_of(follower.out());
  ASSERT_EQ(lines.size(), after);
  EXPECT_EQ(follower.out().back(), '\n');
  for (std::size_t i = 0; i < lines.size(); ++i) ASSERT_EQ(json::parse(lines[i])["seq"], i + 1);
  // It is the same feed as a plain export.
  EXPECT_EQ(follower.out(), run_pevledger("export --db " + db).out);
}

// Writes `value` under `key` in column family `family` of a closed database directly, as an older
// or a foreign build would have.
void put_raw(const std::string& db, const std::string& family, const std::string& key, const std::string& value) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), db, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& n : names) descriptors.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), db, descriptors, &handles, &raw).ok());
  const auto at = std::find(names.begin(), names.end(), family) - names.begin();
  ASSERT_LT(at, static_cast<std::ptrdiff_t>(handles.size()));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  EXPECT_TRUE(raw->Put(wo, handles[at], key, value).ok());
  for (auto* h : handles) EXPECT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
  delete raw;
}

void set_format(const std::string& db, const std::string& format) { put_raw(db, "default", "format", format); }

const std::string two_lines =
    R"({"type":"utility.register","id":"f1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})" "\n"
    R"({"type":"account.open","id":"f2","at":"2024-03-01T00:00:01Z","utility":"u","account":"a","customer":"c"})" "\n";
const std::string third_line =
    R"({"type":"account.topup","id":"f3","at":"2024-03-01T00:00:02Z","account":"a","amount":1000000})" "\n";

TEST(format_version, a_foreign_format_is_refused_by_every_command_naming_it) {
  temp_dir dir;
  const std::string db = dir.file("db");
  ASSERT_EQ(run_pevledger("ingest --db " + db + " -", two_lines).exit_code, 0);
  set_format(db, "pevledger-log-9");
  for (const std::string args : {"balance --account a", "stats", "replay --verify", "export"}) {
    const auto r = run_pevledger(args.substr(0, args.find(' ')) + " --db " + db + args.substr(std::min(args.size(), args.find(' '))));
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find("pevledger-log-9"), std::string::npos) << args << ": " << r.err;
  }
  const auto ingest = run_pevledger("ingest --db " + db + " -", third_line);
  EXPECT_EQ(ingest.exit_code, 2);
  EXPECT_NE(ingest.err.find("pevledger-log-9"), std::string::npos) << ingest.err;
  EXPECT_EQ(run_pevledger("upgrade --db " + db).exit_code, 2);
}

TEST(format_version, an_older_format_is_read_as_it_is_and_written_only_after_an_explicit_upgrade) {
  for (const std::string older : {"pevledger-log-2", "pevledger-log-3", "pevledger-log-4", "pevledger-log-5"}) {
    SCOPED_TRACE(older);
    temp_dir dir;
    const std::string db = dir.file("db");
    ASSERT_EQ(run_pevledger("ingest --db " + db + " -", two_lines).exit_code, 0);
    set_format(db, older);
    // Up to log-5 a writer stored every balance; one left from before the topup below goes stale.
    put_raw(db, "projections", "balance/a", R"({"account":"a","utility":"u","kind":"postpaid","balance_micro":0,)"
                                             R"("reserved_micro":0,"available_micro":0})");
    const auto exported = run_pevledger("export --db " + db);
    EXPECT_EQ(exported.exit_code, 0) << exported.err;
    EXPECT_EQ(json::parse(run_pevledger("stats --db " + db + " --format json").out)["format"], older);
    const auto refused = run_pevledger("ingest --db " + db + " --format json -", third_line);
    EXPECT_EQ(refused.exit_code, 2);
    const json error = json::parse(refused.err);
    EXPECT_EQ(error["error"], "usage");
    EXPECT_NE(error["message"].get<std::string>().find("pevledger upgrade"), std::string::npos);
    EXPECT_EQ(run_pevledger("export --db " + db).out, exported.out) << "the refused ingest changed the log";
    EXPECT_EQ(json::parse(run_pevledger("stats --db " + db + " --format json").out)["format"], older);
    const auto upgraded = run_pevledger("upgrade --db " + db + " --format json");
    ASSERT_EQ(upgraded.exit_code, 0) << upgraded.err;
    EXPECT_EQ(json::parse(upgraded.out)["from"], older);
    EXPECT_EQ(run_pevledger("ingest --db " + db + " -", third_line).exit_code, 0);
    EXPECT_EQ(json::parse(run_pevledger("stats --db " + db + " --format json").out)["format"], "pevledger-log-6");
    EXPECT_EQ(json::parse(run_pevledger("balance --db " + db + " --account a --format json").out)["balance_micro"],
              1000000);
    const auto verified = run_pevledger("replay --db " + db + " --verify");
    EXPECT_EQ(verified.exit_code, 0) << verified.out << "the upgrade left the stale balance behind";
  }
}

TEST(operators, a_query_never_creates_a_database) {
  temp_dir dir;
  const std::string missing = dir.file("missing");
  const std::vector<std::string> commands = {"balance --account a", "bill --account a --period 2024-03",
                                             "settlement --period 2024-03", "session --session s",
                                             "report --period 2024-03", "replay --verify", "export", "stats",
                                             "upgrade", "backup --to " + dir.file("b")};
  for (const std::string& args : commands) {
    const auto space = args.find(' ');
    const auto r = run_pevledger(args.substr(0, space) + " --db " + missing + (space == std::string::npos ? "" : args.substr(space)));
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_FALSE(fs::exists(missing)) << args << " created the database";
    EXPECT_FALSE(fs::exists(dir.file("b")));
  }
}

TEST(operators, a_trailing_slash_names_the_same_database_and_the_same_backup) {
  temp_dir dir;
  ASSERT_EQ(run_pevledger("ingest --db " + dir.file("db/") + " -", two_lines).exit_code, 0);
  EXPECT_TRUE(fs::exists(dir.file("db/CURRENT")));
  EXPECT_FALSE(fs::exists(dir.file("db/.creating")));
  EXPECT_EQ(records_of(dir.file("db")), records_of(dir.file("db/")));
  ASSERT_EQ(run_pevledger("backup --db " + dir.file("db/") + " --to " + dir.file("copy/")).exit_code, 0);
  EXPECT_EQ(records_of(dir.file("copy")), records_of(dir.file("db")));
  EXPECT_FALSE(fs::exists(dir.file("copy/.partial")));
}

TEST(operators, with_format_json_every_error_is_one_json_object) {
  temp_dir dir;
  const std::string db = dir.file("db");
  ASSERT_EQ(run_pevledger("ingest --db " + db + " -", two_lines).exit_code, 0);
  struct expectation {
    std::string args;
    int exit_code;
    std::string error;
  };
  const std::vector<expectation> cases = {
      {"balance --db " + db + " --account nobody --format json", 1, "unknown_account"},
      {"balance --db " + dir.file("missing") + " --account a --format json", 2, "io_error"},
      {"bill --db " + db + " --account a --period 2024-13 --format json", 2, "usage"},
      {"bill --db " + db + " --format json", 2, "usage"},  // a required flag is missing
      {"ingest --db " + db + " --format json " + dir.file("no-such-file"), 2, "usage"},
      {"export --db " + dir.file("missing") + " --format json", 2, "io_error"},
  };
  for (const auto& c : cases) {
    const auto r = run_pevledger(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args;
    const auto lines = lines_of(r.err);
    ASSERT_EQ(lines.size(), 1u) << c.args << ": " << r.err;
    const json j = json::parse(lines[0]);
    EXPECT_EQ(j["error"], c.error) << c.args;
    EXPECT_TRUE(j["message"].is_string() && !j["message"].get<std::string>().empty()) << c.args;
  }
  // Without it, errors stay one line for people.
  const auto text = run_pevledger("balance --db " + db + " --account nobody");
  EXPECT_EQ(text.err.rfind("pevledger: unknown_account: ", 0), 0u) << text.err;
}

TEST(operators, progress_is_shown_when_asked_and_never_with_quiet) {
  temp_dir dir;
  const std::string fleet = make_fleet(dir, "fleet.jsonl", 4, 4);
  const auto shown = run_pevledger("ingest --db " + dir.file("a") + " --progress " + fleet);
  ASSERT_TRUE(shown.exit_code == 0 || shown.exit_code == 3) << shown.err;
  EXPECT_NE(shown.err.find("ingest"), std::string::npos) << shown.err;
  EXPECT_NE(shown.err.find("lines"), std::string::npos) << shown.err;
  const auto quiet = run_pevledger("replay --db " + dir.file("a") + " --progress --quiet");
  EXPECT_EQ(quiet.exit_code, 0);
  EXPECT_TRUE(quiet.err.empty()) << quiet.err;
  const auto replay = run_pevledger("replay --db " + dir.file("a") + " --progress");
  EXPECT_NE(replay.err.find("records"), std::string::npos) << replay.err;
  // Not a terminal and not asked: nothing but refusals on standard error.
  const auto plain = run_pevledger("ingest --db " + dir.file("b") + " " + fleet);
  for (const auto& line : lines_of(plain.err)) EXPECT_TRUE(json::parse(line).contains("line")) << line;
}

}  // namespace
}  // namespace pevledger
