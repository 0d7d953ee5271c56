// A seeded month of PEV charging as JSON command lines (SPEC section 6): sim/fleet.hpp.
//
// Three utilities in three time zones, each with flat, time-of-use, real-time and station tariffs,
// residential premises with ESCI and EUMD, PEVs (some on prepaid accounts, some not allowed to
// roam), a public station with subscription cards, critical-peak and load-control events. Each PEV
// charges every one to three days: mostly at home, sometimes as a guest in its own territory,
// sometimes roaming into another utility's. Devices behave like devices: intervals arrive late and
// out of order, a few twice, a few after the month was billed; some binds are late or carry
// unknown VINs. The month ends with a bill run per utility and a settlement run.
// The same seed always gives the same file.

#include "sim/fleet.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "base/assert.hpp"
#include "sim/vin.hpp"

namespace pevledger::sim {
namespace {

using pevledger::format_timestamp;
using pevledger::unix_seconds;

// A generated line: its text lives in the generator's text blocks, so that sorting a month of
// lines moves small records and the month costs a few large allocations, not one per line.
struct line {
  std::int64_t at;
  std::uint64_t order;  // ties keep generation order
  std::uint32_t block;
  std::uint32_t offset;
  std::uint32_t size;
};

// Text blocks: each holds whole lines, up to 64 MiB (a line is far shorter).
constexpr std::size_t text_block_bytes = 64u << 20;

struct utility_plan {
  std::string id;
  std::string zone;
  int utc_offset_h;  // rough, for realistic local evenings
  int timeout_s;
};

struct premise_plan {
  std::string utility;
  std::string id;
  std::string account;
  std::string eumd;
  std::vector<std::pair<std::int64_t, std::int64_t>> busy;  // one EUMD meters one session at a time
};

// An interval as its EUMD measured it. Sessions are generated PEV by PEV, not in time order, so
// lines are written once all are known: an EUMD's register counts over its life (SPEC section 5),
// in the order of the intervals' starts.
struct metered_interval {
  const std::string* eumd;  // a premise plan's, which outlive every interval
  std::string session;      // short: held inline
  std::int64_t start;
  int wh;
  bool has_register;
  std::int64_t delivered;  // 0: lost for good
  std::int64_t again;      // 0: delivered once
};

// How a PEV charges, with charging profiles on: on a 120 V outlet (about 1.4 kW) or a 240 V
// charger (about 7 kW), and on a time-of-use program deferred to the off-peak night.
struct charging_profile {
  int wh_min = 300, wh_max = 1900;  // a quarter hour's energy
  int intervals_min = 3, intervals_max = 24;
  bool deferred = false;  // starts at the next local midnight
};

struct pev_plan {
  std::string vin;
  std::size_t home;  // index into premises
  bool allow_roaming;
  charging_profile profile;
};

class generator {
 public:
  explicit generator(const fleet_options& o)
      : rng_(o.seed),
        premises_per_utility_(o.premises_per_utility),
        pevs_(o.pevs),
        profiles_(o.charging_profiles),
        month_(o.month),
        days_(o.days) {
    month_start_ = pevledger::days_from_civil({month_.year, month_.month, 1}) * 86400;
  }

  void run(const std::function<bool(std::string_view)>& out) {
    setup();
    for (std::size_t i = 0; i < pev_plans_.size(); ++i) charge(i);
    station_sessions();
    emit_intervals();
    const std::int64_t month_end = month_start_ + static_cast<std::int64_t>(days_) * 86400;
    for (const auto& u : utilities_)
      emit(month_end + 2 * 86400, R"("type":"bill.run","utility":")" + u.id + R"(","period":")" +
                                      month_.to_string() + "\"");
    emit(month_end + 3 * 86400, R"("type":"settlement.run","period":")" + month_.to_string() + "\"");
    std::stable_sort(lines_.begin(), lines_.end(),
                     [](const line& a, const line& b) { return a.at != b.at ? a.at < b.at : a.order < b.order; });
    for (const auto& l : lines_)
      if (!out(std::string_view(blocks_[l.block].data() + l.offset, l.size))) return;
  }

 private:
  static std::string q(const std::string& s) { return "\"" + s + "\""; }

  void emit(std::int64_t at, const std::string& fields) {
    const std::string id = "g" + std::to_string(++next_id_);
    const std::string text = R"({"id":")" + id + R"(","at":")" + format_timestamp(unix_seconds(at)) + "\"," + fields + "}";
    if (blocks_.empty() || blocks_.back().size() + text.size() > text_block_bytes) {
      blocks_.emplace_back();
      blocks_.back().reserve(text_block_bytes);
    }
    std::string& block = blocks_.back();
    lines_.push_back({at, next_id_, static_cast<std::uint32_t>(blocks_.size() - 1),
                      static_cast<std::uint32_t>(block.size()), static_cast<std::uint32_t>(text.size())});
    block += text;
  }

  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  std::string vin() { return pevledger::bench::random_vin(rng_); }

  void setup() {
    utilities_ = {{"u_west", "America/Los_Angeles", -8, 60},
                  {"u_north", "Europe/Helsinki", 2, 90},
                  {"u_east", "Asia/Tokyo", 9, 45}};
    std::int64_t t = month_start_ - 5 * 86400;
    for (const auto& u : utilities_) {
      emit(t++, R"("type":"utility.register","utility":)" + q(u.id) + R"(,"timezone":)" + q(u.zone) +
                    R"(,"comm_timeout_s":)" + std::to_string(u.timeout_s));
      const std::string uid = R"("utility":)" + q(u.id);
      emit(t++, R"("type":"tariff.publish",)" + uid + R"(,"tariff":"res","kind":"flat","price":)" +
                    std::to_string(uniform(150, 320) * 1000));
      emit(t++, R"("type":"tariff.publish",)" + uid +
                    R"(,"tariff":"res_tou","kind":"tou","price":220000,"periods":[)"
                    R"({"name":"peak","days":["Mon","Tue","Wed","Thu","Fri"],"from":"16:00","to":"21:00","price":480000},)"
                    R"({"name":"night","days":["Mon","Tue","Wed","Thu","Fri","Sat","Sun"],"from":"00:00","to":"07:00","price":110000}],)"
                    R"("cpp_price":950000)");
      emit(t++, R"("type":"tariff.publish",)" + uid +
                    R"(,"tariff":"ev_tou","kind":"tou","price":250000,"periods":[)"
                    R"({"name":"super_off_peak","days":["Mon","Tue","Wed","Thu","Fri","Sat","Sun"],"from":"00:00","to":"06:00","price":90000},)"
                    R"({"name":"peak","days":["Mon","Tue","Wed","Thu","Fri"],"from":"16:00","to":"21:00","price":500000},)"
                    R"({"name":"late","days":["Mon","Tue","Wed","Thu","Fri","Sat","Sun"],"from":"21:00","to":"24:00","price":200000}],)"
                    R"("cpp_price":1050000)");
      emit(t++, R"("type":"tariff.publish",)" + uid + R"(,"tariff":"ev_flat","kind":"flat","price":)" +
                    std::to_string(uniform(170, 240) * 1000));
      emit(t++, R"("type":"tariff.publish",)" + uid + R"(,"tariff":"ev_rtp","kind":"rtp","price":230000,"cpp_price":820000)");
      emit(t++, R"("type":"tariff.publish",)" + uid + R"(,"tariff":"station","kind":"flat","price":440000)");
      // Real-time prices for every hour of the month, published the day before.
      for (std::int64_t h = month_start_; h < month_start_ + static_cast<std::int64_t>(days_) * 86400; h += 3600)
        emit(h - 86400, R"("type":"price.publish",)" + uid + R"(,"tariff":"ev_rtp","hour":)" +
                            q(format_timestamp(unix_seconds(h))) + R"(,"price":)" +
                            std::to_string(uniform(60, 600) * 1000));
      for (int e = 0; e < 2; ++e) {
        const std::int64_t day = month_start_ + uniform(2, days_ - 2) * 86400;
        const std::int64_t start = day + ((17 - u.utc_offset_h + 24) % 24) * 3600;
        emit(day - 3600, R"("type":"cpp.declare",)" + uid + R"(,"start":)" + q(format_timestamp(unix_seconds(start))) +
                             R"(,"end":)" + q(format_timestamp(unix_seconds(start + 3 * 3600))));
        const std::int64_t dlc = day + ((19 - u.utc_offset_h + 24) % 24) * 3600;
        emit(day - 3600, R"("type":"dlc.declare",)" + uid + R"(,"start":)" + q(format_timestamp(unix_seconds(dlc))) +
                             R"(,"end":)" + q(format_timestamp(unix_seconds(dlc + 2 * 3600))));
      }
      // The station operator and its public station.
      emit(t++, R"("type":"account.open",)" + uid + R"(,"account":)" + q(u.id + "-op") + R"(,"customer":"operator")");
      const std::string station = u.id + "-st0";
      emit(t++, R"("type":"premise.register",)" + uid + R"(,"premise":)" + q(station) + R"(,"account":)" +
                    q(u.id + "-op") + R"(,"default_tariff":"station","kind":"public")");
      emit(t++, R"("type":"device.commission","premise":)" + q(station) + R"(,"device":)" + q(station + "-eumd") +
                    R"(,"kind":"eumd")");
      emit(t++, R"("type":"station.boot","premise":)" + q(station) + "");
      emit(t++, R"("type":"station.activate","premise":)" + q(station) + "");
      stations_.push_back({u.id, station, u.id + "-op", station + "-eumd"});
      for (int p = 0; p < premises_per_utility_; ++p) add_premise(u, p, t);
      std::string cards;
      for (const auto& c : cards_)
        if (c.rfind(u.id, 0) == 0) cards += (cards.empty() ? "" : ",") + q(c);
      emit(t++, R"("type":"whitelist.push","premise":)" + q(station) + R"(,"version":1,"cards":[)" + cards + "]");
    }
  }

  void add_premise(const utility_plan& u, int p, std::int64_t& t) {
    const std::string base = u.id + "-p" + std::to_string(p);
    const std::string account = u.id + "-a" + std::to_string(p);
    emit(t++, R"("type":"account.open","utility":)" + q(u.id) + R"(,"account":)" + q(account) +
                  R"(,"customer":)" + q(u.id + "-c" + std::to_string(p)));
    emit(t++, R"("type":"premise.register","utility":)" + q(u.id) + R"(,"premise":)" + q(base) + R"(,"account":)" +
                  q(account) + R"(,"default_tariff":)" + q(chance(0.5) ? "res" : "res_tou") + R"(,"guest_policy":)" +
                  q(chance(0.4) ? "guest_pays" : "host_pays"));
    emit(t++, R"("type":"device.commission","premise":)" + q(base) + R"(,"device":)" + q(base + "-esci") +
                  R"(,"kind":"esci")");
    emit(t++, R"("type":"device.commission","premise":)" + q(base) + R"(,"device":)" + q(base + "-eumd") +
                  R"(,"kind":"eumd","interval_s":900)");
    premises_.push_back({u.id, base, account, base + "-eumd"});
    const int pevs = pevs_per_premise(u, p);
    for (int k = 0; k < pevs; ++k) {
      std::string payer = account;
      if (chance(0.2)) {
        payer = account + "-ev" + std::to_string(k);
        emit(t++, R"("type":"account.open","utility":)" + q(u.id) + R"(,"account":)" + q(payer) +
                      R"(,"customer":)" + q(u.id + "-c" + std::to_string(p)) + R"(,"kind":"prepaid")");
        emit(t++, R"("type":"account.topup","account":)" + q(payer) + R"(,"amount":)" +
                      std::to_string(uniform(5, 60) * 1000000));
      }
      const std::string v = vin();
      const bool roams = chance(0.9);
      static const char* tariffs[] = {"ev_tou", "ev_flat", "ev_rtp"};
      const char* tariff = tariffs[uniform(0, 2)];
      emit(t++, R"("type":"pev.enroll","account":)" + q(payer) + R"(,"pev":)" + q(v) + R"(,"tariff":)" +
                    q(tariff) + R"(,"home_premise":)" + q(base) + R"(,"allow_roaming":)" +
                    (roams ? "true" : "false"));
      emit(t++, R"("type":"pev.setup","pev":)" + q(v) + R"(,"premise":)" + q(base) + R"(,"esci":)" +
                    q(base + "-esci") + R"(,"eumd":)" + q(base + "-eumd"));
      pev_plans_.push_back({v, premises_.size() - 1, roams, profile_of(tariff)});
    }
    if (chance(0.3)) {
      const std::string card = u.id + "-card" + std::to_string(p);
      emit(t++, R"("type":"card.assign","card":)" + q(card) + R"(,"account":)" + q(account));
      cards_.push_back(card);
    }
  }

  // With a fleet size asked for, premises share it evenly in order; otherwise one in five has two.
  int pevs_per_premise(const utility_plan& u, int p) {
    if (pevs_ == 0) return chance(0.2) ? 2 : 1;
    const auto u_index = static_cast<std::int64_t>(&u - utilities_.data());
    const std::int64_t premises = 3 * static_cast<std::int64_t>(premises_per_utility_);
    const std::int64_t g = u_index * premises_per_utility_ + p;
    return static_cast<int>((g + 1) * pevs_ / premises - g * pevs_ / premises);
  }

  // Without profiles every PEV charges alike (and draws nothing here, so the month stays the same).
  charging_profile profile_of(std::string_view tariff) {
    if (!profiles_) return {};
    if (chance(0.3)) return {300, 360, 16, 40, false};  // 120 V: slow, through the night, at once
    return {1400, 1900, 3, 24, tariff == "ev_tou"};     // 240 V: a time-of-use program waits for night
  }

  // Intervals of one session from `first_start`, delivered like devices deliver them.
  void meter(const std::string& eumd, const std::string& session, std::int64_t first_start, int intervals,
             std::int64_t& unplug, const charging_profile& profile = {}) {
    std::int64_t start = first_start;
    std::int64_t total = 0;
    for (int i = 0; i < intervals; ++i, start += 900) {
      const int wh = uniform(profile.wh_min, profile.wh_max);
      total += wh;
      std::int64_t delivered = start + 900 + uniform(1, 120);
      if (chance(0.03)) delivered += uniform(1, 6) * 3600;        // a link that was down
      if (chance(0.002)) delivered += 20 * 86400;                 // found weeks later
      metered_interval m{&eumd, session, start, wh, chance(0.97), delivered, 0};
      if (chance(0.005)) m.delivered = 0;                          // lost for good
      if (chance(0.01)) m.again = delivered + uniform(60, 3600);   // at-least-once delivery
      metered_.push_back(std::move(m));
    }
    unplug = start + uniform(30, 600);
    last_total_ = total;
  }

  // Each EUMD's intervals in start order, with the register counting from the EUMD's first.
  void emit_intervals() {
    std::stable_sort(metered_.begin(), metered_.end(), [](const metered_interval& a, const metered_interval& b) {
      return *a.eumd != *b.eumd ? *a.eumd < *b.eumd : a.start < b.start;
    });
    std::int64_t register_wh = 0;
    for (std::size_t i = 0; i < metered_.size(); ++i) {
      const metered_interval& m = metered_[i];
      if (i == 0 || *metered_[i - 1].eumd != *m.eumd) register_wh = 0;
      register_wh += m.wh;
      if (m.delivered == 0) continue;
      const std::string fields = R"("type":"meter.interval","device":)" + q(*m.eumd) + R"(,"session":)" + q(m.session) +
                                 R"(,"start":)" + q(format_timestamp(unix_seconds(m.start))) +
                                 R"(,"seconds":900,"wh":)" + std::to_string(m.wh) +
                                 (m.has_register ? R"(,"register_wh":)" + std::to_string(register_wh) : "");
      emit(m.delivered, fields);
      if (m.again != 0) emit(m.again, fields);
    }
    metered_.clear();
  }

  void charge(std::size_t pev_index) {
    const pev_plan& pev = pev_plans_[pev_index];
    const premise_plan& home = premises_[pev.home];
    const utility_plan& u = *std::find_if(utilities_.begin(), utilities_.end(),
                                          [&](const utility_plan& x) { return x.id == home.utility; });
    for (int day = uniform(0, 2); day < days_ - 1; day += uniform(1, 3)) {
      std::size_t where = pev.home;
      const double roll = std::uniform_real_distribution<double>(0, 1)(rng_);
      if (roll > 0.9) where = static_cast<std::size_t>(uniform(0, static_cast<int>(premises_.size()) - 1));
      else if (roll > 0.8) {
        const std::size_t first = pev.home - pev.home % premises_per_utility_;
        where = first + static_cast<std::size_t>(uniform(0, premises_per_utility_ - 1));
      }
      premise_plan& at = premises_[where];
      const std::int64_t evening = month_start_ + static_cast<std::int64_t>(day) * 86400 +
                                   ((uniform(17, 23) - u.utc_offset_h + 24) % 24) * 3600 + uniform(0, 3599);
      const int intervals = uniform(pev.profile.intervals_min, pev.profile.intervals_max);
      // Charging begins at the next quarter hour, or for a deferred PEV at the local midnight.
      std::int64_t first_start = evening - evening % 900 + 900;
      if (pev.profile.deferred) {
        const std::int64_t local = evening + static_cast<std::int64_t>(u.utc_offset_h) * 3600;
        first_start = (local / 86400 + 1) * 86400 - static_cast<std::int64_t>(u.utc_offset_h) * 3600;
      }
      const std::int64_t until = (pev.profile.deferred ? first_start : evening) + (intervals + 2) * 900;
      const bool taken = std::any_of(at.busy.begin(), at.busy.end(),
                                     [&](const auto& b) { return evening < b.second && b.first < until; });
      if (taken) continue;  // the charger is in use: this PEV charges another day
      at.busy.emplace_back(evening, until);
      const std::string session = "s" + std::to_string(++sessions_);
      emit(evening, R"("type":"session.plug","session":)" + q(session) + R"(,"premise":)" + q(at.id));
      std::string bound = pev.vin;
      if (chance(0.01)) bound = vin();  // a PEV nobody enrolled
      const int bind_delay = chance(0.02) ? uniform(120, 600) : uniform(2, 40);
      emit(evening + bind_delay, R"("type":"session.bind","session":)" + q(session) + R"(,"pev":)" + q(bound));
      emit(evening + bind_delay + 5, R"("type":"energy.request","session":)" + q(session) + R"(,"wh":)" +
                                         std::to_string(uniform(5, 40) * 1000) + R"(,"depart":)" +
                                         q(format_timestamp(unix_seconds(evening + 12 * 3600))));
      std::int64_t unplug = 0;
      meter(at.eumd, session, first_start, intervals, unplug, pev.profile);
      const std::int64_t reported = chance(0.97) ? last_total_ : last_total_ + uniform(200, 2000);
      emit(unplug - 5, R"("type":"pev.total","session":)" + q(session) + R"(,"wh":)" + std::to_string(reported));
      emit(unplug, R"("type":"session.unplug","session":)" + q(session));
    }
  }

  void station_sessions() {
    for (std::size_t c = 0; c < cards_.size(); ++c) {
      const std::string& card = cards_[c];
      premise_plan* station = nullptr;
      for (auto& s : stations_)
        if (card.rfind(s.utility, 0) == 0) station = &s;
      for (int k = 0; k < 3; ++k) {
        const std::int64_t start = month_start_ + uniform(0, days_ - 2) * 86400 + uniform(8, 20) * 3600;
        const int intervals = uniform(2, 6);
        const std::int64_t until = start + (intervals + 2) * 900;
        const bool taken = std::any_of(station->busy.begin(), station->busy.end(),
                                       [&](const auto& b) { return start < b.second && b.first < until; });
        if (taken) continue;
        station->busy.emplace_back(start, until);
        const std::string session = "ps" + std::to_string(++sessions_);
        emit(start, R"("type":"session.start","session":)" + q(session) + R"(,"premise":)" + q(station->id) +
                        R"(,"card":)" + q(card) + R"(,"online":)" + (chance(0.8) ? "true" : "false"));
        std::int64_t unplug = 0;
        meter(station->eumd, session, start - start % 900 + 900, intervals, unplug);
        emit(unplug, R"("type":"session.unplug","session":)" + q(session));
      }
    }
  }

  std::mt19937_64 rng_;
  int premises_per_utility_;
  std::int64_t pevs_;
  bool profiles_;
  pevledger::month_period month_;
  int days_;
  std::int64_t month_start_ = 0;
  std::uint64_t next_id_ = 0;
  std::uint64_t sessions_ = 0;
  std::int64_t last_total_ = 0;
  std::vector<utility_plan> utilities_;
  std::vector<premise_plan> premises_;
  std::vector<premise_plan> stations_;
  std::vector<pev_plan> pev_plans_;
  std::vector<std::string> cards_;
  std::vector<line> lines_;
  std::vector<std::string> blocks_;
  std::vector<metered_interval> metered_;
};

}  // namespace

std::optional<std::string> check(const fleet_options& o) {
  if (o.premises_per_utility < 1 || o.premises_per_utility > 1000000) return "premises per utility: 1 to 1,000,000";
  if (o.pevs < 0 || o.pevs > 3 * static_cast<std::int64_t>(o.premises_per_utility) * 2)
    return "PEVs: 0 (one or two a premise) to two a premise";
  if (o.days < 4 || o.days > 31) return "days: 4 to 31";
  return std::nullopt;
}

void generate_fleet(const fleet_options& options, const std::function<bool(std::string_view line)>& out) {
  PEV_ASSERT(!check(options));
  generator(options).run(out);
}

}  // namespace pevledger::sim
