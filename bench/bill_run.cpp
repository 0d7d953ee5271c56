// bench/bill_run: the month's bill run for every account of a fleet population, timed on its own
// after the month is ingested: seconds and bills per second. Prints JSON.
//
//   bill_run [--premises-per-utility N] [--dir DIR]

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/bench_info.hpp"
#include "pevledger/engine.hpp"

int main(int argc, char** argv) {
  int premises = 1500;
  std::string dir = "/tmp/pevledger-bench-bill-run";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--premises-per-utility") premises = std::stoi(argv[i + 1]);
    else if (flag == "--dir") dir = argv[i + 1];
  }
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string fleet = dir + "/fleet.jsonl";
  if (!pevledger::bench::generate_fleet(argv[0], premises, fleet)) return 2;
  // The month, then its bill runs (the generator writes them last, with the settlement run).
  std::string month, runs;
  std::uint64_t accounts = 0;
  {
    std::ifstream in(fleet);
    for (std::string line; std::getline(in, line);) {
      if (line.find(R"("type":"account.open")") != std::string::npos) ++accounts;
      const bool run = line.find(R"("type":"bill.run")") != std::string::npos;
      (run ? runs : month) += line + "\n";
    }
  }
  auto engine = pevledger::engine::open(dir + "/db");
  if (!engine) return 2;
  std::istringstream month_in(month);
  if (!engine.value()->ingest(month_in, {})) return 2;
  std::istringstream runs_in(runs);
  const auto t0 = std::chrono::steady_clock::now();
  auto summary = engine.value()->ingest(runs_in, {});
  const double run_s = pevledger::bench::seconds_since(t0);
  if (!summary || summary->accepted == 0) return 2;
  const auto residency = engine.value()->residency();
  engine.value().reset();
  std::filesystem::remove_all(dir);

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
