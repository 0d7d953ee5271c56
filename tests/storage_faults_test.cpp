// A damaged or unusable database directory: every command stops with a clear error and exit 2,
// never an abort, never a new empty database over the old one, and once the damage is undone
// everything acknowledged is still there.

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/test_support.hpp"

namespace pevledger {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::run_pevledger;
using testing::temp_dir;

const std::string first_lines =
    R"({"type":"utility.register","id":"f1","at":"2024-03-01T00:00:00Z","utility":"u","timezone":"UTC"})" "\n"
    R"({"type":"account.open","id":"f2","at":"2024-03-01T00:00:01Z","utility":"u","account":"a","customer":"c"})" "\n"
    R"({"type":"account.topup","id":"f3","at":"2024-03-01T00:00:02Z","account":"a","amount":1000000})" "\n";
const std::string more_lines =
    R"({"type":"account.topup","id":"f4","at":"2024-03-01T00:00:03Z","account":"a","amount":2000000})" "\n";

// A closed database whose files are all flushed to tables (a clean close flushes).
class storage_faults : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = dir_.file("db");
    ASSERT_EQ(run_pevledger("ingest --db " + db_ + " -", first_lines).exit_code, 0);
    exported_ = run_pevledger("export --db " + db_).out;
    ASSERT_FALSE(exported_.empty());
    fs::copy(db_, dir_.file("pristine"), fs::copy_options::recursive);
  }
  // The first file of the database whose name matches `pred`.
  std::string file_where(const std::function<bool(const std::string&)>& pred) {
    for (const auto& e : fs::directory_iterator(db_))
      if (pred(e.path().filename().string())) return e.path().string();
    ADD_FAILURE() << "no such file in " << db_;
    return db_ + "/none";
  }
  // Every command, read or write, stops with exit 2 and a message naming the trouble.
  void expect_every_command_stops(const std::string& words) {
    for (const std::string args : {"stats --format json", "balance --account a --format json", "replay --verify --format json",
                                   "export --format json"}) {
      const auto space = args.find(' ');
      const auto r = run_pevledger(args.substr(0, space) + " --db " + db_ + args.substr(space));
      EXPECT_EQ(r.exit_code, 2) << args << ": " << r.out;
      const json error = json::parse(r.err.substr(0, r.err.find('\n')), nullptr, false);
      ASSERT_FALSE(error.is_discarded()) << args << ": " << r.err;
      EXPECT_NE(error["message"].get<std::string>().find(words), std::string::npos) << args << ": " << r.err;
    }
    const auto ingest = run_pevledger("ingest --db " + db_ + " --format json -", more_lines);
    EXPECT_EQ(ingest.exit_code, 2) << ingest.out;
    EXPECT_FALSE(ingest.err.empty());
  }
  // Undo the damage: the database answers as before and takes the next line.
  void expect_whole_after_restoring() {
    fs::remove_all(db_);
    fs::copy(dir_.file("pristine"), db_, fs::copy_options::recursive);
    EXPECT_EQ(run_pevledger("export --db " + db_).out, exported_);
    EXPECT_EQ(run_pevledger("ingest --db " + db_ + " -", more_lines).exit_code, 0);
    EXPECT_EQ(run_pevledger("replay --db " + db_ + " --verify").exit_code, 0);
    const auto balance = json::parse(run_pevledger("balance --db " + db_ + " --account a --format json").out);
    EXPECT_EQ(balance["balance_micro"], 3000000);
  }
  temp_dir dir_;
  std::string db_, exported_;
};

TEST_F(storage_faults, a_missing_current_file_is_no_database_and_no_writer_creates_one_over_it) {
  fs::remove(db_ + "/CURRENT");
  expect_every_command_stops("CURRENT");
  EXPECT_FALSE(fs::exists(db_ + "/CURRENT")) << "ingest created a database over the old files";
  expect_whole_after_restoring();
}

TEST_F(storage_faults, a_truncated_current_file_is_named) {
  fs::resize_file(db_ + "/CURRENT", 3);
  expect_every_command_stops("CURRENT");
  expect_whole_after_restoring();
}

TEST_F(storage_faults, a_truncated_manifest_is_refused_not_replaced) {
  const std::string manifest = file_where([](const std::string& n) { return n.starts_with("MANIFEST-"); });
  fs::resize_file(manifest, 100);
  expect_every_command_stops("");
  expect_whole_after_restoring();
}

TEST_F(storage_faults, a_missing_manifest_is_named) {
  fs::remove(file_where([](const std::string& n) { return n.starts_with("MANIFEST-"); }));
  expect_every_command_stops("MANIFEST");
  expect_whole_after_restoring();
}

TEST_F(storage_faults, a_missing_table_file_is_an_error_not_a_shorter_log) {
  // Without a writer, a reader opens strictly: a secondary instance would have recovered an older
  // state whose files are all present and shown a shorter log without a word.
  for (const auto& e : fs::directory_iterator(db_))
    if (e.path().extension() == ".sst") fs::remove(e.path());
  expect_every_command_stops("No such file");
  expect_whole_after_restoring();
}

TEST_F(storage_faults, a_truncated_wal_loses_nothing_that_was_flushed) {
  // A clean close flushes the memtables, so the WAL holds nothing the tables lack.
  for (const auto& e : fs::directory_iterator(db_))
    if (e.path().extension() == ".log") fs::resize_file(e.path(), 0);
  EXPECT_EQ(run_pevledger("export --db " + db_).out, exported_);
  EXPECT_EQ(run_pevledger("replay --db " + db_ + " --verify").exit_code, 0);
}

TEST_F(storage_faults, a_db_that_is_a_file_is_named) {
  testing::write_file(dir_.file("plain"), "not a database\n");
  for (const std::string args : {"stats", "balance --account a", "replay --verify", "export"}) {
    const auto space = args.find(' ');
    const auto r = run_pevledger(args.substr(0, space) + " --db " + dir_.file("plain") +
                                 (space == std::string::npos ? "" : args.substr(space)));
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find("not a directory"), std::string::npos) << args << ": " << r.err;
  }
  const auto ingest = run_pevledger("ingest --db " + dir_.file("plain") + " -", more_lines);
  EXPECT_EQ(ingest.exit_code, 2);
  EXPECT_NE(ingest.err.find("not a directory"), std::string::npos) << ingest.err;
  EXPECT_EQ(testing::detail::slurp(dir_.file("plain")), "not a database\n");
}

TEST_F(storage_faults, a_directory_its_user_cannot_write_refuses_ingest_and_answers_queries) {
  // As root, the commands run as `nobody`, who cannot write a directory that is root's.
  fs::permissions(dir_.path(), fs::perms::all);
  ASSERT_EQ(std::system(("chmod -R a+rX,go-w " + db_).c_str()), 0);
  fs::copy_file(PEVLEDGER_BIN, dir_.file("pevledger"));
  fs::permissions(dir_.file("pevledger"), fs::perms::all);
  testing::write_file(dir_.file("more.jsonl"), more_lines);
  fs::permissions(dir_.file("more.jsonl"), fs::perms::all);
  const std::string as_other =
      ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups -- " : "";
  if (as_other.empty()) {
    ASSERT_EQ(std::system(("chmod -R a-w " + db_).c_str()), 0);
  }
  const auto run = [&](const std::string& args) {
    return std::system((as_other + dir_.file("pevledger") + " " + args + " >/dev/null 2>" + dir_.file("err")).c_str());
  };
  const int refused = run("ingest --db " + db_ + " " + dir_.file("more.jsonl"));
  EXPECT_TRUE(WIFEXITED(refused) && WEXITSTATUS(refused) == 2) << "status " << refused;  // a storage error, not an abort
  EXPECT_NE(testing::detail::slurp(dir_.file("err")).find("Permission denied"), std::string::npos)
      << testing::detail::slurp(dir_.file("err"));
  EXPECT_EQ(run("balance --db " + db_ + " --account a"), 0) << testing::detail::slurp(dir_.file("err"));
  ASSERT_EQ(std::system(("chmod -R u+w " + db_).c_str()), 0);
  EXPECT_EQ(run_pevledger("export --db " + db_).out, exported_);
}

}  // namespace
}  // namespace pevledger
