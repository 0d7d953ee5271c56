// bench/peer_sql_gen: turns a fleet month (JSON command lines on standard input) into the SQL a
// utility would otherwise run: a PostgreSQL table of intervals loaded with batched INSERTs, plus
// the tables its bill query joins (who bound each session, each PEV's account and tariff, tariff
// prices). Writes DIR/schema.sql (the tables), DIR/load-K.sql for K in [0, connections) (the rows
// one loader connection sends), DIR/finish.sql (what the load does once every row is in) and
// DIR/bill.sql (the month's bills).
//
//   peer_sql_gen DIR [--batch N] [--connections N] < fleet.jsonl
//
// The peer is deliberately simple and favourable to it: one price per tariff (the base price of
// time-of-use and real-time tariffs), the PEV's account pays every interval of a bound session,
// duplicates are dropped by the primary key. A loader on a machine of several cores sends over as
// many connections; each row goes to the connection its primary key hashes to, so that a key's
// statements keep their order (a tariff published twice ends with its newer price) and no two
// connections wait on one key's lock.

#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schema/json_line.hpp"

namespace {

using pevledger::schema::json_line;

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The top-level fields of one fleet line. The fleet writes every field it names with its type, so a
// field that is missing or of another type reads as empty (a string) or 0 (a number).
struct fields {
  const json_line& doc;
  [[nodiscard]] std::uint32_t find(std::string_view name) const { return doc.member(0, name); }
  [[nodiscard]] std::string_view str(std::string_view name) const {
    const std::uint32_t v = find(name);
    return v != json_line::none && doc.at(v).type == json_line::kind::string ? doc.at(v).text : std::string_view();
  }
  [[nodiscard]] long long num(std::string_view name) const {
    const std::uint32_t v = find(name);
    if (v == json_line::none) return 0;
    const json_line::node& n = doc.at(v);
    if (n.type == json_line::kind::integer) return n.integer;
    if (n.type == json_line::kind::unsigned_integer) return static_cast<long long>(n.unsigned_integer);
    return 0;
  }
  [[nodiscard]] bool has_number(std::string_view name) const {
    const std::uint32_t v = find(name);
    return v != json_line::none &&
           (doc.at(v).type == json_line::kind::integer || doc.at(v).type == json_line::kind::unsigned_integer);
  }
};

// One loader connection's statements: reference rows (tariffs, PEVs, bindings) in transactions of
// `batch` statements, as a loader would send them (without that, one synchronous commit per binding
// dominated the peer's time), and intervals in INSERTs of `batch` rows, each committed on its own.
class connection_script {
 public:
  // A failed statement stops the connection's psql with a non-zero status, failing the benchmark.
  connection_script(const std::string& path, std::size_t batch) : out_(path), batch_(batch) {
    rows_.reserve(batch);
    out_ << "\\set ON_ERROR_STOP on\n";
  }

  void reference(const std::string& statement) {
    if (reference_in_transaction_ == 0) out_ << "BEGIN;\n";
    out_ << statement;
    if (++reference_in_transaction_ >= batch_) end_reference();
  }

  void interval(std::string row) {
    rows_.push_back(std::move(row));
    if (rows_.size() >= batch_) flush();
  }

  // Sends what is pending; true when every statement was written.
  bool close() {
    flush();
    end_reference();
    out_.close();
    return static_cast<bool>(out_);
  }

 private:
  void end_reference() {
    if (reference_in_transaction_ != 0) out_ << "COMMIT;\n";
    reference_in_transaction_ = 0;
  }

  void flush() {
    if (rows_.empty()) return;
    end_reference();
    out_ << "INSERT INTO intervals VALUES ";
    for (std::size_t i = 0; i < rows_.size(); ++i) out_ << (i ? "," : "") << rows_[i];
    out_ << " ON CONFLICT DO NOTHING;\n";  // each statement commits on its own: synchronous_commit
    rows_.clear();
  }

  std::ofstream out_;
  std::size_t batch_;
  std::size_t reference_in_transaction_ = 0;
  std::vector<std::string> rows_;
};

}  // namespace

int main(int argc, char** argv) {
  constexpr std::size_t connections_max = 64;
  if (argc < 2) {
    std::cerr << "usage: peer_sql_gen DIR [--batch N] [--connections N] < fleet.jsonl\n";
    return 2;
  }
  // Unsynced, std::cin reads in blocks rather than a character at a time through stdio: a third of
  // this program's time at 10 million intervals.
  std::ios::sync_with_stdio(false);
  const std::string dir = argv[1];
  std::size_t batch = 1000, connections = 1;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--batch") batch = std::stoul(argv[i + 1]);
    else if (flag == "--connections") connections = std::stoul(argv[i + 1]);
    else {
      std::cerr << "usage: peer_sql_gen DIR [--batch N] [--connections N] < fleet.jsonl\n";
      return 2;
    }
  }
  if (batch == 0 || connections == 0 || connections > connections_max) {
    std::cerr << "peer_sql_gen: --batch at least 1, --connections 1 to " << connections_max << '\n';
    return 2;
  }
  std::ofstream schema(dir + "/schema.sql"), finish(dir + "/finish.sql"), bill(dir + "/bill.sql");
  schema << "\\set ON_ERROR_STOP on\n"
            "CREATE TABLE tariffs (utility text, tariff text, price_micro_per_kwh bigint, PRIMARY KEY (utility, tariff));\n"
            "CREATE TABLE pevs (vin text PRIMARY KEY, account text, utility text, tariff text);\n"
            "CREATE TABLE bindings (session text PRIMARY KEY, vin text);\n"
            "CREATE TABLE intervals (device text, start timestamptz, session text, seconds int, wh bigint,\n"
            "                        register_wh bigint, PRIMARY KEY (device, start));\n";
  std::vector<std::unique_ptr<connection_script>> scripts;
  for (std::size_t k = 0; k < connections; ++k)
    scripts.push_back(std::make_unique<connection_script>(dir + "/load-" + std::to_string(k) + ".sql", batch));
  auto by_key = [&](std::string_view key) -> connection_script& {
    return *scripts[std::hash<std::string_view>{}(key) % connections];
  };
  std::uint64_t intervals = 0;
  // The schema's own strict reader, not nlohmann's DOM: the fleet month's 1.4 million lines at 1,500
  // premises a utility take 1.6 s of user time instead of 7.8 s, with the same SQL out.
  json_line doc;
  for (std::string line; std::getline(std::cin, line);) {
    if (!doc.read(line) || doc.at(0).type != json_line::kind::object) continue;
    const fields j{doc};
    const std::string_view type = j.str("type");
    if (type == "tariff.publish") {
      const std::string utility = quoted(j.str("utility")), tariff = quoted(j.str("tariff"));
      by_key(utility + tariff)
          .reference("INSERT INTO tariffs VALUES (" + utility + "," + tariff + "," + std::to_string(j.num("price")) +
                     ") ON CONFLICT (utility, tariff) DO UPDATE SET price_micro_per_kwh = " +
                     std::to_string(j.num("price")) + ";\n");
    } else if (type == "pev.enroll") {
      by_key(j.str("pev")).reference("INSERT INTO pevs SELECT " + quoted(j.str("pev")) + "," + quoted(j.str("account")) +
                                     ", NULL, " + quoted(j.str("tariff")) + ";\n");
    } else if (type == "session.bind") {
      by_key(j.str("session"))
          .reference("INSERT INTO bindings VALUES (" + quoted(j.str("session")) + "," + quoted(j.str("pev")) +
                     ") ON CONFLICT DO NOTHING;\n");
    } else if (type == "meter.interval") {
      ++intervals;
      by_key(j.str("device"))
          .interval("(" + quoted(j.str("device")) + "," + quoted(j.str("start")) + "," + quoted(j.str("session")) + "," +
                    std::to_string(j.num("seconds")) + "," + std::to_string(j.num("wh")) + "," +
                    (j.has_number("register_wh") ? std::to_string(j.num("register_wh")) : "NULL") + ")");
    }
  }
  bool written = true;
  for (auto& script : scripts) written = script->close() && written;
  // The PEV's utility is its account's; the fleet names accounts "<utility>-a<n>...".
  finish << "\\set ON_ERROR_STOP on\nUPDATE pevs SET utility = split_part(account, '-', 1);\nANALYZE;\n";
  bill << "\\set ON_ERROR_STOP on\n"
          "SELECT p.account, count(*) AS lines, sum(i.wh) AS wh,\n"
          "       sum(round(i.wh * t.price_micro_per_kwh / 1000.0)) AS total_micro\n"
          "FROM intervals i JOIN bindings b USING (session) JOIN pevs p ON p.vin = b.vin\n"
          "JOIN tariffs t ON t.utility = p.utility AND t.tariff = p.tariff\n"
          "WHERE i.start >= '2024-03-01' AND i.start < '2024-04-01'\n"
          "GROUP BY p.account ORDER BY p.account;\n";
  std::cout << intervals << '\n';
  return written && schema && finish && bill ? 0 : 2;
}
