// A utility's program that embeds pevledger: it opens a database, submits a day of charging through
// the typed API (no JSON written or read), and prints one customer's bill and balance.
//
//   embed_day DIR      (DIR: a database directory, created when missing)
//
// The customer charges 6 kWh at home on an EV tariff of 0.15 a kWh while the house tariff is
// 0.25: the EV's energy is charged at 0.90 and credited at 1.50 (the main meter bills it at the
// house tariff), a bill of -0.60 with a balance to match once the session is posted.

#include <pevledger/engine.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

namespace {

using namespace std::chrono;
using pevledger::command;
namespace cmd = pevledger::commands;

std::vector<command> a_day_of_charging() {
  const sys_days day = 2024y / March / 12;
  auto at = [&](hours h, minutes m = 0min) { return sys_seconds(day + h + m); };
  std::vector<command> day_of;
  day_of.push_back({"e1", at(0h), cmd::utility_register{"u_east", "America/New_York", {}, {}}});
  day_of.push_back({"e2", at(0h, 1min), cmd::tariff_publish{"u_east", "house", pevledger::tariff_kind::flat, 250'000, {}, {}}});
  day_of.push_back({"e3", at(0h, 2min), cmd::tariff_publish{"u_east", "ev", pevledger::tariff_kind::flat, 150'000, {}, {}}});
  day_of.push_back({"e4", at(0h, 3min), cmd::account_open{"u_east", "acct-7", "Ada", pevledger::account_kind::postpaid}});
  day_of.push_back({"e5", at(0h, 4min), cmd::premise_register{"u_east", "home-7", "acct-7", "house", {}, {}}});
  day_of.push_back({"e6", at(0h, 5min), cmd::device_commission{"home-7", "eumd-7", pevledger::device_kind::eumd, {}}});
  day_of.push_back({"e7", at(0h, 6min), cmd::pev_enroll{"acct-7", "1HGCM82633A004352", "ev", "home-7", true}});
  day_of.push_back({"e8", at(22h), cmd::session_plug{"s-1", "home-7", "eumd-7"}});
  day_of.push_back({"e9", at(22h, 0min) + 20s, cmd::session_bind{"s-1", "1HGCM82633A004352"}});
  for (int i = 0; i < 4; ++i) {
    const sys_seconds start = at(22h) + minutes(15 * i);
    day_of.push_back({"e10-" + std::to_string(i), start + 15min,
                      cmd::meter_interval{"eumd-7", "s-1", start, 900, 1500, {}}});
  }
  day_of.push_back({"e11", at(23h, 5min), cmd::session_unplug{"s-1"}});
  return day_of;
}

std::string money(std::int64_t micro) {
  char text[48];
  const std::int64_t whole = micro / 1'000'000, part = (micro < 0 ? -micro : micro) % 1'000'000;
  std::snprintf(text, sizeof text, "%s%lld.%06lld", micro < 0 && whole == 0 ? "-" : "", static_cast<long long>(whole),
                static_cast<long long>(part));
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: embed_day DIR\n");
    return 2;
  }
  std::printf("pevledger %s\n", pevledger::library_version());
  pevledger::engine_options options;
  options.actor_threads = 1;  // a small program: one thread for the entity actors
  auto opened = pevledger::engine::open(argv[1], options);
  if (!opened) {
    std::fprintf(stderr, "open: %s\n", opened.error().describe().c_str());
    return 2;
  }
  pevledger::engine& engine = *opened.value();

  const auto day = a_day_of_charging();
  auto outcomes = engine.submit(day);
  if (!outcomes) {
    std::fprintf(stderr, "submit: %s\n", outcomes.error().describe().c_str());
    return 2;
  }
  int accepted = 0;
  for (std::size_t i = 0; i < day.size(); ++i) {
    const auto& o = outcomes.value()[i];
    if (o.what == pevledger::command_outcome::kind::accepted) ++accepted;
    if (o.what == pevledger::command_outcome::kind::refused)
      std::printf("refused %s: %s\n", day[i].id.c_str(), o.refusal.describe().c_str());
  }
  std::printf("accepted %d of %zu commands\n", accepted, day.size());

  auto bill = engine.bill_of("acct-7", 2024y / March);
  if (!bill) {
    std::fprintf(stderr, "bill: %s\n", bill.error().describe().c_str());
    return 2;
  }
  std::printf("bill %s %04d-%02u (%s)\n", bill->account.c_str(), static_cast<int>(bill->period.year()),
              static_cast<unsigned>(bill->period.month()), bill->issued ? "issued" : "preview");
  for (const auto& line : bill->lines)
    std::printf("  %-6s %-10s %-6s %-6s %6lld Wh %12s\n", line.session.c_str(), line.kind.c_str(), line.tariff.c_str(),
                line.window.c_str(), static_cast<long long>(line.wh), money(line.amount_micro).c_str());
  std::printf("  total %s (%lld cents)\n", money(bill->total_micro).c_str(), static_cast<long long>(bill->total_cents));

  auto balance = engine.balance_of("acct-7");
  if (!balance) {
    std::fprintf(stderr, "balance: %s\n", balance.error().describe().c_str());
    return 2;
  }
  std::printf("balance %s reserved %s\n", money(balance->balance_micro).c_str(), money(balance->reserved_micro).c_str());

  // A failure is a value, not an abort: an account that does not exist.
  auto unknown = engine.balance_of("nobody");
  std::printf("nobody: %s\n", unknown ? "found" : std::string(pevledger::to_string(unknown.error().code())).c_str());
  return 0;
}
