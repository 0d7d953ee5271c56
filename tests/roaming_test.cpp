// Roaming, clearinghouse settlement, public stations, cards and prepaid accounts (SPEC sections 2,
// 3 and 4). Expected amounts are computed by hand in the comments.

#include "tests/scenario.hpp"

namespace pevledger {
namespace {

using testing::amount_of;
using testing::json;
using testing::q;
using testing::scenario;
using testing::wh_of;

constexpr const char* vin_h = "1HG8NAW39M673BW7N";  // a PEV of utility "h"
constexpr const char* vin_r = "JN1Z19E98N1134BRA";  // a PEV of utility "r"
constexpr const char* vin_stay = "5YJKMC066FB042VRN";  // of "h", not allowed to roam

// Utility `u` in `zone`: tariffs res (flat `res_price`), ev (flat `ev_price`) and station (flat
// 400000); a premise `u`-p of account `u`-a with EUMD `u`-e; a PEV `vin` enrolled by account
// `u`-ev with home premise `u`-p.
void utility(scenario& s, const std::string& u, const std::string& zone, std::int64_t res_price,
             std::int64_t ev_price, const std::string& vin, const std::string& guest_policy = "host_pays") {
  s.cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":)" + q(u) + R"(,"timezone":)" + q(zone))
      .cmd("tariff.publish", "2024-03-01T00:00:01Z",
           R"("utility":)" + q(u) + R"(,"tariff":"res","kind":"flat","price":)" + std::to_string(res_price))
      .cmd("tariff.publish", "2024-03-01T00:00:02Z",
           R"("utility":)" + q(u) + R"(,"tariff":"ev","kind":"flat","price":)" + std::to_string(ev_price))
      .cmd("tariff.publish", "2024-03-01T00:00:03Z",
           R"("utility":)" + q(u) + R"(,"tariff":"station","kind":"flat","price":400000)")
      .cmd("account.open", "2024-03-01T00:00:04Z", R"("utility":)" + q(u) + R"(,"account":)" + q(u + "-a") + R"(,"customer":"c")")
      .cmd("premise.register", "2024-03-01T00:00:05Z",
           R"("utility":)" + q(u) + R"(,"premise":)" + q(u + "-p") + R"(,"account":)" + q(u + "-a") +
               R"(,"default_tariff":"res","guest_policy":)" + q(guest_policy))
      .cmd("device.commission", "2024-03-01T00:00:06Z", R"("premise":)" + q(u + "-p") + R"(,"device":)" + q(u + "-e") + R"(,"kind":"eumd")")
      .cmd("account.open", "2024-03-01T00:00:07Z", R"("utility":)" + q(u) + R"(,"account":)" + q(u + "-ev") + R"(,"customer":"c")")
      .cmd("pev.enroll", "2024-03-01T00:00:08Z",
           R"("account":)" + q(u + "-ev") + R"(,"pev":)" + q(vin) + R"(,"tariff":"ev","home_premise":)" + q(u + "-p"));
}

void roam(scenario& s, const std::string& session, const std::string& premise, const std::string& eumd,
          const std::string& vin, const std::string& day, std::int64_t wh) {
  s.cmd("session.plug", day + "T10:00:00Z", R"("session":)" + q(session) + R"(,"premise":)" + q(premise))
      .cmd("session.bind", day + "T10:00:10Z", R"("session":)" + q(session) + R"(,"pev":)" + q(vin))
      .cmd("meter.interval", day + "T10:20:00Z",
           R"("device":)" + q(eumd) + R"(,"session":)" + q(session) + R"(,"start":)" + q(day + "T10:00:00Z") +
               R"(,"seconds":900,"wh":)" + std::to_string(wh))
      .cmd("session.unplug", day + "T10:30:00Z", R"("session":)" + q(session));
}

// Two utilities: h (UTC; res 0.20, ev 0.15) and r (Europe/Helsinki; res 0.30, ev 0.25).
void two_utilities(scenario& s) {
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  utility(s, "r", "Europe/Helsinki", 300000, 250000, vin_r);
  s.cmd("pev.enroll", "2024-03-01T00:00:09Z",
        R"("account":"h-ev","pev":)" + q(vin_stay) + R"(,"tariff":"ev","home_premise":"h-p","allow_roaming":false)");
}

TEST(roaming, home_utility_bills_its_customer_and_roaming_utility_credits_its_premise) {
  scenario s;
  two_utilities(s);
  roam(s, "s1", "r-p", "r-e", vin_h, "2024-03-05", 2000);
  s.run_ok();
  // h's PEV at r's premise: h-ev pays h's ev tariff, 2000 * 150000 / 1000 = 300000;
  // r credits its premise at r's res tariff, 2000 * 300000 / 1000 = 600000.
  const json h_ev = s.bill("h-ev", "2024-03");
  ASSERT_EQ(h_ev["lines"].size(), 1u);
  EXPECT_EQ(h_ev["lines"][0]["kind"], "charge");
  EXPECT_EQ(h_ev["lines"][0]["tariff"], "ev");
  EXPECT_EQ(h_ev["lines"][0]["amount_micro"], 300000);
  EXPECT_EQ(amount_of(s.bill("r-a", "2024-03"), "credit"), -600000);
  EXPECT_TRUE(s.session("s1")["roaming"].get<bool>());
  EXPECT_EQ(s.session("s1")["payer"], "h-ev");
  // Guest policy is not consulted out of territory (r-p is host_pays).
  // Not allowed to roam: fallback at r's premise.
  roam(s, "s2", "r-p", "r-e", vin_stay, "2024-03-06", 1000);
  s.run_ok();
  EXPECT_EQ(s.session("s2")["payer"], "main_meter");
  EXPECT_EQ(s.session("s2")["reason"], "roaming_not_allowed");
  EXPECT_EQ(wh_of(s.bill("r-a", "2024-03"), "main_meter"), 1000);
}

TEST(settlement, two_utilities_roaming_into_each_other_are_netted) {
  scenario s;
  two_utilities(s);
  roam(s, "s1", "r-p", "r-e", vin_h, "2024-03-05", 2000);  // r credits 2000 * 0.30 = 600000 for h's PEV
  roam(s, "s2", "h-p", "h-e", vin_r, "2024-03-06", 5000);  // h credits 5000 * 0.20 = 1000000 for r's PEV
  roam(s, "s3", "r-p", "r-e", vin_h, "2024-03-07", 1001);  // r credits 1001 * 0.30 = 300300
  s.run_ok();
  // Before the run, the preview already shows the statement the run would issue.
  const json preview = s.settlement("2024-03");
  s.cmd("settlement.run", "2024-04-05T00:00:00Z", R"("period":"2024-03")");
  s.run_ok();
  const json st = s.settlement("2024-03");
  EXPECT_EQ(preview, st);
  ASSERT_TRUE(st.is_array());
  std::map<std::tuple<std::string, std::string, bool>, std::pair<std::int64_t, std::int64_t>> entries;
  for (const auto& e : st)
    entries[{e["home_utility"], e["roaming_utility"], e["net"]}] = {e["wh"], e["amount_micro"]};
  ASSERT_EQ(entries.size(), 3u);
  // Gross: h owes r 600000 + 300300 = 900300 for 3001 Wh; r owes h 1000000 for 5000 Wh.
  EXPECT_EQ((entries[{"h", "r", false}]), std::make_pair(std::int64_t{3001}, std::int64_t{900300}));
  EXPECT_EQ((entries[{"r", "h", false}]), std::make_pair(std::int64_t{5000}, std::int64_t{1000000}));
  // Net: r owes h 1000000 - 900300 = 99700; wh in the same orientation 5000 - 3001 = 1999.
  EXPECT_EQ((entries[{"r", "h", true}]), std::make_pair(std::int64_t{1999}, std::int64_t{99700}));

  // A period is settled once; a credit arriving after it counts in the next unsettled period.
  s.cmd("meter.interval", "2024-04-06T00:00:00Z",
        R"("device":"r-e","session":"s1","start":"2024-03-05T10:15:00Z","seconds":900,"wh":100)")
      .cmd("settlement.run", "2024-04-06T00:00:01Z", R"("period":"2024-03")");
  s.run_ok();
  EXPECT_EQ(s.summary().duplicates, 1u);
  EXPECT_EQ(s.settlement("2024-03"), st);
  s.cmd("settlement.run", "2024-05-05T00:00:00Z", R"("period":"2024-04")");
  s.run_ok();
  const json april = s.settlement("2024-04");
  // 100 Wh * 0.30 = 30000 owed by h to r; only one direction, so the net entry equals the gross one.
  ASSERT_EQ(april.size(), 2u);
  for (const auto& e : april) {
    EXPECT_EQ(e["home_utility"], "h");
    EXPECT_EQ(e["roaming_utility"], "r");
    EXPECT_EQ(e["wh"], 100);
    EXPECT_EQ(e["amount_micro"], 30000);
  }
}

TEST(settlement, equal_amounts_net_to_nothing_and_are_left_out) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  utility(s, "r", "UTC", 200000, 150000, vin_r);
  roam(s, "s1", "r-p", "r-e", vin_h, "2024-03-05", 1000);
  roam(s, "s2", "h-p", "h-e", vin_r, "2024-03-06", 1000);
  s.cmd("settlement.run", "2024-04-05T00:00:00Z", R"("period":"2024-03")");
  s.run_ok();
  const json st = s.settlement("2024-03");
  ASSERT_EQ(st.size(), 2u);  // two gross entries of 200000 each; the net entry is zero and left out
  for (const auto& e : st) EXPECT_FALSE(e["net"].get<bool>());
}

// A public station "st" of utility h: operator account h-op, EUMD st-e, tariff station 0.40.
void station(scenario& s, bool activate = true) {
  s.cmd("account.open", "2024-03-01T00:01:00Z", R"("utility":"h","account":"h-op","customer":"operator")")
      .cmd("premise.register", "2024-03-01T00:01:01Z",
           R"("utility":"h","premise":"st","account":"h-op","default_tariff":"station","kind":"public")")
      .cmd("device.commission", "2024-03-01T00:01:02Z", R"("premise":"st","device":"st-e","kind":"eumd")")
      .cmd("device.commission", "2024-03-01T00:01:03Z", R"("premise":"st","device":"st-e2","kind":"eumd")")
      .cmd("station.boot", "2024-03-01T00:01:04Z", R"("premise":"st")");
  if (activate) s.cmd("station.activate", "2024-03-01T00:01:05Z", R"("premise":"st")");
}

void station_session(scenario& s, const std::string& session, const std::string& card, bool online,
                     const std::string& day, std::int64_t wh, const std::string& eumd = "st-e") {
  s.cmd("session.start", day + "T12:00:00Z",
        R"("session":)" + q(session) + R"(,"premise":"st","card":)" + q(card) + R"(,"online":)" +
            (online ? "true" : "false"))
      .cmd("meter.interval", day + "T12:20:00Z",
           R"("device":)" + q(eumd) + R"(,"session":)" + q(session) + R"(,"start":)" + q(day + "T12:00:00Z") +
               R"(,"seconds":900,"wh":)" + std::to_string(wh))
      .cmd("session.unplug", day + "T12:30:00Z", R"("session":)" + q(session));
}

TEST(stations, lifecycle_gates_sessions) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  station(s, false);
  s.cmd("card.assign", "2024-03-01T00:02:00Z", R"("card":"k1","account":"h-ev")");
  s.run_ok();
  s.cmd("session.start", "2024-03-02T12:00:00Z", R"("session":"x","premise":"st","card":"k1","online":true)");
  s.run_refused(errc::station_not_active);
  s.cmd("station.boot", "2024-03-02T12:00:01Z", R"("premise":"st")");
  s.run_refused(errc::invalid_state);
  s.cmd("station.activate", "2024-03-02T12:00:02Z", R"("premise":"st")");
  s.run_ok();
  s.cmd("session.start", "2024-03-02T12:00:03Z", R"("session":"x","premise":"st","card":"k1","online":true)");
  s.run_ok();
  s.cmd("session.plug", "2024-03-02T12:00:04Z", R"("session":"y","premise":"st")");
  s.run_refused(errc::not_residential);
}

TEST(stations, online_card_pays_station_tariff_and_revocation_takes_effect_at_once) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  station(s);
  s.cmd("card.assign", "2024-03-01T00:02:00Z", R"("card":"k1","account":"h-ev")");
  station_session(s, "p1", "k1", true, "2024-03-05", 1500, "st-e2");  // any EUMD of the station
  s.cmd("card.revoke", "2024-03-06T00:00:00Z", R"("card":"k1")");
  s.run_ok();
  // 1500 Wh at the station's tariff: 1500 * 400000 / 1000 = 600000; no premise credit.
  const json bill = s.bill("h-ev", "2024-03");
  EXPECT_EQ(amount_of(bill, "charge"), 600000);
  EXPECT_EQ(bill["lines"][0]["tariff"], "station");
  EXPECT_TRUE(s.bill("h-op", "2024-03")["lines"].empty());
  s.cmd("session.start", "2024-03-07T12:00:00Z", R"("session":"p2","premise":"st","card":"k1","online":true)");
  s.run_refused(errc::card_revoked);
  s.cmd("session.start", "2024-03-07T12:00:00Z", R"("session":"p2","premise":"st","card":"nope","online":true)");
  s.run_refused(errc::unknown_card);
  // A replacement: the revoked card assigned again works again.
  s.cmd("card.assign", "2024-03-08T00:00:00Z", R"("card":"k1","account":"h-ev")")
      .cmd("session.start", "2024-03-08T12:00:00Z", R"("session":"p3","premise":"st","card":"k1","online":true)");
  s.run_ok();
  s.cmd("card.assign", "2024-03-08T00:00:01Z", R"("card":"k1","account":"h-a")");
  s.run_refused(errc::card_assigned);
}

TEST(stations, offline_sessions_are_checked_as_of_their_start) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  utility(s, "r", "UTC", 300000, 250000, vin_r);
  station(s);
  s.cmd("card.assign", "2024-03-01T00:02:00Z", R"("card":"good","account":"h-ev")")
      .cmd("card.assign", "2024-03-01T00:02:01Z", R"("card":"revoked","account":"h-a")")
      .cmd("card.assign", "2024-03-01T00:02:02Z", R"("card":"foreign","account":"r-ev")")
      .cmd("whitelist.push", "2024-03-01T00:03:00Z",
           R"("premise":"st","version":1,"cards":["good","revoked","foreign","ghost"])")
      .cmd("card.revoke", "2024-03-04T00:00:00Z", R"("card":"revoked")");
  station_session(s, "off-good", "good", false, "2024-03-05", 1000);
  station_session(s, "off-revoked", "revoked", false, "2024-03-06", 2000);
  station_session(s, "off-foreign", "foreign", false, "2024-03-07", 3000);
  station_session(s, "off-ghost", "ghost", false, "2024-03-08", 4000);
  s.run_ok();
  // Valid as of its start: the card's account pays 1000 * 0.40 = 400000.
  EXPECT_EQ(amount_of(s.bill("h-ev", "2024-03"), "charge"), 400000);
  // Revoked before its start, another utility's card, an unknown card: the operator bears it.
  // (2000 + 3000 + 4000) * 0.40 = 3600000, positive, as uncollectible lines.
  const json op = s.bill("h-op", "2024-03");
  EXPECT_EQ(amount_of(op, "uncollectible"), 3600000);
  EXPECT_EQ(wh_of(op, "uncollectible"), 9000);
  EXPECT_EQ(s.balance("h-op")["balance_micro"], -3600000);
  EXPECT_EQ(s.session("off-revoked")["payer_kind"], "station_operator");
  EXPECT_TRUE(s.bill("r-ev", "2024-03")["lines"].empty());
  // Not on the whitelist: refused. An older whitelist version: refused.
  s.cmd("session.start", "2024-03-09T12:00:00Z", R"("session":"x","premise":"st","card":"other","online":false)");
  s.run_refused(errc::card_not_whitelisted);
  s.cmd("whitelist.push", "2024-03-09T12:00:01Z", R"("premise":"st","version":1,"cards":[])");
  s.run_refused(errc::stale_whitelist);
}

TEST(stations, an_offline_session_revoked_after_its_start_is_still_valid) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  station(s);
  s.cmd("card.assign", "2024-03-01T00:02:00Z", R"("card":"k","account":"h-ev")")
      .cmd("whitelist.push", "2024-03-01T00:03:00Z", R"("premise":"st","version":1,"cards":["k"])")
      .cmd("session.start", "2024-03-05T12:00:00Z", R"("session":"o","premise":"st","card":"k","online":false)")
      .cmd("card.revoke", "2024-03-05T12:05:00Z", R"("card":"k")")
      .cmd("meter.interval", "2024-03-05T12:20:00Z",
           R"("device":"st-e","session":"o","start":"2024-03-05T12:00:00Z","seconds":900,"wh":500)");
  s.run_ok();
  // Held until accounted: nothing billed yet.
  EXPECT_TRUE(s.bill("h-ev", "2024-03")["lines"].empty());
  // A bill run of the station's utility accounts it: 500 * 0.40 = 200000 to the card's account.
  s.cmd("bill.run", "2024-04-01T00:00:00Z", R"("utility":"h","period":"2024-03")");
  s.run_ok();
  const json bill = s.bill("h-ev", "2024-03");
  EXPECT_EQ(bill["status"], "issued");
  EXPECT_EQ(bill["total_micro"], 200000);
}

TEST(prepaid, station_refuses_an_account_that_does_not_cover_the_reservation) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  station(s);
  s.cmd("account.open", "2024-03-01T00:02:00Z", R"("utility":"h","account":"pp","customer":"c","kind":"prepaid")")
      .cmd("account.topup", "2024-03-01T00:02:01Z", R"("account":"pp","amount":5500000)")
      .cmd("card.assign", "2024-03-01T00:02:02Z", R"("card":"k","account":"pp")");
  station_session(s, "p1", "k", true, "2024-03-05", 2500);
  s.run_ok();
  // 2500 * 0.40 = 1000000 debited at unplug: 5500000 - 1000000 = 4500000 < 5000000 reserve.
  EXPECT_EQ(s.balance("pp")["balance_micro"], 4500000);
  EXPECT_EQ(s.balance("pp")["reserved_micro"], 0);
  s.cmd("session.start", "2024-03-06T12:00:00Z", R"("session":"p2","premise":"st","card":"k","online":true)");
  s.run_refused(errc::insufficient_balance);
  s.cmd("account.topup", "2024-03-06T12:00:01Z", R"("account":"pp","amount":500000)")
      .cmd("session.start", "2024-03-06T12:00:02Z", R"("session":"p2","premise":"st","card":"k","online":true)");
  s.run_ok();
  EXPECT_EQ(s.balance("pp")["reserved_micro"], 5000000);
}

TEST(stations, a_card_of_another_utility_is_refused_online) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  utility(s, "r", "UTC", 300000, 250000, vin_r);
  station(s);
  s.cmd("card.assign", "2024-03-01T00:02:00Z", R"("card":"k","account":"r-ev")")
      .cmd("session.start", "2024-03-05T12:00:00Z", R"("session":"x","premise":"st","card":"k","online":true)");
  s.run_refused(errc::utility_mismatch);
}

// SMS sessions (SPEC section 6): a subscriber's number starts an online session, with the checks
// of an online card.
TEST(stations, a_session_started_by_sms_is_an_online_card_session) {
  scenario s;
  utility(s, "h", "UTC", 200000, 150000, vin_h);
  utility(s, "r", "UTC", 300000, 250000, vin_r);
  station(s);
  s.cmd("account.open", "2024-03-01T00:02:00Z", R"("utility":"h","account":"h-pre","customer":"c","kind":"prepaid")")
      .cmd("phone.assign", "2024-03-01T00:02:01Z", R"("phone":"+358401234567","account":"h-ev")")
      .cmd("phone.assign", "2024-03-01T00:02:02Z", R"("phone":"+358401234567","account":"h-ev")")  // again: no change
      .cmd("phone.assign", "2024-03-01T00:02:03Z", R"("phone":"+15551230000","account":"r-ev")")
      .cmd("phone.assign", "2024-03-01T00:02:04Z", R"("phone":"+4930123456","account":"h-pre")")
      .cmd("session.start", "2024-03-05T12:00:00Z", R"("session":"m1","premise":"st","phone":"+358401234567")")
      .cmd("meter.interval", "2024-03-05T12:20:00Z",
           R"("device":"st-e","session":"m1","start":"2024-03-05T12:00:00Z","seconds":900,"wh":1500)")
      .cmd("session.unplug", "2024-03-05T12:30:00Z", R"("session":"m1")");
  s.run_ok();
  // The station's tariff, to the number's account: 1500 * 400000 / 1000 = 600000.
  EXPECT_EQ(amount_of(s.bill("h-ev", "2024-03"), "charge"), 600000);
  const json report = s.session("m1");
  EXPECT_EQ(report["phone"], "+358401234567");
  EXPECT_TRUE(report["card"].is_null());
  EXPECT_EQ(report["online"], true);
  EXPECT_EQ(report["payer"], "h-ev");

  const auto start = [&](const std::string& session, const std::string& fields) {
    s.cmd("session.start", "2024-03-06T12:00:00Z", R"("session":)" + q(session) + R"(,"premise":"st",)" + fields);
  };
  start("m2", R"("phone":"+15551230000")");  // a customer of r at h's station
  s.run_refused(errc::utility_mismatch);
  start("m2", R"("phone":"+4930123456")");  // prepaid, nothing topped up: no reservation
  s.run_refused(errc::insufficient_balance);
  start("m2", R"("phone":"+4930999999")");  // never assigned
  s.run_refused(errc::unknown_phone);
  s.cmd("phone.assign", "2024-03-06T12:00:01Z", R"("phone":"+358401234567","account":"h-a")");  // held by h-ev
  s.run_refused(errc::phone_assigned);
  s.cmd("phone.revoke", "2024-03-06T12:00:02Z", R"("phone":"+358401234567")");
  s.run_ok();
  start("m2", R"("phone":"+358401234567")");
  s.run_refused(errc::unknown_phone);  // revoked, at once
  s.cmd("phone.revoke", "2024-03-06T12:00:03Z", R"("phone":"+358401234567")");
  s.run_refused(errc::unknown_phone);
  // Revoked, the number may go to another account.
  s.cmd("phone.assign", "2024-03-06T12:00:04Z", R"("phone":"+358401234567","account":"h-a")");
  start("m2", R"("phone":"+358401234567")");
  s.run_ok();
  EXPECT_EQ(s.session("m2")["payer"], "h-a");

  // The form of a line: a number in E.164 form, and a card or a phone.
  for (const char* bad : {"358401234567", "+3584", "+3584012345678901", "+35840 1234567", "+35840123456a"}) {
    s.cmd("phone.assign", "2024-03-07T00:00:00Z", R"("phone":)" + q(bad) + R"(,"account":"h-a")");
    s.run_refused(errc::invalid_field);
  }
  start("m3", R"("online":true)");
  s.run_refused(errc::missing_field);
  start("m3", R"("card":"k","phone":"+358401234567","online":true)");
  s.run_refused(errc::invalid_field);
  start("m3", R"("phone":"+358401234567","online":false)");
  s.run_refused(errc::invalid_field);
  start("m3", R"("card":"k")");
  s.run_refused(errc::missing_field);
  start("m3", R"("phone":"+358401234567","online":true)");
  s.run_ok();
  s.close();
  const auto replayed = testing::run_pevledger("replay --db " + s.dir().file("db") + " --verify");
  EXPECT_EQ(replayed.exit_code, 0) << replayed.out << replayed.err;
}

}  // namespace
}  // namespace pevledger
