// bench/fleet_gen: writes a seeded month of PEV charging as JSON command lines (SPEC section 6),
// the fleet of sim/fleet.hpp.
//
//   fleet_gen [--seed N] [--premises-per-utility N] [--pevs N] [--month YYYY-MM] [--days N]
//             [--charging-profiles on|off]   (off: the month fleet_gen has always made for a seed)

#include <iostream>
#include <string>

#include "sim/fleet.hpp"

int main(int argc, char** argv) {
  pevledger::sim::fleet_options options;
  std::string month = "2024-03";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    try {
      if (flag == "--seed") options.seed = std::stoull(argv[i + 1]);
      else if (flag == "--premises-per-utility") options.premises_per_utility = std::stoi(argv[i + 1]);
      else if (flag == "--pevs") options.pevs = std::stoll(argv[i + 1]);
      else if (flag == "--month") month = argv[i + 1];
      else if (flag == "--days") options.days = std::stoi(argv[i + 1]);
      else if (flag == "--charging-profiles") options.charging_profiles = std::string(argv[i + 1]) == "on";
      else throw std::invalid_argument(flag);
    } catch (const std::exception&) {
      std::cerr << "usage: fleet_gen [--seed N] [--premises-per-utility N] [--pevs N] [--month YYYY-MM] [--days N] "
                   "[--charging-profiles on|off]\n";
      return 2;
    }
  }
  auto m = pevledger::parse_month(month);
  if (!m) {
    std::cerr << "fleet_gen: --month YYYY-MM\n";
    return 2;
  }
  options.month = m.value();
  if (auto why = pevledger::sim::check(options)) {
    std::cerr << "fleet_gen: " << *why << "\n";
    return 2;
  }
  std::ios::sync_with_stdio(false);
  pevledger::sim::generate_fleet(options, [](std::string_view line) {
    std::cout.write(line.data(), static_cast<std::streamsize>(line.size()));
    std::cout.put('\n');
    return true;
  });
  return 0;
}
