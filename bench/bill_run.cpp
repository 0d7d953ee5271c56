// bench/bill_run: the month's bill run for every account of a fleet population, timed on its own
// after the month is ingested: seconds and bills per second. Prints JSON.
//
//   bill_run [--premises-per-utility N] [--dir DIR]
//   bill_run --db DIR --runs FILE [--premises-per-utility N]
//
// The second form times the bill-run lines of FILE on a database bench/ingest --keep left (its
// DIR/db and DIR/bill_runs.jsonl), so that the full-size month is ingested once per bench run.

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/bench_info.hpp"
#include "pevledger/engine.hpp"
#include "storage/event_log.hpp"

int main(int argc, char** argv) {
  int premises = 1500;
  std::string dir = "/tmp/pevledger-bench-bill-run", db, runs_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--premises-per-utility") premises = std::stoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--db") db = argv[i + 1];
    else if (flag == "--runs") runs_file = argv[i + 1];
  }
  if (db.empty() != runs_file.empty()) {
    std::cerr << "bill_run: --db and --runs go together\n";
    return 2;
  }
  const bool own_db = db.empty();
  std::string runs;
  if (own_db) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string fleet = dir + "/fleet.jsonl";
    if (!pevledger::bench::generate_fleet(argv[0], premises, fleet)) return 2;
    // The month, then its bill runs (the generator writes them last, with the settlement run).
    std::string month;
    std::ifstream in(fleet);
    for (std::string line; std::getline(in, line);) {
      const bool run = line.find(R"("type":"bill.run")") != std::string::npos;
      (run ? runs : month) += line + "\n";
    }
    db = dir + "/db";
    auto engine = pevledger::engine::open(db);
    if (!engine) return 2;
    std::istringstream month_in(month);
    if (!engine.value()->ingest(month_in, {})) return 2;
  } else {
    std::ifstream in(runs_file);
    for (std::string line; std::getline(in, line);) runs += line + "\n";
  }
  // Every account of the population gets a bill: the accounts the utilities opened.
  std::uint64_t accounts = 0;
  {
    auto log = pevledger::storage::event_log::open(db);
    if (!log) return 2;
    if (!log.value()->scan_streams("account/", [&](std::string_view, std::uint64_t) {
          ++accounts;
          return pevledger::status::ok();
        }).is_ok())
      return 2;
  }
  // Reopened: the bill run starts from what is durable, as it would in a new process.
  auto engine = pevledger::engine::open(db);
  if (!engine) return 2;
  std::istringstream runs_in(runs);
  const auto t0 = std::chrono::steady_clock::now();
  auto summary = engine.value()->ingest(runs_in, {});
  const double run_s = pevledger::bench::seconds_since(t0);
  if (!summary || summary->accepted == 0) return 2;
  const auto residency = engine.value()->residency();
  engine.value().reset();
  if (own_db) std::filesystem::remove_all(dir);

  auto j = pevledger::bench::header("bill_run");
  j["settings"] = {{"premises_per_utility", premises}};
  j["accounts"] = accounts;
  j["bill_runs"] = summary->accepted;
  j["bill_run_s"] = std::round(run_s * 1000) / 1000;
  j["bills_per_s"] = static_cast<long long>(static_cast<double>(accounts) / run_s);
  j["activations"] = residency.activations;
  std::cout << j.dump(2) << std::endl;
  return 0;
}
