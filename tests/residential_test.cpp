// Residential charging end to end (SPEC sections 1, 3 and 5): every row of the who-pays table,
// rating, metering rules and the monthly bill. Every expected amount is computed by hand in the
// comments next to it, never by the code under test.

#include <algorithm>
#include <random>

#include "tests/scenario.hpp"

namespace pevledger {
namespace {

using testing::amount_of;
using testing::json;
using testing::q;
using testing::scenario;
using testing::wh_of;

// Valid VINs (check digit holds) and ones that are not.
constexpr const char* vin1 = "1HG8NAW39M673BW7N";
constexpr const char* vin2 = "JN1Z19E98N1134BRA";
constexpr const char* vin3 = "5YJKMC066FB042VRN";
constexpr const char* vin_unknown = "5YJ5PHBT19NVH6DEZ";  // valid, never enrolled
constexpr const char* vin_bad_check = "2T1ECNEY7G7F6M2ED";

// One utility "u" in UTC: tariffs res (flat 0.20/kWh) and ev (flat 0.15/kWh); premise "home" of
// account "host" with EUMD "e_home"; PEV vin1 enrolled by account "owner" with home premise "home".
void base(scenario& s, const std::string& guest_policy = "host_pays") {
  s.cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":"u","timezone":"UTC")")
      .cmd("tariff.publish", "2024-03-01T00:00:01Z", R"("utility":"u","tariff":"res","kind":"flat","price":200000)")
      .cmd("tariff.publish", "2024-03-01T00:00:02Z", R"("utility":"u","tariff":"ev","kind":"flat","price":150000)")
      .cmd("account.open", "2024-03-01T00:00:03Z", R"("utility":"u","account":"host","customer":"h")")
      .cmd("premise.register", "2024-03-01T00:00:04Z",
           R"("utility":"u","premise":"home","account":"host","default_tariff":"res","guest_policy":)" + q(guest_policy))
      .cmd("device.commission", "2024-03-01T00:00:05Z", R"("premise":"home","device":"esci_home","kind":"esci")")
      .cmd("device.commission", "2024-03-01T00:00:06Z", R"("premise":"home","device":"e_home","kind":"eumd")")
      .cmd("account.open", "2024-03-01T00:00:07Z", R"("utility":"u","account":"owner","customer":"o")")
      .cmd("pev.enroll", "2024-03-01T00:00:08Z",
           R"("account":"owner","pev":")" + std::string(vin1) + R"(","tariff":"ev","home_premise":"home")")
      .cmd("pev.setup", "2024-03-01T00:00:09Z",
           R"("pev":")" + std::string(vin1) + R"(","premise":"home","esci":"esci_home","eumd":"e_home")");
}

// A second premise "guest" of account "guestacct" with EUMD "e_guest".
void guest_premise(scenario& s, const std::string& policy, const std::string& utility = "u",
                   const std::string& tariff = "res") {
  s.cmd("account.open", "2024-03-01T00:01:00Z", R"("utility":)" + q(utility) + R"(,"account":"guestacct","customer":"g")")
      .cmd("premise.register", "2024-03-01T00:01:01Z",
           R"("utility":)" + q(utility) + R"(,"premise":"guest","account":"guestacct","default_tariff":)" + q(tariff) +
               R"(,"guest_policy":)" + q(policy))
      .cmd("device.commission", "2024-03-01T00:01:02Z", R"("premise":"guest","device":"e_guest","kind":"eumd")");
}

void interval(scenario& s, const std::string& device, const std::string& session, const std::string& start,
              std::int64_t wh, const std::string& extra = "") {
  s.cmd("meter.interval", start, R"("device":)" + q(device) + R"(,"session":)" + q(session) + R"(,"start":)" +
                                     q(start) + R"(,"seconds":900,"wh":)" + std::to_string(wh) + extra);
}

// On March `day`: plug at 20:00, bind `vin` `bind_delay_s` later, one interval of `wh`, unplug.
void charge_session(scenario& s, const std::string& session, const std::string& premise, const std::string& eumd,
                    const std::string& vin, std::int64_t wh, int bind_delay_s = 30, int day = 5) {
  char plug[48], at[48], unplug[48];
  std::snprintf(plug, sizeof plug, "2024-03-%02dT20:00:00Z", day);
  std::snprintf(at, sizeof at, "2024-03-%02dT20:%02d:%02dZ", day, bind_delay_s / 60, bind_delay_s % 60);
  std::snprintf(unplug, sizeof unplug, "2024-03-%02dT20:30:00Z", day);
  s.cmd("session.plug", plug, R"("session":)" + q(session) + R"(,"premise":)" + q(premise));
  s.cmd("session.bind", at, R"("session":)" + q(session) + R"(,"pev":)" + q(vin));
  interval(s, eumd, session, plug, wh);
  s.cmd("session.unplug", unplug, R"("session":)" + q(session));
}

TEST(who_pays, pev_at_its_home_premise_pays_its_tariff_and_the_premise_is_credited) {
  scenario s;
  base(s);
  charge_session(s, "s1", "home", "e_home", vin1, 1234);
  s.run_ok();
  // PEV tariff: 1234 Wh * 150000 / 1000 = 185100 micro. Premise default: 1234 * 200000 / 1000 = 246800.
  const json owner = s.bill("owner", "2024-03");
  EXPECT_EQ(owner["status"], "preview");
  EXPECT_EQ(owner["account"], "owner");
  EXPECT_EQ(owner["utility"], "u");
  ASSERT_EQ(owner["lines"].size(), 1u);
  EXPECT_EQ(owner["lines"][0]["kind"], "charge");
  EXPECT_EQ(owner["lines"][0]["tariff"], "ev");
  EXPECT_EQ(owner["lines"][0]["window"], "flat");
  EXPECT_EQ(owner["lines"][0]["wh"], 1234);
  EXPECT_EQ(owner["lines"][0]["amount_micro"], 185100);
  EXPECT_EQ(owner["total_micro"], 185100);
  EXPECT_EQ(owner["total_cents"], 19);  // 18.51 cents
  const json host = s.bill("host", "2024-03");
  ASSERT_EQ(host["lines"].size(), 1u);
  EXPECT_EQ(host["lines"][0]["kind"], "credit");
  EXPECT_EQ(host["lines"][0]["tariff"], "res");
  EXPECT_EQ(host["lines"][0]["amount_micro"], -246800);
  EXPECT_EQ(host["total_cents"], -25);  // -24.68 cents
  EXPECT_EQ(s.balance("owner")["balance_micro"], -185100);
  EXPECT_EQ(s.balance("host")["balance_micro"], 246800);
  const json report = s.session("s1");
  EXPECT_EQ(report["state"], "unplugged");
  EXPECT_EQ(report["payer"], "owner");
  EXPECT_TRUE(report["reason"].is_null());
  EXPECT_EQ(report["wh"], 1234);
  EXPECT_EQ(report["intervals"], 1);
  // Set up at home (base): it binds again there without the full authentication.
  EXPECT_EQ(report["authentication"], "rebind");
}

TEST(who_pays, guest_pays_host_with_a_roaming_pev_bills_the_pev) {
  scenario s;
  base(s);
  guest_premise(s, "guest_pays");
  charge_session(s, "s1", "guest", "e_guest", vin1, 2000);
  s.run_ok();
  // 2000 Wh: charge 2000 * 150000 / 1000 = 300000; credit 2000 * 200000 / 1000 = 400000.
  EXPECT_EQ(amount_of(s.bill("owner", "2024-03"), "charge"), 300000);
  EXPECT_EQ(amount_of(s.bill("guestacct", "2024-03"), "credit"), -400000);
  EXPECT_TRUE(s.bill("host", "2024-03")["lines"].empty());
  // Never set up at the guest premise: a first bind there is a full authentication.
  EXPECT_EQ(s.session("s1")["authentication"], "full");
}

TEST(who_pays, host_pays_host_falls_back_to_the_main_meter) {
  scenario s;
  base(s);
  guest_premise(s, "host_pays");
  charge_session(s, "s1", "guest", "e_guest", vin1, 2000);
  s.run_ok();
  EXPECT_TRUE(s.bill("owner", "2024-03")["lines"].empty());
  const json guest = s.bill("guestacct", "2024-03");
  ASSERT_EQ(guest["lines"].size(), 1u);
  EXPECT_EQ(guest["lines"][0]["kind"], "main_meter");
  EXPECT_EQ(guest["lines"][0]["wh"], 2000);
  EXPECT_EQ(guest["lines"][0]["amount_micro"], 0);
  EXPECT_EQ(guest["lines"][0]["window"], "");
  EXPECT_EQ(guest["total_micro"], 0);
  const json report = s.session("s1");
  EXPECT_EQ(report["payer"], "main_meter");
  EXPECT_EQ(report["reason"], "host_pays");
  EXPECT_EQ(report["pev"], vin1);
  EXPECT_EQ(s.balance("guestacct")["balance_micro"], 0);
}

TEST(who_pays, guest_pays_host_but_pev_not_allowed_to_roam_falls_back) {
  scenario s;
  base(s);
  guest_premise(s, "guest_pays");
  s.cmd("pev.enroll", "2024-03-01T00:02:00Z",
        R"("account":"owner","pev":")" + std::string(vin2) + R"(","tariff":"ev","home_premise":"home","allow_roaming":false)");
  charge_session(s, "s1", "guest", "e_guest", vin2, 2000);
  s.run_ok();
  EXPECT_EQ(s.session("s1")["reason"], "roaming_not_allowed");
  EXPECT_EQ(wh_of(s.bill("guestacct", "2024-03"), "main_meter"), 2000);
  EXPECT_TRUE(s.bill("owner", "2024-03")["lines"].empty());
}

TEST(who_pays, unknown_invalid_late_and_missing_bindings_fall_back) {
  scenario s;
  base(s);
  s.run_ok();
  struct fallback_case {
    std::string session;
    std::string vin;
    int bind_delay_s;
    std::string reason;
  };
  // comm_timeout_s defaults to 60: a bind 60 s after plug-in is in time, 61 s is not.
  const std::vector<fallback_case> cases = {{"s_unknown", vin_unknown, 10, "unknown_vin"},
                                            {"s_invalid", vin_bad_check, 10, "invalid_vin"},
                                            {"s_lower", "1hg8naw39m673bw7n", 10, "invalid_vin"},
                                            {"s_late", vin1, 61, "bind_timeout"}};
  int day = 5;
  for (const auto& c : cases) {
    charge_session(s, c.session, "home", "e_home", c.vin, 1000, c.bind_delay_s, day++);
    s.run_ok();  // a bind is never refused for its VIN
    EXPECT_EQ(s.session(c.session)["payer"], "main_meter") << c.session;
    EXPECT_EQ(s.session(c.session)["reason"], c.reason) << c.session;
  }
  charge_session(s, "s_in_time", "home", "e_home", vin1, 1000, 60, day++);
  s.run_ok();
  EXPECT_EQ(s.session("s_in_time")["payer"], "owner");
  // Never bound: decided at unplug.
  s.cmd("session.plug", "2024-03-16T20:00:00Z", R"("session":"s_none","premise":"home")");
  interval(s, "e_home", "s_none", "2024-03-16T20:00:00Z", 700);
  s.cmd("session.unplug", "2024-03-16T20:20:00Z", R"("session":"s_none")");
  s.run_ok();
  EXPECT_EQ(s.session("s_none")["payer"], "main_meter");
  EXPECT_FALSE(s.session("s_none")["reason"].is_null());
  // Every fallback shows on the premise's bill as a zero-amount main_meter line: 4 * 1000 + 700 Wh.
  const json host = s.bill("host", "2024-03");
  EXPECT_EQ(wh_of(host, "main_meter"), 4700);
  EXPECT_EQ(amount_of(host, "main_meter"), 0);
  // Only the in-time session bills the owner: 1000 Wh at 0.15 = 150000.
  EXPECT_EQ(s.bill("owner", "2024-03")["total_micro"], 150000);
}

TEST(who_pays, premise_without_eumd_falls_back) {
  scenario s;
  base(s);
  s.cmd("account.open", "2024-03-01T00:01:00Z", R"("utility":"u","account":"bare","customer":"b")")
      .cmd("premise.register", "2024-03-01T00:01:01Z",
           R"("utility":"u","premise":"noeumd","account":"bare","default_tariff":"res","guest_policy":"guest_pays")")
      .cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"noeumd")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  s.run_ok();
  EXPECT_EQ(s.session("s1")["payer"], "main_meter");
  EXPECT_EQ(s.session("s1")["reason"], "no_eumd");
}

TEST(who_pays, never_bound_session_is_decided_by_a_bill_run_past_its_deadline) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-31T23:00:00Z", R"("session":"s1","premise":"home")");
  interval(s, "e_home", "s1", "2024-03-31T23:00:00Z", 500);
  s.cmd("bill.run", "2024-04-01T01:00:00Z", R"("utility":"u","period":"2024-03")");
  s.run_ok();
  const json report = s.session("s1");
  EXPECT_EQ(report["payer"], "main_meter");
  EXPECT_EQ(report["reason"], "bind_timeout");
  const json host = s.bill("host", "2024-03");
  EXPECT_EQ(host["status"], "issued");
  EXPECT_EQ(wh_of(host, "main_meter"), 500);
  // A bind after that decision is accepted and changes nothing.
  s.cmd("session.bind", "2024-04-01T01:00:05Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  s.run_ok();
  EXPECT_EQ(s.session("s1")["payer"], "main_meter");
  EXPECT_TRUE(s.bill("owner", "2024-04")["lines"].empty());
}

// session.timeout is not in SPEC section 6: it is what the gateway's timer sends when a plug-in's
// communication timeout passes with no bind. It decides then what an unplug or a run would.
TEST(who_pays, a_session_timeout_past_the_deadline_falls_back_at_once_and_a_late_bind_changes_nothing) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")");
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 700);
  s.run_ok();
  // In time means bind.at - plug.at <= 60: at 20:01:00 the timeout has not passed.
  s.cmd("session.timeout", "2024-03-05T20:01:00Z", R"("session":"s1")");
  s.run_refused(errc::invalid_state);
  EXPECT_TRUE(s.session("s1")["payer"].is_null());
  s.cmd("session.timeout", "2024-03-05T20:01:01Z", R"("session":"s1")");
  s.run_ok();
  const json report = s.session("s1");
  EXPECT_EQ(report["payer"], "main_meter");
  EXPECT_EQ(report["reason"], "bind_timeout");
  EXPECT_EQ(wh_of(s.bill("host", "2024-03"), "main_meter"), 700);
  // Decided: a second timeout is refused, a bind is accepted and changes nothing.
  s.cmd("session.timeout", "2024-03-05T20:02:00Z", R"("session":"s1")");
  s.run_refused(errc::invalid_state);
  s.cmd("session.bind", "2024-03-05T20:02:01Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  s.run_ok();
  EXPECT_EQ(s.session("s1")["payer"], "main_meter");
  EXPECT_TRUE(s.bill("owner", "2024-03")["lines"].empty());
  s.cmd("session.timeout", "2024-03-05T20:02:00Z", R"("session":"nope")");
  s.run_refused(errc::unknown_session);
}

TEST(who_pays, second_bind_is_refused_already_bound) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  s.run_ok();
  s.cmd("session.bind", "2024-03-05T20:00:20Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  s.run_refused(errc::already_bound);
}

TEST(prepaid, covered_account_reserves_then_pays_the_actual_amount_and_runs_short) {
  scenario s;
  base(s);
  s.cmd("account.open", "2024-03-01T00:02:00Z", R"("utility":"u","account":"pp","customer":"o","kind":"prepaid")")
      .cmd("account.topup", "2024-03-01T00:02:01Z", R"("account":"pp","amount":6000000)")
      .cmd("pev.enroll", "2024-03-01T00:02:02Z",
           R"("account":"pp","pev":")" + std::string(vin3) + R"(","tariff":"ev","home_premise":"home")")
      .cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin3) + "\"");
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 10000);
  s.run_ok();
  // Reserve: the utility's default prepaid_reserve, 5000000. Nothing posts before unplug.
  json b = s.balance("pp");
  EXPECT_EQ(b["reserved_micro"], 5000000);
  EXPECT_EQ(b["balance_micro"], 6000000);
  s.cmd("session.unplug", "2024-03-05T21:00:00Z", R"("session":"s1")");
  s.run_ok();
  // 10000 Wh * 150000 / 1000 = 1500000 debited; reservation released.
  b = s.balance("pp");
  EXPECT_EQ(b["reserved_micro"], 0);
  EXPECT_EQ(b["balance_micro"], 4500000);
  // 4500000 no longer covers 5000000: the next session falls back to the main meter.
  s.cmd("session.plug", "2024-03-06T20:00:00Z", R"("session":"s2","premise":"home")")
      .cmd("session.bind", "2024-03-06T20:00:10Z", R"("session":"s2","pev":")" + std::string(vin3) + "\"");
  s.run_ok();
  EXPECT_EQ(s.session("s2")["payer"], "main_meter");
  EXPECT_EQ(s.session("s2")["reason"], "insufficient_balance");
  EXPECT_EQ(s.balance("pp")["reserved_micro"], 0);
}

TEST(rating, half_even_rounding_per_interval) {
  scenario s;
  base(s);
  s.cmd("tariff.publish", "2024-03-01T00:02:00Z", R"("utility":"u","tariff":"tiny","kind":"flat","price":500)")
      .cmd("pev.enroll", "2024-03-01T00:02:01Z",
           R"("account":"owner","pev":")" + std::string(vin2) + R"(","tariff":"tiny","home_premise":"home")")
      .cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin2) + "\"");
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 1);  // 0.5 micro -> 0
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 3);  // 1.5 -> 2
  interval(s, "e_home", "s1", "2024-03-05T20:30:00Z", 5);  // 2.5 -> 2
  interval(s, "e_home", "s1", "2024-03-05T20:45:00Z", 7);  // 3.5 -> 4
  s.run_ok();
  // Summed after rounding each interval: 0 + 2 + 2 + 4 = 8 (rounding the sum, 16 Wh = 8 micro,
  // would agree here only by chance; 1 + 3 Wh alone: 2, not round(2.0) computed from 4 Wh).
  const json owner = s.bill("owner", "2024-03");
  EXPECT_EQ(owner["total_micro"], 8);
  EXPECT_EQ(owner["total_cents"], 0);
  EXPECT_EQ(wh_of(owner, "charge"), 16);
}

TEST(rating, time_of_use_windows_follow_local_time_across_daylight_saving) {
  scenario s;
  s.cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":"w","timezone":"America/Los_Angeles")")
      .cmd("tariff.publish", "2024-03-01T00:00:01Z",
           R"("utility":"w","tariff":"tou","kind":"tou","price":300000,"periods":[)"
           R"({"name":"peak","days":["Mon","Tue","Wed","Thu","Fri"],"from":"16:00","to":"21:00","price":500000},)"
           R"({"name":"night","days":["Mon","Tue","Wed","Thu","Fri","Sat","Sun"],"from":"00:00","to":"07:00","price":100000}])")
      .cmd("account.open", "2024-03-01T00:00:02Z", R"("utility":"w","account":"a","customer":"c")")
      .cmd("premise.register", "2024-03-01T00:00:03Z",
           R"("utility":"w","premise":"p","account":"a","default_tariff":"tou")")
      .cmd("device.commission", "2024-03-01T00:00:04Z", R"("premise":"p","device":"e","kind":"eumd")")
      .cmd("account.open", "2024-03-01T00:00:05Z", R"("utility":"w","account":"o","customer":"c")")
      .cmd("pev.enroll", "2024-03-01T00:00:06Z",
           R"("account":"o","pev":")" + std::string(vin1) + R"(","tariff":"tou","home_premise":"p")")
      .cmd("session.plug", "2024-03-08T00:00:00Z", R"("session":"s","premise":"p")")
      .cmd("session.bind", "2024-03-08T00:00:10Z", R"("session":"s","pev":")" + std::string(vin1) + "\"");
  // DST starts 2024-03-10 at 10:00 UTC (02:00 PST -> 03:00 PDT). 1000 Wh each.
  interval(s, "e", "s", "2024-03-09T00:30:00Z", 1000);  // Fri 16:30 PST (Sat in UTC): peak, 500000
  interval(s, "e", "s", "2024-03-09T14:30:00Z", 1000);  // Sat 06:30 PST: night, 100000
  interval(s, "e", "s", "2024-03-10T09:30:00Z", 1000);  // Sun 01:30 PST: night, 100000
  interval(s, "e", "s", "2024-03-10T10:30:00Z", 1000);  // Sun 03:30 PDT: night, 100000
  interval(s, "e", "s", "2024-03-11T14:30:00Z", 1000);  // Mon 07:30 PDT: base, 300000
  interval(s, "e", "s", "2024-03-11T23:30:00Z", 1000);  // Mon 16:30 PDT: peak, 500000
  interval(s, "e", "s", "2024-03-12T13:45:00Z", 1000);  // Tue 06:45 PDT: night, 100000
  s.run_ok();
  const json o = s.bill("o", "2024-03");
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> by_window;
  for (const auto& l : o["lines"]) {
    by_window[l["window"]].first += l["wh"].get<std::int64_t>();
    by_window[l["window"]].second += l["amount_micro"].get<std::int64_t>();
  }
  EXPECT_EQ(by_window["peak"], std::make_pair(std::int64_t{2000}, std::int64_t{1000000}));
  EXPECT_EQ(by_window["night"], std::make_pair(std::int64_t{4000}, std::int64_t{400000}));
  EXPECT_EQ(by_window["base"], std::make_pair(std::int64_t{1000}, std::int64_t{300000}));
  EXPECT_EQ(o["total_micro"], 1700000);
}

TEST(rating, real_time_hours_critical_peaks_and_tariff_versions) {
  scenario s;
  base(s);
  s.cmd("tariff.publish", "2024-03-01T00:02:00Z",
        R"("utility":"u","tariff":"rt","kind":"rtp","price":200000,"cpp_price":900000)")
      .cmd("price.publish", "2024-03-04T00:00:00Z",
           R"("utility":"u","tariff":"rt","hour":"2024-03-05T20:00:00Z","price":50000)")
      .cmd("price.publish", "2024-03-04T00:00:01Z",
           R"("utility":"u","tariff":"rt","hour":"2024-03-05T22:00:00Z","price":70000)")
      .cmd("cpp.declare", "2024-03-04T00:00:02Z", R"("utility":"u","start":"2024-03-05T22:30:00Z","end":"2024-03-05T23:00:00Z")")
      .cmd("pev.enroll", "2024-03-01T00:02:01Z",
           R"("account":"owner","pev":")" + std::string(vin2) + R"(","tariff":"rt","home_premise":"home")")
      .cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin2) + "\"");
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 1000);  // published hour: 50000 -> 50000 micro
  interval(s, "e_home", "s1", "2024-03-05T21:00:00Z", 1000);  // no price: base 200000 -> 200000
  interval(s, "e_home", "s1", "2024-03-05T22:15:00Z", 1000);  // hour 22: 70000 -> 70000
  interval(s, "e_home", "s1", "2024-03-05T22:30:00Z", 1000);  // critical peak wins: 900000
  s.run_ok();
  const json owner = s.bill("owner", "2024-03");
  EXPECT_EQ(amount_of(owner, "charge"), 50000 + 200000 + 70000 + 900000);
  std::set<std::string> windows;
  for (const auto& l : owner["lines"]) windows.insert(l["window"]);
  EXPECT_EQ(windows, (std::set<std::string>{"rtp", "base", "cpp"}));
  // The host's flat res tariff has no cpp_price: its credit ignores the event (4 * 200000).
  EXPECT_EQ(amount_of(s.bill("host", "2024-03"), "credit"), -800000);

  // A new version of ev is in force from its `at`; earlier intervals keep the version before.
  s.cmd("tariff.publish", "2024-03-06T00:00:00Z", R"("utility":"u","tariff":"ev","kind":"flat","price":250000)")
      .cmd("session.plug", "2024-03-05T23:00:00Z", R"("session":"s2","premise":"home")")
      .cmd("session.bind", "2024-03-05T23:00:10Z", R"("session":"s2","pev":")" + std::string(vin1) + "\"");
  interval(s, "e_home", "s2", "2024-03-05T23:45:00Z", 1000);  // before 2024-03-06: 150000
  interval(s, "e_home", "s2", "2024-03-06T00:00:00Z", 1000);  // from 2024-03-06: 250000
  s.run_ok();
  EXPECT_EQ(amount_of(s.bill("owner", "2024-03"), "charge", "s2"), 400000);
}

TEST(metering, duplicates_conflicts_gaps_registers_and_reconciliation) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 100, R"(,"register_wh":100)");
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 200, R"(,"register_wh":300)");
  // 20:30 is missing; the registers show 600 - 150 - 300 = 150 Wh unreported.
  interval(s, "e_home", "s1", "2024-03-05T20:45:00Z", 150, R"(,"register_wh":600)");
  interval(s, "e_home", "s1", "2024-03-05T21:00:00Z", 50, R"(,"register_wh":700)");   // delta 100 != 50
  interval(s, "e_home", "s1", "2024-03-05T21:15:00Z", 10, R"(,"register_wh":650)");   // backwards
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 100, R"(,"register_wh":100)");  // exact duplicate
  s.run_ok();
  EXPECT_EQ(s.summary().duplicates, 1u);
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 101, R"(,"register_wh":100)");  // other content
  s.run_refused(errc::interval_conflict);
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 200);  // an absent register differs too
  s.run_refused(errc::interval_conflict);
  s.cmd("pev.total", "2024-03-05T21:30:00Z", R"("session":"s1","wh":540)")
      .cmd("session.unplug", "2024-03-05T21:31:00Z", R"("session":"s1")");
  s.run_ok();
  const json r = s.session("s1");
  EXPECT_EQ(r["wh"], 510);  // 100 + 200 + 150 + 50 + 10, duplicates not counted
  EXPECT_EQ(r["intervals"], 5);
  EXPECT_EQ(r["duplicates"], 1);
  EXPECT_EQ(r["gaps"], 1);
  EXPECT_EQ(r["gap_list"][0]["from"], "2024-03-05T20:30:00Z");
  EXPECT_EQ(r["gap_list"][0]["to"], "2024-03-05T20:45:00Z");
  EXPECT_EQ(r["gap_list"][0]["wh"], 150);
  // register_mismatch, register_backwards, two interval_conflict, reconciliation (|540 - 510| = 30 >
  // max(10, 5.1)).
  std::multiset<std::string> kinds;
  for (const auto& a : r["anomaly_list"]) kinds.insert(a["kind"]);
  EXPECT_EQ(kinds, (std::multiset<std::string>{"register_mismatch", "register_backwards", "interval_conflict",
                                               "interval_conflict", "reconciliation"}));
  EXPECT_EQ(r["anomalies"], 5);
  // Billing uses each interval's Wh once: 510 Wh * 0.15 = 76500.
  EXPECT_EQ(s.bill("owner", "2024-03")["total_micro"], 76500);
}

TEST(metering, small_differences_are_not_reconciliation_anomalies) {
  scenario s;
  base(s);
  charge_session(s, "s1", "home", "e_home", vin1, 2000);
  s.cmd("pev.total", "2024-03-05T20:31:00Z", R"("session":"s1","wh":2020)");  // 20 <= max(10, 20)
  s.run_ok();
  EXPECT_EQ(s.session("s1")["anomalies"], 0);
}

std::multiset<std::string> anomaly_kinds(const json& report) {
  std::multiset<std::string> kinds;
  for (const auto& a : report["anomaly_list"]) kinds.insert(a["kind"].get<std::string>());
  return kinds;
}

// The rules of SPEC section 5 that look past one session compare with what the log holds of the
// EUMD, and what is still in memory: every case runs with all lines in one group commit, and with
// the engine reopened before each line (its neighbours then come from the log's index alone, and
// the EUMD's open sessions from its stream), keeping one entity resident.
class across_sessions : public ::testing::TestWithParam<bool> {
 protected:
  across_sessions() : s(GetParam() ? 1 : 4096, GetParam() ? 1 : engine_options{}.resident_entities_max) { base(s); }
  // Ingests the pending lines, one by one with a reopen between when the parameter says so.
  void run() {
    if (!GetParam()) return s.run_ok();
    s.run_ok();
    s.reopen();
  }
  // Replays the log alone and compares every stored projection.
  void expect_replay_verifies() {
    s.close();
    const auto replayed = testing::run_pevledger("replay --db " + s.dir().file("db") + " --verify");
    EXPECT_EQ(replayed.exit_code, 0) << replayed.out << replayed.err;
  }
  scenario s;
};

INSTANTIATE_TEST_SUITE_P(metering, across_sessions, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "reopened_per_line" : "one_group"; });

TEST_P(across_sessions, a_register_below_the_eumds_previous_interval_in_another_session_went_backwards) {
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")");
  run();
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 100, R"(,"register_wh":5100)");
  run();
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 200, R"(,"register_wh":5300)");
  run();
  s.cmd("session.unplug", "2024-03-05T20:30:00Z", R"("session":"s1")");
  run();
  s.cmd("session.plug", "2024-03-06T20:00:00Z", R"("session":"s2","premise":"home")");
  run();
  interval(s, "e_home", "s2", "2024-03-06T20:00:00Z", 150, R"(,"register_wh":700)");  // 700 < 5300
  run();
  interval(s, "e_home", "s2", "2024-03-06T20:15:00Z", 150, R"(,"register_wh":850)");  // against 700: fine
  run();
  // A late interval of s1 lies between: its register is above the 700 that follows it in s2.
  interval(s, "e_home", "s1", "2024-03-05T20:30:00Z", 40, R"(,"register_wh":5340)");
  run();
  EXPECT_EQ(anomaly_kinds(s.session("s2")), (std::multiset<std::string>{"register_backwards"}));
  const json s2 = s.session("s2");
  EXPECT_EQ(s2["anomaly_list"][0]["interval_start"], "2024-03-06T20:00:00Z");
  // The late interval's own register continues s1's (5300 + 40), and the pair it makes with s2's
  // first interval is recorded on s1, the session whose line revealed it.
  EXPECT_EQ(anomaly_kinds(s.session("s1")), (std::multiset<std::string>{"register_backwards"}));
  EXPECT_EQ(s.session("s1")["anomaly_list"][0]["interval_start"], "2024-03-06T20:00:00Z");
  // Billing still uses each interval's Wh: s2 has 300 Wh on the main meter (never bound).
  EXPECT_EQ(s.session("s2")["wh"], 300);
  expect_replay_verifies();
}

TEST_P(across_sessions, intervals_of_one_eumd_that_overlap_with_different_starts_are_anomalies_and_billed) {
  charge_session(s, "s1", "home", "e_home", vin1, 1000);  // 2024-03-05 20:00, 900 s
  run();
  // The same EUMD, starting inside s1's interval: in s1 and in another session.
  s.cmd("meter.interval", "2024-03-05T20:31:00Z",
        R"("device":"e_home","session":"s1","start":"2024-03-05T20:10:00Z","seconds":900,"wh":100)");
  run();
  s.cmd("session.plug", "2024-03-05T20:40:00Z", R"("session":"s2","premise":"home")");
  run();
  s.cmd("meter.interval", "2024-03-05T20:41:00Z",
        R"("device":"e_home","session":"s2","start":"2024-03-05T20:20:00Z","seconds":600,"wh":60)");
  run();
  // A late interval that ends after the next one starts (19:50 + 900 s > 20:00).
  s.cmd("meter.interval", "2024-03-05T20:42:00Z",
        R"("device":"e_home","session":"s1","start":"2024-03-05T19:50:00Z","seconds":900,"wh":10)");
  run();
  // Back to back is no overlap: 20:30 + 900 s ends where 20:45 starts.
  s.cmd("meter.interval", "2024-03-05T20:43:00Z",
        R"("device":"e_home","session":"s2","start":"2024-03-05T20:30:00Z","seconds":900,"wh":5)")
      .cmd("meter.interval", "2024-03-05T20:44:00Z",
           R"("device":"e_home","session":"s2","start":"2024-03-05T20:45:00Z","seconds":900,"wh":5)");
  run();
  EXPECT_EQ(anomaly_kinds(s.session("s1")), (std::multiset<std::string>{"interval_overlap", "interval_overlap"}));
  // s2's 20:20 overlaps s1's 20:10 (which ends 20:25), its latest start before. s1 was unplugged
  // (20:30) before s2 plugged (20:40): no plug anomaly.
  EXPECT_EQ(anomaly_kinds(s.session("s2")), (std::multiset<std::string>{"interval_overlap"}));
  EXPECT_EQ(s.session("s1")["wh"], 1110);  // billed all the same: 1000 + 100 + 10
  EXPECT_EQ(s.session("s2")["wh"], 70);
  expect_replay_verifies();
}

TEST_P(across_sessions, a_plug_on_an_eumd_with_an_open_session_is_an_anomaly) {
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")");
  run();
  s.cmd("session.plug", "2024-03-05T21:00:00Z", R"("session":"s2","premise":"home")");  // the premise's EUMD
  run();
  s.cmd("session.plug", "2024-03-05T21:30:00Z", R"("session":"s3","premise":"home","eumd":"e_home")");
  run();
  s.cmd("session.unplug", "2024-03-05T22:00:00Z", R"("session":"s1")")
      .cmd("session.unplug", "2024-03-05T22:00:01Z", R"("session":"s2")")
      .cmd("session.unplug", "2024-03-05T22:00:02Z", R"("session":"s3")");
  run();
  s.cmd("session.plug", "2024-03-06T20:00:00Z", R"("session":"s4","premise":"home")");
  run();
  EXPECT_TRUE(anomaly_kinds(s.session("s1")).empty());
  EXPECT_EQ(anomaly_kinds(s.session("s2")), (std::multiset<std::string>{"eumd_in_use"}));
  EXPECT_EQ(anomaly_kinds(s.session("s3")), (std::multiset<std::string>{"eumd_in_use"}));
  EXPECT_EQ(s.session("s3")["anomaly_list"][0]["interval_start"], "2024-03-05T21:30:00Z");
  EXPECT_TRUE(anomaly_kinds(s.session("s4")).empty()) << "every earlier session was unplugged";
  expect_replay_verifies();
}

// device.configure sets the interval an EUMD reports at: an interval of another length is billed
// as sent and flagged for auditors, apart from SPEC section 5's anomalies.
TEST(metering, an_interval_of_another_length_than_its_eumds_configured_one_is_flagged_and_billed) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 1000);  // 900 s, as commissioned
  s.cmd("device.configure", "2024-03-05T20:15:00Z", R"("device":"e_home","interval_s":300)");
  // 300 s now: the first is flagged at 900 s, the second is as configured.
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 400);
  s.cmd("meter.interval", "2024-03-05T20:30:00Z",
        R"("device":"e_home","session":"s1","start":"2024-03-05T20:30:00Z","seconds":300,"wh":100)");
  s.run_ok();
  const json report = s.session("s1");
  EXPECT_EQ(report["anomalies"], 0) << report.dump();
  ASSERT_EQ(report["interval_length_flags"].size(), 1u) << report.dump();
  EXPECT_EQ(report["interval_length_flags"][0]["interval_start"], "2024-03-05T20:15:00Z");
  EXPECT_NE(report["interval_length_flags"][0]["detail"].get<std::string>().find("configured for 300 s"),
            std::string::npos);
  EXPECT_EQ(report["wh"], 1500);  // billed all the same
  EXPECT_EQ(wh_of(s.bill("owner", "2024-03"), "charge"), 1500);
}

TEST(metering, late_intervals_after_unplug_post_on_arrival) {
  scenario s;
  base(s);
  charge_session(s, "s1", "home", "e_home", vin1, 1000);
  s.run_ok();
  EXPECT_EQ(s.balance("owner")["balance_micro"], -150000);
  interval(s, "e_home", "s1", "2024-03-05T20:15:00Z", 2000);  // arrives after unplug
  s.run_ok();
  EXPECT_EQ(s.balance("owner")["balance_micro"], -450000);  // + 2000 * 0.15
  EXPECT_EQ(s.balance("host")["balance_micro"], 600000);    // 3000 * 0.20
}

TEST(metering, amounts_post_at_an_unplug_that_arrives_on_its_own) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  interval(s, "e_home", "s1", "2024-03-05T20:00:00Z", 1000);
  s.run_ok();
  EXPECT_EQ(s.balance("owner")["balance_micro"], 0);  // booked, not yet posted
  s.cmd("session.unplug", "2024-03-05T20:30:00Z", R"("session":"s1")");
  s.run_ok();
  EXPECT_EQ(s.balance("owner")["balance_micro"], -150000);  // 1000 Wh at 0.15
  EXPECT_EQ(s.balance("host")["balance_micro"], 200000);    // 1000 Wh at 0.20
}

TEST(metering, interval_from_another_device_is_refused) {
  scenario s;
  base(s);
  guest_premise(s, "guest_pays");
  s.cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")");
  s.run_ok();
  interval(s, "e_guest", "s1", "2024-03-05T20:00:00Z", 100);
  s.run_refused(errc::device_mismatch);
  interval(s, "esci_home", "s1", "2024-03-05T20:00:00Z", 100);
  s.run_refused(errc::not_eumd);
}

TEST(bill, a_late_interval_after_the_bill_run_becomes_an_adjustment_on_the_next_bill) {
  scenario s;
  base(s);
  s.cmd("session.plug", "2024-03-31T23:00:00Z", R"("session":"s1","premise":"home")")
      .cmd("session.bind", "2024-03-31T23:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"");
  interval(s, "e_home", "s1", "2024-03-31T23:00:00Z", 1000);
  s.cmd("session.unplug", "2024-03-31T23:59:00Z", R"("session":"s1")")
      .cmd("bill.run", "2024-04-01T06:00:00Z", R"("utility":"u","period":"2024-03")");
  s.run_ok();
  const json march = s.bill("owner", "2024-03");
  EXPECT_EQ(march["status"], "issued");
  EXPECT_EQ(march["total_micro"], 150000);
  // The 23:45 interval of March arrives after March was billed.
  interval(s, "e_home", "s1", "2024-03-31T23:45:00Z", 2000);
  s.cmd("bill.run", "2024-04-01T07:00:00Z", R"("utility":"u","period":"2024-03")");  // a duplicate
  s.run_ok();
  EXPECT_EQ(s.summary().duplicates, 1u);
  EXPECT_EQ(s.bill("owner", "2024-03"), march);  // an issued bill never changes
  const json april = s.bill("owner", "2024-04");
  EXPECT_EQ(april["status"], "preview");
  ASSERT_EQ(april["lines"].size(), 1u);
  EXPECT_EQ(april["lines"][0]["kind"], "adjustment");
  EXPECT_EQ(april["lines"][0]["adjusts"], "charge");
  EXPECT_EQ(april["lines"][0]["original_period"], "2024-03");
  EXPECT_EQ(april["lines"][0]["amount_micro"], 300000);  // 2000 * 0.15, sign of the charge
  const json host_april = s.bill("host", "2024-04");
  ASSERT_EQ(host_april["lines"].size(), 1u);
  EXPECT_EQ(host_april["lines"][0]["adjusts"], "credit");
  EXPECT_EQ(host_april["lines"][0]["amount_micro"], -400000);  // sign of the credit
}

TEST(bill, periods_are_local_months_of_the_billed_accounts_utility) {
  scenario s;
  s.cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":"t","timezone":"Asia/Tokyo")")
      .cmd("tariff.publish", "2024-03-01T00:00:01Z", R"("utility":"t","tariff":"f","kind":"flat","price":100000)")
      .cmd("account.open", "2024-03-01T00:00:02Z", R"("utility":"t","account":"a","customer":"c")")
      .cmd("premise.register", "2024-03-01T00:00:03Z", R"("utility":"t","premise":"p","account":"a","default_tariff":"f")")
      .cmd("device.commission", "2024-03-01T00:00:04Z", R"("premise":"p","device":"e","kind":"eumd")")
      .cmd("pev.enroll", "2024-03-01T00:00:05Z",
           R"("account":"a","pev":")" + std::string(vin1) + R"(","tariff":"f","home_premise":"p")")
      .cmd("session.plug", "2024-03-31T14:50:00Z", R"("session":"s","premise":"p")")
      .cmd("session.bind", "2024-03-31T14:50:10Z", R"("session":"s","pev":")" + std::string(vin1) + "\"");
  interval(s, "e", "s", "2024-03-31T14:45:00Z", 1000);  // 23:45 JST, March 31
  interval(s, "e", "s", "2024-03-31T15:00:00Z", 1000);  // 00:00 JST, April 1
  s.run_ok();
  EXPECT_EQ(wh_of(s.bill("a", "2024-03"), "charge"), 1000);
  EXPECT_EQ(wh_of(s.bill("a", "2024-04"), "charge"), 1000);
}

TEST(grant, energy_request_is_deferred_past_load_control_and_priced_once_decided) {
  scenario s;
  base(s);
  s.cmd("dlc.declare", "2024-03-05T00:00:00Z", R"("utility":"u","start":"2024-03-05T20:00:00Z","end":"2024-03-05T22:00:00Z")")
      .cmd("session.plug", "2024-03-05T20:05:00Z", R"("session":"s1","premise":"home")")
      .cmd("energy.request", "2024-03-05T20:05:05Z",
           R"("session":"s1","wh":20000,"depart":"2024-03-06T07:00:00Z")")
      .cmd("session.bind", "2024-03-05T20:05:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"")
      .cmd("energy.request", "2024-03-05T22:30:00Z",
           R"("session":"s1","wh":15000,"depart":"2024-03-06T07:00:00Z")");
  s.run_ok();
  const json r = s.session("s1");
  ASSERT_EQ(r["grants"].size(), 2u);
  EXPECT_EQ(r["grants"][0]["wh"], 20000);
  EXPECT_EQ(r["grants"][0]["start"], "2024-03-05T22:00:00Z");
  EXPECT_TRUE(r["grants"][0]["price_micro_per_kwh"].is_null());
  EXPECT_EQ(r["grants"][1]["start"], "2024-03-05T22:30:00Z");
  EXPECT_EQ(r["grants"][1]["price_micro_per_kwh"], 150000);
}

TEST(ordering, shuffled_and_duplicated_interval_lines_give_identical_bills) {
  // The same month twice: once in order, once with its interval lines shuffled and 1 in 4 resent.
  auto build = [](bool shuffle) {
    auto s = std::make_unique<scenario>();
    base(*s, "guest_pays");
    guest_premise(*s, "guest_pays");
    s->run_ok();
    s->cmd("session.plug", "2024-03-05T20:00:00Z", R"("session":"s1","premise":"home")")
        .cmd("session.bind", "2024-03-05T20:00:10Z", R"("session":"s1","pev":")" + std::string(vin1) + "\"")
        .cmd("session.plug", "2024-03-07T20:00:00Z", R"("session":"s2","premise":"guest")")
        .cmd("session.bind", "2024-03-07T20:00:10Z", R"("session":"s2","pev":")" + std::string(vin1) + "\"");
    s->run_ok();
    std::vector<std::string> lines;
    for (int i = 0; i < 40; ++i) {
      const std::string session = i % 2 == 0 ? "s1" : "s2";
      const std::string device = i % 2 == 0 ? "e_home" : "e_guest";
      const int day = i % 2 == 0 ? 5 : 7;
      char start[32];
      std::snprintf(start, sizeof start, "2024-03-%02dT%02d:%02d:00Z", day, 18 + (i / 2) / 4, ((i / 2) % 4) * 15);
      lines.push_back(R"({"type":"meter.interval","id":"i)" + std::to_string(i) + R"(","at":"2024-03-08T00:00:00Z","device":")" +
                      device + R"(","session":")" + session + R"(","start":")" + start +
                      R"(","seconds":900,"wh":)" + std::to_string(137 * i + 11) + "}");
    }
    if (shuffle) {
      std::mt19937 rng(20240305);
      std::vector<std::string> resent;
      for (std::size_t i = 0; i < lines.size(); i += 4) {
        std::string again = lines[i];
        again.replace(again.find("\"id\":\"i"), 7, "\"id\":\"again-i");
        resent.push_back(again);
      }
      lines.insert(lines.end(), resent.begin(), resent.end());
      std::shuffle(lines.begin(), lines.end(), rng);
    }
    for (const auto& l : lines) s->raw(l);
    s->cmd("session.unplug", "2024-03-08T00:00:01Z", R"("session":"s1")")
        .cmd("session.unplug", "2024-03-08T00:00:02Z", R"("session":"s2")");
    s->run_ok();
    return s;
  };
  auto ordered = build(false);
  auto shuffled = build(true);
  EXPECT_EQ(shuffled->summary().duplicates, 10u);
  for (const char* account : {"owner", "host", "guestacct"}) {
    EXPECT_EQ(ordered->bill(account, "2024-03"), shuffled->bill(account, "2024-03")) << account;
    EXPECT_EQ(ordered->balance(account), shuffled->balance(account)) << account;
  }
  // Independent check of the owner's total: each interval of (137 i + 11) Wh at 150000 micro/kWh
  // rounded half to even on its own, then summed.
  std::int64_t expected = 0;
  for (int i = 0; i < 40; ++i) {
    const std::int64_t x = (137 * i + 11) * 150000;  // micro * 1000
    std::int64_t q = x / 1000, r = x % 1000;
    if (r > 500 || (r == 500 && q % 2 == 1)) ++q;
    expected += q;
  }
  EXPECT_EQ(ordered->bill("owner", "2024-03")["total_micro"], expected);
}

}  // namespace
}  // namespace pevledger
