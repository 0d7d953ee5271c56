// The world generator (see world.hpp). Every choice is drawn from rapidcheck so that a failing world
// shrinks: counts shrink to their smallest, chance() to "feature absent", picks to the first choice.

#include "fuzz/world.hpp"

#include <ctime>

#include "fuzz/check.hpp"

namespace pevledger::fuzzing {

std::string timestamp(unix_time t) {
  const std::time_t tt = t;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void showValue(const world& w, std::ostream& os) {
  os << w.lines.size() << " command lines:\n";
  for (const auto& l : w.lines) os << l.text << "\n";
}

namespace {

// rapidcheck's inRange scales with the case's size (small cases draw near the minimum); a world's
// choices are drawn from the whole range at every size, and still shrink toward the minimum.
// The instant of a timestamp this generator wrote ("YYYY-MM-DDTHH:MM:SSZ").
unix_time parse_utc(const std::string& text) {
  FUZZ_CHECK(text.size() == 20 && text[10] == 'T' && text[19] == 'Z');
  auto n = [&](std::size_t at, std::size_t len) { return std::stoi(text.substr(at, len)); };
  return utc(n(0, 4), n(5, 2), n(8, 2), n(11, 2), n(14, 2), n(17, 2));
}

int uniform(int lo, int hi) { return *rc::gen::resize(100, rc::gen::inRange(lo, hi)); }
bool chance(int percent) { return uniform(0, 100) >= 100 - percent; }
int pick(std::size_t n) { return uniform(0, static_cast<int>(n)); }
template <class T>
const T& pick_of(const std::vector<T>& v) {
  return v[static_cast<std::size_t>(pick(v.size()))];
}

const std::vector<std::string> zones = {"America/Los_Angeles", "Europe/Helsinki", "UTC", "Asia/Tokyo",
                                        "Australia/Sydney"};
const std::vector<std::string> vins = {"1HG8NAW39M673BW7N", "JN1Z19E98N1134BRA", "5YJKMC066FB042VRN",
                                       "5YJ95MR31J4JCN8P2", "WVWKG36B1CED3BS63", "1FAEJEA5673A5R4KS",
                                       "3VWW3LZV7RF6MVWX6", "KNAF8YWR4NDSSSD7H"};
const std::string unknown_vin = "5YJ5PHBT19NVH6DEZ";

// Session days (UTC): month edges that are other months in some zones, and the DST changes
// (Los Angeles 2024-03-10 10:00Z, Helsinki 2024-03-31 01:00Z, Sydney 2024-04-06 16:00Z).
const std::vector<unix_time> session_days = {utc(2024, 3, 10), utc(2024, 3, 31), utc(2024, 3, 1),
                                             utc(2024, 3, 11), utc(2024, 3, 20), utc(2024, 4, 1),
                                             utc(2024, 4, 6),  utc(2024, 4, 30)};
// Tariff versions take effect at these instants (one is the Los Angeles DST change).
const std::vector<unix_time> version_times = {utc(2024, 3, 20), utc(2024, 3, 10, 10), utc(2024, 4, 1)};

struct tou_window {
  std::string name, days, from, to;
};
const std::string every_day = R"("Mon","Tue","Wed","Thu","Fri","Sat","Sun")";
const std::vector<tou_window> windows = {
    {"night", every_day, "00:00", "07:00"},
    {"dst", every_day, "02:00", "04:30"},  // holds the hour a DST change skips or repeats
    {"peak", R"("Mon","Tue","Wed","Thu","Fri")", "16:00", "21:00"},
    {"late", R"("Sat","Sun")", "21:00", "24:00"},
    {"early", R"("Sun")", "03:00", "04:30"},
};

struct tariff_plan {
  std::string name, kind;
  int price = 0;
  std::optional<int> cpp;
  std::vector<std::size_t> windows;
  std::vector<int> window_prices;
};

struct card_plan {
  std::string id;
  std::string phone;  // an SMS number with the same assignments, if any: it starts sessions as the card
  std::vector<std::pair<unix_time, std::string>> history;  // (at, account), "" for a revocation
  // SPEC section 3: assigned at or before t and not revoked at or before t.
  [[nodiscard]] std::string account_at(unix_time t) const {
    std::string account;
    for (const auto& [at, a] : history)
      if (at <= t) account = a;
    return account;
  }
};

struct event {
  unix_time at;
  int order;
  std::string type, session, body, tag;
  bool prepaid_start = false;
};

class builder {
  struct premise_info {
    std::string premise, utility, account, eumd;
    bool guest_pays;
  };
  struct station_info {
    std::string premise, utility, op;
    std::vector<std::string> whitelist;  // the latest pushed
  };
  struct pev_info {
    std::string vin, account, utility, home_premise;
    bool roams;
  };

 public:
  world build() {
    utilities();
    premises();
    pevs();
    cards();
    sessions();
    runs();
    return finish();
  }

 private:
  void add(unix_time at, const std::string& type, const std::string& body, const std::string& session = "",
           const std::string& tag = "", bool prepaid_start = false) {
    events_.push_back({at, order_++, type, session, body, tag, prepaid_start});
  }
  void setup(const std::string& type, const std::string& body) { add(setup_at_++, type, body); }

  tariff_plan gen_tariff(const std::string& name, bool flat_or_tou) {
    tariff_plan t;
    t.name = name;
    t.kind = flat_or_tou ? (chance(50) ? "tou" : "flat") : pick_of(std::vector<std::string>{"flat", "tou", "rtp"});
    t.price = uniform(1, 600001);
    if (chance(40)) t.cpp = uniform(0, 2000001);
    if (t.kind == "tou") {
      std::vector<std::size_t> order = {0, 1, 2, 3, 4};
      const int n = 1 + pick(3);
      for (int i = 0; i < n; ++i) {
        const auto k = static_cast<std::size_t>(pick(order.size()));
        t.windows.push_back(order[k]);
        order.erase(order.begin() + static_cast<std::ptrdiff_t>(k));
        t.window_prices.push_back(uniform(0, 900001));
      }
    }
    return t;
  }
  static std::string tariff_body(const std::string& u, const tariff_plan& t) {
    std::string body = R"("utility":)" + q(u) + R"(,"tariff":)" + q(t.name) + R"(,"kind":)" + q(t.kind) +
                       R"(,"price":)" + std::to_string(t.price);
    if (t.cpp) body += R"(,"cpp_price":)" + std::to_string(*t.cpp);
    if (t.kind == "tou") {
      body += R"(,"periods":[)";
      for (std::size_t i = 0; i < t.windows.size(); ++i) {
        const tou_window& w = windows[t.windows[i]];
        body += (i ? "," : "") + std::string(R"({"name":)") + q(w.name) + R"(,"days":[)" + w.days + R"(],"from":)" +
                q(w.from) + R"(,"to":)" + q(w.to) + R"(,"price":)" + std::to_string(t.window_prices[i]) + "}";
      }
      body += "]";
    }
    return body;
  }

  void utilities() {
    std::vector<std::string> free_zones = zones;
    const int n = 2 + (chance(50) ? 1 : 0);
    for (int i = 0; i < n; ++i) {
      const std::string u = "u" + std::to_string(i);
      const auto z = static_cast<std::size_t>(pick(free_zones.size()));
      const std::string zone = free_zones[z];
      free_zones.erase(free_zones.begin() + static_cast<std::ptrdiff_t>(z));
      const int timeout = chance(30) ? 120 : 60;
      const std::int64_t reserve = chance(30) ? 2000000 : 5000000;
      std::string body = R"("utility":)" + q(u) + R"(,"timezone":)" + q(zone);
      if (timeout != 60 || chance(20)) body += R"(,"comm_timeout_s":)" + std::to_string(timeout);
      if (reserve != 5000000) body += R"(,"prepaid_reserve":)" + std::to_string(reserve);
      setup("utility.register", body);
      w_.utilities.push_back(u);
      w_.reserve_of[u] = reserve;
      timeout_[u] = timeout;
      has_station_[u] = chance(50);
      std::vector<tariff_plan> tariffs = {gen_tariff("res", false), gen_tariff("ev", false)};
      if (has_station_[u]) tariffs.push_back(gen_tariff("station", true));
      for (const auto& t : tariffs) {
        setup("tariff.publish", tariff_body(u, t));
        if (t.kind == "rtp") rtp_[u].push_back(t.name);
        if (t.cpp) w_.features.insert("cpp_price");
      }
      if (chance(40)) {  // a new version of one tariff, in force from a later `at`
        tariff_plan t = tariffs[static_cast<std::size_t>(pick(tariffs.size()))];
        t.price = uniform(1, 600001);
        for (auto& p : t.window_prices) p = uniform(0, 900001);
        add(pick_of(version_times), "tariff.publish", tariff_body(u, t));
        w_.features.insert("tariff_version");
      }
    }
  }

  void premises() {
    for (const auto& u : w_.utilities) {
      const int n = 1 + pick(3);
      for (int k = 1; k <= n; ++k) {
        const std::string p = "p" + u.substr(1) + "_" + std::to_string(k), a = "a" + p.substr(1);
        open_account(u, a, false);
        const bool guest_pays = chance(50);
        std::string body = R"("utility":)" + q(u) + R"(,"premise":)" + q(p) + R"(,"account":)" + q(a) +
                           R"(,"default_tariff":"res")";
        if (guest_pays || chance(30)) body += R"(,"guest_policy":)" + q(guest_pays ? "guest_pays" : "host_pays");
        setup("premise.register", body);
        if (chance(30)) setup("device.commission", R"("premise":)" + q(p) + R"(,"device":)" + q("c" + p.substr(1)) + R"(,"kind":"esci")");
        std::string eumd;
        if (!chance(10)) {
          eumd = "e" + p.substr(1);
          setup("device.commission", R"("premise":)" + q(p) + R"(,"device":)" + q(eumd) + R"(,"kind":"eumd")" +
                                         (chance(20) ? R"(,"interval_s":900)" : ""));
        }
        residential_.push_back({p, u, a, eumd, guest_pays});
      }
      if (has_station_[u]) {
        const std::string st = "st" + u.substr(1), op = "op" + u.substr(1);
        open_account(u, op, false);
        setup("premise.register", R"("utility":)" + q(u) + R"(,"premise":)" + q(st) + R"(,"account":)" + q(op) +
                                      R"(,"default_tariff":"station","kind":"public")");
        setup("device.commission", R"("premise":)" + q(st) + R"(,"device":)" + q(st + "_e1") + R"(,"kind":"eumd")");
        setup("device.commission", R"("premise":)" + q(st) + R"(,"device":)" + q(st + "_e2") + R"(,"kind":"eumd")");
        setup("station.boot", R"("premise":)" + q(st));
        setup("station.activate", R"("premise":)" + q(st));
        stations_.push_back({st, u, op});
      }
    }
  }

  void open_account(const std::string& u, const std::string& a, bool prepaid) {
    setup("account.open", R"("utility":)" + q(u) + R"(,"account":)" + q(a) + R"(,"customer":"c")" +
                              (prepaid ? R"(,"kind":"prepaid")" : (chance(20) ? R"(,"kind":"postpaid")" : "")));
    w_.account_utility[a] = u;
    if (prepaid) w_.prepaid.insert(a);
  }
  void topup(unix_time at, const std::string& a, std::int64_t amount) {
    add(at, "account.topup", R"("account":)" + q(a) + R"(,"amount":)" + std::to_string(amount));
    w_.topups[a] += amount;
  }

  void pevs() {
    const int n = 1 + pick(5);
    for (int v = 0; v < n; ++v) {
      const auto& home = pick_of(residential_);
      const std::string a = "ev" + std::to_string(v);
      const bool prepaid = chance(40);
      open_account(home.utility, a, prepaid);
      if (prepaid) {
        w_.features.insert("prepaid");
        // Some too small to cover any reserve, one exactly the default reserve.
        const std::int64_t amount = pick_of(std::vector<std::int64_t>{0, 1000000, 5000000, 60000000});
        if (amount > 0) topup(setup_at_++, a, amount);
      }
      const bool roams = !chance(30);
      setup("pev.enroll", R"("account":)" + q(a) + R"(,"pev":)" + q(vins[static_cast<std::size_t>(v)]) +
                              R"(,"tariff":"ev","home_premise":)" + q(home.premise) +
                              (roams && chance(70) ? "" : std::string(R"(,"allow_roaming":)") + (roams ? "true" : "false")));
      pevs_.push_back({vins[static_cast<std::size_t>(v)], a, home.utility, home.premise, roams});
      if (prepaid && chance(40))  // a later top-up, between sessions
        topup(pick_of(session_days) + 3600 * pick(24) + 450, a, pick_of(std::vector<std::int64_t>{1000000, 3000000}));
    }
  }

  void cards() {
    if (stations_.empty()) return;
    // Holders: mostly accounts of a utility with a station (a card works only there), some not.
    std::vector<std::string> holders, local;
    for (const auto& [a, u] : w_.account_utility) {
      if (a.rfind("op", 0) == 0) continue;
      holders.push_back(a);
      if (has_station_[u]) local.push_back(a);
    }
    auto holder = [&] { return local.empty() || chance(25) ? pick_of(holders) : pick_of(local); };
    const int n = pick(5);
    for (int i = 0; i < n; ++i) {
      card_plan c{"k" + std::to_string(i), chance(50) ? "+1555000000" + std::to_string(i) : "", {}};
      const std::string first = holder();
      setup("card.assign", R"("card":)" + q(c.id) + R"(,"account":)" + q(first));
      if (!c.phone.empty()) setup("phone.assign", R"("phone":)" + q(c.phone) + R"(,"account":)" + q(first));
      c.history.push_back({setup_at_ - 1, first});
      if (chance(30)) {
        const unix_time revoke = pick_of(session_days) + 3600 * pick(24) + 450;
        add(revoke, "card.revoke", R"("card":)" + q(c.id));
        if (!c.phone.empty()) add(revoke, "phone.revoke", R"("phone":)" + q(c.phone));
        c.history.push_back({revoke, ""});
        if (chance(50)) {  // a replacement, to whichever account
          const std::string next = holder();
          add(revoke + 3600, "card.assign", R"("card":)" + q(c.id) + R"(,"account":)" + q(next));
          if (!c.phone.empty())
            add(revoke + 3600, "phone.assign", R"("phone":)" + q(c.phone) + R"(,"account":)" + q(next));
          c.history.push_back({revoke + 3600, next});
        }
        w_.features.insert("card_revoked");
      }
      cards_.push_back(c);
    }
    for (auto& st : stations_) {
      for (int version = 1; version <= 2; ++version) {
        if (version == 2 && !chance(30)) break;
        std::vector<std::string> list;
        for (const auto& c : cards_)
          if (chance(70)) list.push_back(c.id);
        if (chance(50)) list.push_back("ghost");  // a card no account holds
        std::string cards_json;
        for (const auto& c : list) cards_json += (cards_json.empty() ? "" : ",") + q(c);
        setup("whitelist.push", R"("premise":)" + q(st.premise) + R"(,"version":)" + std::to_string(version) +
                                    R"(,"cards":[)" + cards_json + "]");
        st.whitelist = list;
      }
    }
  }

  void sessions() {
    const int n = 1 + pick(10);
    std::set<std::pair<int, int>> taken;  // (day, three-hour slot)
    for (int i = 0; i < n; ++i) {
      const std::string sid = "s" + std::to_string(i);
      int day = pick(session_days.size()), slot = pick(8);
      // At most 10 sessions in 8 slots on each session day: a free slot is always found.
      FUZZ_CHECK(taken.size() < session_days.size() * 8);
      while (taken.count({day, slot})) {
        if (++slot == 8) slot = 0, day = (day + 1) % static_cast<int>(session_days.size());
      }
      taken.insert({day, slot});
      if (day <= 1) w_.features.insert("dst_day");
      const unix_time start = session_days[static_cast<std::size_t>(day)] + slot * 3 * 3600 + 900 * pick(4);
      session_plan plan;
      plan.id = sid;
      std::vector<std::string> eumds;
      std::string tag = "decide:" + sid;
      if (stations_.empty() || !chance(40)) {
        const auto& p = pick_of(residential_);
        plan.premise = p.premise;
        plan.utility = p.utility;
        plan.premise_account = p.account;
        if (!p.eumd.empty()) eumds.push_back(p.eumd);
        add(start, "session.plug",
            R"("session":)" + q(sid) + R"(,"premise":)" + q(p.premise) +
                (!p.eumd.empty() && chance(30) ? R"(,"eumd":)" + q(p.eumd) : ""),
            sid);
        decide_residential(plan, p, start, tag);
      } else {
        const auto& st = pick_of(stations_);
        plan.premise = st.premise;
        plan.utility = st.utility;
        plan.premise_account = st.op;
        plan.is_public = true;
        eumds = {st.premise + "_e1", st.premise + "_e2"};
        std::vector<const card_plan*> valid;  // for an online start: assigned here and now
        for (const auto& c : cards_) {
          const std::string a = c.account_at(start);
          if (!a.empty() && w_.account_utility[a] == st.utility) valid.push_back(&c);
        }
        plan.online = !valid.empty() && chance(50);
        if (!plan.online && st.whitelist.empty()) continue;
        const std::string card = plan.online ? valid[static_cast<std::size_t>(pick(valid.size()))]->id : pick_of(st.whitelist);
        std::string account, phone;
        for (const auto& c : cards_)
          if (c.id == card) account = c.account_at(start), phone = c.phone;
        // An online start by the card's SMS number instead: the same checks, the same payer.
        const bool by_sms = plan.online && !phone.empty() && chance(50);
        const bool pays = !account.empty() && w_.account_utility[account] == st.utility;
        plan.payer = pays ? account : st.op;
        plan.payer_kind = pays ? "card_account" : "station_operator";
        const bool prepaid_start = plan.online && w_.prepaid.count(account);
        if (prepaid_start) plan.reserve_account = account, plan.deciding_id = tag;
        add(start, "session.start",
            R"("session":)" + q(sid) + R"(,"premise":)" + q(st.premise) +
                (by_sms ? R"(,"phone":)" + q(phone)
                        : R"(,"card":)" + q(card) + R"(,"online":)" + (plan.online ? "true" : "false")),
            sid, tag, prepaid_start);
        w_.features.insert(by_sms ? "station_sms" : plan.online ? "station_online" : "station_offline");
        if (!pays) w_.features.insert("uncollectible");
      }
      plan.delayable = plan.payer_kind == "main_meter" || plan.payer_kind == "station_operator" ||
                       !w_.prepaid.count(plan.payer);
      const int intervals = eumds.empty() ? 0 : pick(9);
      const unix_time unplug = start + (intervals == 0 ? 1200 : intervals * 900 + 60);
      for (int k = 0; k < intervals; ++k) {
        const unix_time istart = start + 900 * k;
        const std::int64_t wh = uniform(0, 5001);
        const std::string body = R"("device":)" + q(pick_of(eumds)) + R"(,"session":)" + q(sid) + R"(,"start":)" +
                                 q(timestamp(istart)) + R"(,"seconds":900,"wh":)" + std::to_string(wh);
        plan.metered_wh += wh;
        ++plan.intervals;
        unix_time at = unplug - 1;  // delivered in a burst before the unplug
        switch (pick(3)) {
          case 1: at = istart + 930; break;  // as it ends
          case 2:                            // after the unplug, maybe after a bill run of its period
            at = std::max(unplug + 1800, pick_of(std::vector<unix_time>{0, utc(2024, 4, 2, 12), utc(2024, 5, 3),
                                                                          utc(2024, 6, 2)}));
            w_.features.insert("late_interval");
            break;
        }
        add(at, "meter.interval", body, sid);
        if (chance(10)) {  // at-least-once delivery: the same interval again under a new id
          add(at + 600, "meter.interval", body, sid);
          w_.features.insert("duplicate_interval");
        }
      }
      add(unplug, "session.unplug", R"("session":)" + q(sid), sid);
      prices_around(start, plan.utility);
      w_.sessions.push_back(plan);
    }
  }

  void decide_residential(session_plan& plan, const premise_info& p, unix_time start, const std::string& tag);

  // Real-time prices and critical peaks near a session, recorded before it starts, so that every
  // delivery order prices its intervals with them.
  void prices_around(unix_time start, const std::string& premise_utility) {
    for (const auto& u : w_.utilities) {
      for (const auto& tariff : rtp_[u]) {
        if (!chance(40)) continue;
        const unix_time hour = start / 3600 * 3600 + 3600 * pick(2);
        if (!published_.insert(u + tariff + std::to_string(hour)).second) continue;
        add(start - 1 - 3600 * pick(48), "price.publish",
            R"("utility":)" + q(u) + R"(,"tariff":)" + q(tariff) + R"(,"hour":)" + q(timestamp(hour)) +
                R"(,"price":)" + std::to_string(uniform(0, 900001)));
        w_.features.insert("rtp_price");
      }
    }
    if (chance(20)) {
      const std::string u = chance(70) ? premise_utility : pick_of(w_.utilities);
      const unix_time from = start + 900 * pick(3);
      add(start - 1 - 3600 * pick(48), "cpp.declare",
          R"("utility":)" + q(u) + R"(,"start":)" + q(timestamp(from)) + R"(,"end":)" +
              q(timestamp(from + 900 * (1 + pick(3)))));
      w_.features.insert("cpp_event");
    }
  }

  void runs() {
    // Bill runs: mostly after the month, sometimes in the middle of it (accepted at any `at`; what
    // comes later for the period becomes an adjustment), sometimes long after.
    const std::vector<std::pair<std::string, unix_time>> periods = {
        {"2024-02", utc(2024, 3, 1)}, {"2024-03", utc(2024, 4, 1)}, {"2024-04", utc(2024, 5, 1)}};
    for (const auto& u : w_.utilities)
      for (const auto& [period, next] : periods) {
        if (!chance(60)) continue;
        // (Never before the set-up: a February run mid-month would name a utility not yet registered.)
        const unix_time at =
            pick_of(std::vector<unix_time>{next + 2 * 86400, utc(2024, 5, 10), std::max(next - 16 * 86400 + 43200, utc(2024, 2, 25))}) + 450;
        add(at, "bill.run", R"("utility":)" + q(u) + R"(,"period":)" + q(period));
        w_.features.insert("bill_run");
      }
    for (const auto& [period, next] : periods) {
      if (!chance(40)) continue;
      add(pick_of(std::vector<unix_time>{next + 4 * 86400, utc(2024, 5, 12)}) + 450, "settlement.run",
          R"("period":)" + q(period));
      w_.features.insert("settlement_run");
    }
  }

  world finish() {
    std::stable_sort(events_.begin(), events_.end(),
                     [](const event& a, const event& b) { return a.at != b.at ? a.at < b.at : a.order < b.order; });
    std::map<std::string, std::string> tag_ids;
    for (std::size_t i = 0; i < events_.size(); ++i) {
      const event& e = events_[i];
      command_line l;
      l.type = e.type;
      l.id = "L" + std::to_string(i + 1);
      l.session = e.session;
      l.prepaid_start = e.prepaid_start;
      l.text = R"({"type":)" + q(e.type) + R"(,"id":)" + q(l.id) + R"(,"at":)" + q(timestamp(e.at)) + "," + e.body + "}";
      if (!e.tag.empty()) tag_ids[e.tag] = l.id;
      w_.lines.push_back(std::move(l));
    }
    for (auto& s : w_.sessions)
      if (!s.deciding_id.empty()) s.deciding_id = tag_ids.at(s.deciding_id);
    check_promises();
    return std::move(w_);
  }

  // What world.hpp promises the properties. Every session is named by some line, the line that
  // decides it is one of its own, and its interval lines lie within its three-hour slot, never
  // in another session's: no two sessions share an EUMD and a start.
  void check_promises() const {
    std::map<std::string, std::pair<unix_time, unix_time>> intervals;  // per session: first, last start
    for (const event& e : events_) {
      if (e.type != "meter.interval") continue;
      const auto at = e.body.find(R"("start":")");
      FUZZ_CHECK(at != std::string::npos);
      const unix_time start = parse_utc(e.body.substr(at + 9, 20));
      auto [it, first] = intervals.try_emplace(e.session, start, start);
      it->second = {std::min(it->second.first, start), std::max(it->second.second, start)};
    }
    for (const session_plan& s : w_.sessions) {
      const auto named = std::find_if(w_.lines.begin(), w_.lines.end(),
                                      [&](const command_line& l) { return l.session == s.id; });
      FUZZ_CHECK(named != w_.lines.end());
      if (!s.deciding_id.empty()) {
        const auto deciding = std::find_if(w_.lines.begin(), w_.lines.end(),
                                           [&](const command_line& l) { return l.id == s.deciding_id; });
        FUZZ_CHECK(deciding != w_.lines.end() && deciding->session == s.id);
      }
    }
    std::vector<std::pair<unix_time, unix_time>> spans;
    for (const auto& [session, span] : intervals) spans.push_back(span);
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i) FUZZ_CHECK(spans[i - 1].second < spans[i].first);
  }

  world w_;
  std::vector<event> events_;
  int order_ = 0;
  unix_time setup_at_ = utc(2024, 2, 20);
  std::map<std::string, int> timeout_;
  std::map<std::string, bool> has_station_;
  std::map<std::string, std::vector<std::string>> rtp_;
  std::set<std::string> published_;
  std::vector<premise_info> residential_;
  std::vector<station_info> stations_;
  std::vector<pev_info> pevs_;
  std::vector<card_plan> cards_;

};

// SPEC section 3's table, in README's order: no EUMD, late bind, invalid or unknown VIN, then
// home / guest / roaming; the prepaid reservation is left to the property that watches balances.
void builder::decide_residential(session_plan& plan, const premise_info& p, unix_time start, const std::string& tag) {
  plan.payer = "main_meter";
  plan.payer_kind = "main_meter";
  const int mode = pick(4);  // 0: never bound; 1: a PEV at home; 2: any enrolled PEV; 3: unknown VIN
  if (mode == 0) return;
  const int timeout = timeout_[p.utility];
  const int delay = pick_of(std::vector<int>{10, 60, timeout, timeout + 1, 200});
  const pev_info* pev = nullptr;
  std::string vin = unknown_vin;
  if (mode == 1 || mode == 2) {
    std::vector<const pev_info*> candidates;
    for (const auto& v : pevs_)
      if (mode == 2 || v.home_premise == p.premise) candidates.push_back(&v);
    if (candidates.empty())
      for (const auto& v : pevs_) candidates.push_back(&v);
    pev = candidates[static_cast<std::size_t>(pick(candidates.size()))];
    vin = pev->vin;
  }
  add(start + delay, "session.bind", R"("session":)" + q(plan.id) + R"(,"pev":)" + q(vin), plan.id, tag);
  if (p.eumd.empty() || delay > timeout || pev == nullptr) return;
  bool pays = false;
  if (pev->utility == p.utility) {
    pays = pev->home_premise == p.premise || (p.guest_pays && pev->roams);
    if (pev->home_premise != p.premise) w_.features.insert(pays ? "guest_pays" : "guest_host_pays");
  } else {
    pays = pev->roams;
    w_.features.insert(pays ? "roaming" : "roaming_not_allowed");
  }
  if (!pays) return;
  plan.payer = pev->account;
  plan.payer_kind = "pev_account";
  plan.credited = true;
  if (w_.prepaid.count(pev->account)) plan.reserve_account = pev->account, plan.deciding_id = tag;
}

}  // namespace

rc::Gen<world> gen_world() {
  return rc::gen::exec([] { return builder().build(); });
}

}  // namespace pevledger::fuzzing
