// Customer access (docs/api.md): access.grant and access.revoke, the read API as a customer, a
// utility and a stranger see it, while a writer extends the log, and the HTTP server with a real
// client (status codes, headers, bounds). Expected figures are computed by hand or taken from the
// engine's own projections, never from the API under test.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <thread>

#include "portal/api.hpp"
#include "portal/http_server.hpp"
#include "portal/notifications.hpp"
#include "tests/scenario.hpp"

namespace pevledger {
namespace {

using testing::amount_of;
using testing::json;
using testing::q;
using testing::scenario;
using testing::wh_of;

constexpr const char* vin1 = "1HG8NAW39M673BW7N";

std::string grant(const std::string& token, const std::string& principal_field) {
  return R"("token_sha256":)" + q(portal::token_sha256(token)) + "," + principal_field;
}

// Utility "u" in New York (EST, UTC-5, in early March): tariffs res (0.20/kWh) and ev (0.15/kWh);
// premise "home" of account "host" with EUMD "e_home"; PEV vin1 of account "owner", at home.
// Utility "v" has account "other". Tokens: owner, host, other, utility u, utility v.
void world(scenario& s) {
  s.cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":"u","timezone":"America/New_York")")
      .cmd("utility.register", "2024-03-01T00:00:00Z", R"("utility":"v","timezone":"UTC")")
      .cmd("tariff.publish", "2024-03-01T00:00:01Z", R"("utility":"u","tariff":"res","kind":"flat","price":200000)")
      .cmd("tariff.publish", "2024-03-01T00:00:02Z", R"("utility":"u","tariff":"ev","kind":"flat","price":150000)")
      .cmd("account.open", "2024-03-01T00:00:03Z", R"("utility":"u","account":"host","customer":"Hana")")
      .cmd("premise.register", "2024-03-01T00:00:04Z",
           R"("utility":"u","premise":"home","account":"host","default_tariff":"res")")
      .cmd("device.commission", "2024-03-01T00:00:06Z", R"("premise":"home","device":"e_home","kind":"eumd")")
      .cmd("account.open", "2024-03-01T00:00:07Z", R"("utility":"u","account":"owner","customer":"Omar")")
      .cmd("pev.enroll", "2024-03-01T00:00:08Z",
           R"("account":"owner","pev":")" + std::string(vin1) + R"(","tariff":"ev","home_premise":"home")")
      .cmd("account.open", "2024-03-01T00:00:09Z", R"("utility":"v","account":"other","customer":"Olga")")
      .cmd("access.grant", "2024-03-01T00:00:10Z", grant("tok-owner", R"("account":"owner")"))
      .cmd("access.grant", "2024-03-01T00:00:10Z", grant("tok-host", R"("account":"host")"))
      .cmd("access.grant", "2024-03-01T00:00:10Z", grant("tok-other", R"("account":"other")"))
      .cmd("access.grant", "2024-03-01T00:00:10Z", grant("tok-u", R"("utility":"u")"))
      .cmd("access.grant", "2024-03-01T00:00:10Z", grant("tok-v", R"("utility":"v")"));
}

// Session `id` on March `day` plugged at 03:00Z (22:00 the evening before in New York), bound to
// vin1 at once, with two intervals of `wh` each from 03:00Z, then unplugged (unless `open`).
void charge(scenario& s, const std::string& id, int day, std::int64_t wh, bool open = false) {
  char date[16];
  std::snprintf(date, sizeof date, "2024-03-%02d", day);
  const std::string d = date;
  s.cmd("session.plug", d + "T03:00:00Z", R"("session":)" + q(id) + R"(,"premise":"home")")
      .cmd("session.bind", d + "T03:00:10Z", R"("session":)" + q(id) + R"(,"pev":")" + std::string(vin1) + "\"");
  for (const char* start : {"T03:00:00Z", "T03:15:00Z"})
    s.cmd("meter.interval", d + "T03:30:00Z",
          R"("device":"e_home","session":)" + q(id) + R"(,"start":)" + q(d + start) + R"(,"seconds":900,"wh":)" +
              std::to_string(wh));
  if (!open) s.cmd("session.unplug", d + "T04:00:00Z", R"("session":)" + q(id));
}

class reader {
 public:
  explicit reader(scenario& s) {
    portal::api_options options;
    options.refresh_after = std::chrono::milliseconds(0);  // every request sees the newest group
    auto a = portal::api::open(s.dir().file("db"), options);
    if (!a) throw std::runtime_error(a.error().describe());
    api_ = std::move(a.value());
  }
  struct reply {
    unsigned status = 0;
    json body;
    bool challenge = false;
  };
  reply get(const std::string& target, const std::string& token = "", const std::string& method = "GET") {
    const auto r = api_->handle(method, target, token.empty() ? "" : "Bearer " + token);
    return {r.status, r.content_type == "application/json" ? json::parse(r.body) : json(r.body), r.challenge};
  }
  portal::api& api() { return *api_; }

 private:
  std::unique_ptr<portal::api> api_;
};

TEST(access_grant, refuses_a_bad_hash_a_missing_or_double_principal_and_unknown_ones) {
  scenario s;
  world(s);
  s.run_ok();
  s.cmd("access.grant", "2024-03-02T00:00:00Z", R"("token_sha256":"ABC","account":"owner")");
  s.run_refused(errc::invalid_field);
  s.cmd("access.grant", "2024-03-02T00:00:00Z", R"("token_sha256":)" + q(std::string(64, 'A')) + R"(,"account":"owner")");
  s.run_refused(errc::invalid_field);  // upper-case hex is not what token_sha256 gives
  s.cmd("access.grant", "2024-03-02T00:00:00Z", R"("token_sha256":)" + q(portal::token_sha256("x")));
  s.run_refused(errc::missing_field);
  s.cmd("access.grant", "2024-03-02T00:00:00Z", grant("x", R"("account":"owner","utility":"u")"));
  s.run_refused(errc::invalid_field);
  s.cmd("access.grant", "2024-03-02T00:00:00Z", grant("x", R"("account":"nobody")"));
  s.run_refused(errc::unknown_account);
  s.cmd("access.revoke", "2024-03-02T00:00:00Z", grant("x", R"("utility":"w")"));
  s.run_refused(errc::unknown_utility);
}

TEST(access_token, is_fresh_each_time_and_hashed_as_64_hex_digits) {
  auto a = portal::new_access_token();
  auto b = portal::new_access_token();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a.value(), b.value());
  EXPECT_EQ(a.value().substr(0, 4), "pvl_");
  EXPECT_EQ(a.value().size(), 4u + 43u);
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  EXPECT_EQ(portal::token_sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(read_api, a_missing_unknown_or_malformed_token_gets_401_and_no_data) {
  scenario s;
  world(s);
  s.run_ok();
  reader r(s);
  auto none = r.get("/api/v1/accounts/owner");
  EXPECT_EQ(none.status, 401u);
  EXPECT_TRUE(none.challenge);
  EXPECT_EQ(none.body["error"], "unauthorized");
  EXPECT_FALSE(none.body.contains("account"));
  EXPECT_EQ(r.get("/api/v1/accounts/owner", "tok-nobody").status, 401u);
  EXPECT_EQ(r.api().handle("GET", "/api/v1/me", "Basic dG9rLW93bmVy").status, 401u);
  EXPECT_EQ(r.api().handle("GET", "/api/v1/me", "Bearer").status, 401u);
  EXPECT_EQ(r.api().handle("GET", "/api/v1/me", "bearer tok-owner").status, 200u);  // the scheme in any case
}

TEST(read_api, a_customer_reads_its_own_account_and_nobody_elses) {
  scenario s;
  world(s);
  charge(s, "s1", 5, 1000);
  s.run_ok();
  reader r(s);
  auto me = r.get("/api/v1/me", "tok-owner");
  ASSERT_EQ(me.status, 200u);
  EXPECT_EQ(me.body["kind"], "account");
  EXPECT_EQ(me.body["account"], "owner");
  auto account = r.get("/api/v1/accounts/owner", "tok-owner");
  ASSERT_EQ(account.status, 200u);
  EXPECT_EQ(account.body["customer"], "Omar");
  EXPECT_EQ(account.body["timezone"], "America/New_York");
  ASSERT_EQ(account.body["pevs"].size(), 1u);
  EXPECT_EQ(account.body["pevs"][0]["pev"], vin1);
  EXPECT_EQ(account.body["programs"], json::array({"ev"}));
  // 2,000 Wh at 0.15/kWh = 300,000 micro, posted at unplug: the balance is -300,000.
  EXPECT_EQ(account.body["balance_micro"], -300000);
  EXPECT_EQ(r.get("/api/v1/accounts/owner", "tok-host").status, 403u);
  EXPECT_EQ(r.get("/api/v1/accounts/host/balance", "tok-owner").status, 403u);
  EXPECT_EQ(r.get("/api/v1/accounts/owner/bills/2024-03", "tok-other").status, 403u);
  // A session is the payer's and the credited host's; a stranger cannot tell it from none at all.
  auto as_payer = r.get("/api/v1/sessions/s1", "tok-owner");
  ASSERT_EQ(as_payer.status, 200u);
  EXPECT_EQ(as_payer.body["payer"], "owner");
  EXPECT_EQ(as_payer.body["pev"], vin1);
  EXPECT_EQ(as_payer.body["amount_micro"], 300000);
  EXPECT_TRUE(as_payer.body["credit_micro"].is_null());  // the host's
  // The host sees what charged at its premise and its credit, not who the guest is or paid.
  auto as_host = r.get("/api/v1/sessions/s1", "tok-host");
  ASSERT_EQ(as_host.status, 200u);
  EXPECT_EQ(as_host.body["wh"], 2000);
  EXPECT_TRUE(as_host.body["payer"].is_null());
  EXPECT_TRUE(as_host.body["pev"].is_null());
  EXPECT_TRUE(as_host.body["amount_micro"].is_null());
  EXPECT_EQ(as_host.body["credit_micro"], -400000);  // 2,000 Wh at 0.20/kWh
  auto host_list = r.get("/api/v1/accounts/host/sessions", "tok-host");
  ASSERT_EQ(host_list.body["sessions"].size(), 1u);
  EXPECT_TRUE(host_list.body["sessions"][0]["payer_account"].is_null());
  EXPECT_EQ(host_list.body["sessions"][0]["payer_kind"], "pev_account");
  const auto stranger = r.get("/api/v1/sessions/s1", "tok-other");
  const auto nothing = r.get("/api/v1/sessions/s-none", "tok-other");
  EXPECT_EQ(stranger.status, 403u);
  EXPECT_EQ(nothing.status, 403u);
  EXPECT_EQ(stranger.body, nothing.body);
  EXPECT_EQ(r.get("/api/v1/utilities/u/accounts", "tok-owner").status, 403u);
}

TEST(read_api, a_utility_token_reads_its_own_accounts_report_and_settlement_only) {
  scenario s;
  world(s);
  charge(s, "s1", 5, 1000);
  s.cmd("bill.run", "2024-04-02T00:00:00Z", R"("utility":"u","period":"2024-03")");
  s.run_ok();
  reader r(s);
  EXPECT_EQ(r.get("/api/v1/me", "tok-u").body["kind"], "utility");
  EXPECT_EQ(r.get("/api/v1/accounts/owner", "tok-u").status, 200u);
  EXPECT_EQ(r.get("/api/v1/sessions/s1", "tok-u").status, 200u);
  EXPECT_EQ(r.get("/api/v1/accounts/other", "tok-u").status, 403u);
  EXPECT_EQ(r.get("/api/v1/accounts/owner", "tok-v").status, 403u);
  EXPECT_EQ(r.get("/api/v1/sessions/s1", "tok-v").status, 403u);
  EXPECT_EQ(r.get("/api/v1/utilities/v/accounts", "tok-u").status, 403u);
  auto accounts = r.get("/api/v1/utilities/u/accounts", "tok-u");
  ASSERT_EQ(accounts.status, 200u);
  ASSERT_EQ(accounts.body["accounts"].size(), 2u);
  EXPECT_EQ(accounts.body["accounts"][0]["account"], "owner");  // newest first
  EXPECT_EQ(accounts.body["accounts"][1]["account"], "host");
  auto report = r.get("/api/v1/utilities/u/reports/2024-03", "tok-u");
  ASSERT_EQ(report.status, 200u);
  EXPECT_EQ(report.body["utility"]["utility"], "u");
  EXPECT_EQ(report.body["utility"]["status"], "issued");
  auto settlement = r.get("/api/v1/utilities/u/settlements/2024-03", "tok-u");
  ASSERT_EQ(settlement.status, 200u);
  EXPECT_EQ(settlement.body["entries"], json::array());  // no roaming
  EXPECT_EQ(r.get("/api/v1/utilities/u/reports/2024-13", "tok-u").status, 400u);
  EXPECT_EQ(r.get("/api/v1/utilities/u/settlements/March", "tok-u").body["message"], "the period must be YYYY-MM");
}

TEST(read_api, bills_and_usage_agree_with_the_engines_bill_by_local_day) {
  scenario s;
  world(s);
  charge(s, "s1", 5, 1000);  // 22:00 on March 4 in New York
  charge(s, "s2", 9, 2500);  // March 8
  s.cmd("bill.run", "2024-04-02T00:00:00Z", R"("utility":"u","period":"2024-03")");
  s.run_ok();
  reader r(s);
  const json bill = s.bill("owner", "2024-03");
  auto api_bill = r.get("/api/v1/accounts/owner/bills/2024-03", "tok-owner");
  ASSERT_EQ(api_bill.status, 200u);
  EXPECT_EQ(api_bill.body, bill);
  auto bills = r.get("/api/v1/accounts/owner/bills", "tok-owner");
  ASSERT_EQ(bills.body["bills"].size(), 1u);
  EXPECT_EQ(bills.body["bills"][0]["status"], "issued");
  EXPECT_EQ(bills.body["bills"][0]["total_micro"], bill["total_micro"]);
  auto usage = r.get("/api/v1/accounts/owner/usage?period=2024-03", "tok-owner");
  ASSERT_EQ(usage.status, 200u);
  ASSERT_EQ(usage.body["days"].size(), 31u);
  std::int64_t wh = 0, amount = 0;
  for (const auto& day : usage.body["days"]) {
    wh += day["wh"].get<std::int64_t>();
    amount += day["amount_micro"].get<std::int64_t>();
  }
  EXPECT_EQ(wh, wh_of(bill, "charge"));
  EXPECT_EQ(amount, amount_of(bill, "charge"));
  // 03:00Z on March 5 is 22:00 on March 4 in New York: 2,000 Wh at 0.15 = 300,000 micro that day.
  EXPECT_EQ(usage.body["days"][3]["date"], "2024-03-04");
  EXPECT_EQ(usage.body["days"][3]["wh"], 2000);
  EXPECT_EQ(usage.body["days"][3]["amount_micro"], 300000);
  EXPECT_EQ(usage.body["days"][4]["wh"], 0);
  EXPECT_EQ(usage.body["days"][7]["wh"], 5000);
  EXPECT_EQ(usage.body["windows"], json::array({"flat"}));
  EXPECT_EQ(r.get("/api/v1/accounts/owner/usage", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/api/v1/accounts/owner/usage?period=March", "tok-owner").status, 400u);
}

TEST(read_api, sessions_page_newest_first_and_a_live_session_shows_while_the_writer_goes_on) {
  scenario s(1);  // a group per line: each line durable on its own
  world(s);
  charge(s, "s1", 5, 1000);
  charge(s, "s2", 6, 1000);
  charge(s, "s3", 7, 1000);
  s.run_ok();
  reader r(s);
  auto first = r.get("/api/v1/accounts/owner/sessions?limit=2", "tok-owner");
  ASSERT_EQ(first.status, 200u);
  ASSERT_EQ(first.body["sessions"].size(), 2u);
  EXPECT_EQ(first.body["sessions"][0]["session"], "s3");
  EXPECT_EQ(first.body["sessions"][1]["session"], "s2");
  EXPECT_EQ(first.body["sessions"][0]["wh"], 2000);
  EXPECT_EQ(first.body["sessions"][0]["amount_micro"], 300000);
  EXPECT_EQ(first.body["sessions"][0]["payer_kind"], "pev_account");
  ASSERT_TRUE(first.body["next"].is_string());
  auto second = r.get("/api/v1/accounts/owner/sessions?limit=2&after=" + first.body["next"].get<std::string>(),
                      "tok-owner");
  ASSERT_EQ(second.body["sessions"].size(), 1u);
  EXPECT_EQ(second.body["sessions"][0]["session"], "s1");
  EXPECT_TRUE(second.body["next"].is_null());
  EXPECT_EQ(r.get("/api/v1/accounts/owner/sessions?limit=0", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/api/v1/accounts/owner/sessions?limit=201", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/api/v1/accounts/owner/sessions?after=x", "tok-owner").status, 400u);

  // The writer goes on: a session plugged and charging now.
  charge(s, "s4", 8, 700, /*open=*/true);
  s.run_ok();
  auto live = r.get("/api/v1/sessions/s4", "tok-owner");
  ASSERT_EQ(live.status, 200u);
  EXPECT_EQ(live.body["live"], true);
  EXPECT_EQ(live.body["state"], "plugged");
  EXPECT_EQ(live.body["wh"], 1400);
  EXPECT_EQ(r.get("/api/v1/accounts/owner/sessions?limit=1", "tok-owner").body["sessions"][0]["state"], "open");
  auto open = r.get("/api/v1/accounts/owner/sessions?state=open", "tok-owner");
  ASSERT_EQ(open.body["sessions"].size(), 1u);
  EXPECT_EQ(open.body["sessions"][0]["session"], "s4");
  EXPECT_EQ(r.get("/api/v1/accounts/owner/sessions?state=closed", "tok-owner").status, 400u);
  auto intervals = r.get("/api/v1/sessions/s4/intervals?limit=1", "tok-owner");
  ASSERT_EQ(intervals.body["intervals"].size(), 1u);
  EXPECT_EQ(intervals.body["intervals"][0]["start"], "2024-03-08T03:00:00Z");
  EXPECT_EQ(intervals.body["intervals"][0]["wh"], 700);
  auto rest = r.get("/api/v1/sessions/s4/intervals?after=" + intervals.body["next"].get<std::string>(), "tok-owner");
  ASSERT_EQ(rest.body["intervals"].size(), 1u);
  EXPECT_EQ(rest.body["intervals"][0]["start"], "2024-03-08T03:15:00Z");
  EXPECT_TRUE(rest.body["next"].is_null());
  s.cmd("session.unplug", "2024-03-08T05:00:00Z", R"("session":"s4")");
  s.run_ok();
  auto closed = r.get("/api/v1/sessions/s4", "tok-owner");
  EXPECT_EQ(closed.body["live"], false);
  EXPECT_EQ(closed.body["ended"], "2024-03-08T05:00:00Z");
  EXPECT_TRUE(r.get("/api/v1/accounts/owner/sessions?state=open", "tok-owner").body["sessions"].empty());
}

// A PEV of utility v roams to u's premise "home"; a card session at u's station "st" reads from its
// two EUMDs. Each utility sees its own customer's part; the station's operator sees the session at
// its station, not whose card it was.
TEST(read_api, a_utility_sees_its_own_customers_part_and_an_operator_the_sessions_at_its_station) {
  constexpr const char* vin2 = "JN1Z19E98N1134BRA";
  scenario s;
  world(s);
  s.cmd("tariff.publish", "2024-03-01T00:01:00Z", R"("utility":"v","tariff":"vres","kind":"flat","price":100000)")
      .cmd("tariff.publish", "2024-03-01T00:01:01Z", R"("utility":"v","tariff":"vev","kind":"flat","price":300000)")
      .cmd("premise.register", "2024-03-01T00:01:02Z",
           R"("utility":"v","premise":"vhome","account":"other","default_tariff":"vres")")
      .cmd("pev.enroll", "2024-03-01T00:01:03Z",
           R"("account":"other","pev":")" + std::string(vin2) + R"(","tariff":"vev","home_premise":"vhome")")
      .cmd("session.plug", "2024-03-05T03:00:00Z", R"("session":"r1","premise":"home")")
      .cmd("session.bind", "2024-03-05T03:00:10Z", R"("session":"r1","pev":")" + std::string(vin2) + "\"")
      .cmd("meter.interval", "2024-03-05T03:30:00Z",
           R"("device":"e_home","session":"r1","start":"2024-03-05T03:00:00Z","seconds":900,"wh":1000)")
      .cmd("session.unplug", "2024-03-05T04:00:00Z", R"("session":"r1")");
  s.cmd("account.open", "2024-03-01T00:02:00Z", R"("utility":"u","account":"op","customer":"Station Co")")
      .cmd("premise.register", "2024-03-01T00:02:01Z",
           R"("utility":"u","premise":"st","account":"op","default_tariff":"res","kind":"public")")
      .cmd("device.commission", "2024-03-01T00:02:02Z", R"("premise":"st","device":"st_e1","kind":"eumd")")
      .cmd("device.commission", "2024-03-01T00:02:03Z", R"("premise":"st","device":"st_e2","kind":"eumd")")
      .cmd("station.boot", "2024-03-01T00:02:04Z", R"("premise":"st")")
      .cmd("station.activate", "2024-03-01T00:02:05Z", R"("premise":"st")")
      .cmd("card.assign", "2024-03-01T00:02:06Z", R"("card":"card-1","account":"owner")")
      .cmd("access.grant", "2024-03-01T00:02:07Z", grant("tok-op", R"("account":"op")"))
      .cmd("session.start", "2024-03-06T10:00:00Z", R"("session":"p1","premise":"st","card":"card-1","online":true)");
  for (const char* eumd : {"st_e1", "st_e2"})
    s.cmd("meter.interval", "2024-03-06T10:20:00Z",
          R"("device":)" + q(eumd) + R"(,"session":"p1","start":"2024-03-06T10:00:00Z","seconds":900,"wh":500)");
  s.cmd("session.unplug", "2024-03-06T11:00:00Z", R"("session":"p1")");
  s.run_ok();
  reader r(s);
  auto as_u = r.get("/api/v1/sessions/r1", "tok-u");  // the host's utility
  ASSERT_EQ(as_u.status, 200u);
  EXPECT_TRUE(as_u.body["payer"].is_null());
  EXPECT_TRUE(as_u.body["amount_micro"].is_null());
  EXPECT_EQ(as_u.body["credit_micro"], -200000);  // 1,000 Wh at u's res, 0.20/kWh
  auto as_v = r.get("/api/v1/sessions/r1", "tok-v");  // the payer's utility
  ASSERT_EQ(as_v.status, 200u);
  EXPECT_EQ(as_v.body["payer"], "other");
  EXPECT_EQ(as_v.body["amount_micro"], 300000);  // 1,000 Wh at v's vev, 0.30/kWh
  EXPECT_TRUE(as_v.body["credit_micro"].is_null());
  EXPECT_EQ(r.get("/api/v1/sessions/r1", "tok-other").body["amount_micro"], 300000);

  auto as_operator = r.get("/api/v1/sessions/p1", "tok-op");
  ASSERT_EQ(as_operator.status, 200u);
  EXPECT_EQ(as_operator.body["wh"], 1000);
  EXPECT_TRUE(as_operator.body["card"].is_null());
  EXPECT_TRUE(as_operator.body["payer"].is_null());
  EXPECT_EQ(r.get("/api/v1/accounts/op/sessions", "tok-op").body["sessions"].size(), 1u);
  EXPECT_EQ(r.get("/api/v1/sessions/p1", "tok-owner").body["card"], "card-1");
  // Two readings of one start, one a page: neither is skipped.
  auto first = r.get("/api/v1/sessions/p1/intervals?limit=1", "tok-owner");
  ASSERT_EQ(first.body["intervals"].size(), 1u);
  auto second = r.get("/api/v1/sessions/p1/intervals?limit=1&after=" + first.body["next"].get<std::string>(),
                      "tok-owner");
  ASSERT_EQ(second.body["intervals"].size(), 1u);
  EXPECT_EQ(second.body["intervals"][0]["start"], first.body["intervals"][0]["start"]);
  EXPECT_TRUE(second.body["next"].is_null());
  EXPECT_EQ(r.get("/api/v1/sessions/p1/intervals?after=12", "tok-owner").status, 400u);
}

TEST(token_command, revokes_only_a_token_the_principal_holds_and_says_so_otherwise) {
  scenario s;
  world(s);
  s.run_ok();
  s.close();
  const std::string db = s.dir().file("db");
  const auto issued = testing::run_pevledger("token --db " + db + " --account owner --format json");
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  const std::string token = json::parse(issued.out)["token"];
  const auto wrong = testing::run_pevledger("token --db " + db + " --account host --revoke " + token);
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_NE(wrong.err.find("no access to account host"), std::string::npos) << wrong.err;
  const auto revoked = testing::run_pevledger("token --db " + db + " --account owner --revoke " + token + " --format json");
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(json::parse(revoked.out)["revoked"], true);
  EXPECT_EQ(testing::run_pevledger("token --db " + db + " --account owner --revoke " + token).exit_code, 2);
  EXPECT_EQ(testing::run_pevledger("token --db " + db).exit_code, 2);  // neither --account nor --utility
}

TEST(read_api, a_revoked_token_reads_nothing_and_another_stays) {
  scenario s;
  world(s);
  s.run_ok();
  reader r(s);
  ASSERT_EQ(r.get("/api/v1/me", "tok-owner").status, 200u);
  s.cmd("access.revoke", "2024-03-03T00:00:00Z", grant("tok-owner", R"("account":"owner")"));
  s.cmd("access.revoke", "2024-03-03T00:00:00Z", grant("tok-host", R"("account":"owner")"));  // not owner's: stays
  s.run_ok();
  EXPECT_EQ(r.get("/api/v1/me", "tok-owner").status, 401u);
  EXPECT_EQ(r.get("/api/v1/me", "tok-host").status, 200u);
}

TEST(read_api, bad_requests_get_a_json_error) {
  scenario s;
  world(s);
  s.run_ok();
  reader r(s);
  EXPECT_EQ(r.get("/api/v1/me", "tok-owner", "POST").status, 405u);
  EXPECT_EQ(r.get("/api/v1/nothing/here", "tok-owner").status, 404u);
  EXPECT_EQ(r.get("/api/v2/me", "tok-owner").status, 404u);
  EXPECT_EQ(r.get("/api/v1/accounts/own%zzer", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/api/v1/accounts/own%00er", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/api/v1/accounts/own%", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/api/v1/accounts/%6Fwner", "tok-owner").status, 200u);  // %6F is 'o'
  EXPECT_EQ(r.get("/api/v1/accounts/owner/bills/2024-3", "tok-owner").status, 400u);
  EXPECT_EQ(r.get("/" + std::string(3000, 'a'), "tok-owner").status, 414u);
  const auto page = r.get("/");
  EXPECT_EQ(page.status, 200u);
  EXPECT_NE(page.body.get<std::string>().find("<html"), std::string::npos);
}

std::vector<json> notifications(scenario& s, std::uint64_t after) {
  std::ostringstream out;
  portal::outbox_options options;
  options.after = after;
  const status written = portal::write_notifications(s.dir().file("db"), out, options);
  if (!written.is_ok()) throw std::runtime_error(written.describe());
  std::vector<json> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

TEST(notifications, one_per_closed_session_with_a_stable_id_from_where_the_mailer_left_off) {
  scenario s;
  world(s);
  charge(s, "s1", 5, 1000);
  charge(s, "s2", 6, 400, /*open=*/true);
  // A session never bound: the main meter pays, and the host hears of it.
  s.cmd("session.plug", "2024-03-07T03:00:00Z", R"("session":"s3","premise":"home")")
      .cmd("session.unplug", "2024-03-07T05:00:00Z", R"("session":"s3")");
  s.run_ok();
  auto first = notifications(s, 0);
  ASSERT_EQ(first.size(), 2u);  // s2 is still open
  EXPECT_EQ(first[0]["id"], "session-summary/s1");
  EXPECT_EQ(first[0]["session"], "s1");
  EXPECT_EQ(first[0]["began"], "2024-03-05T03:00:00Z");
  EXPECT_EQ(first[0]["ended"], "2024-03-05T04:00:00Z");
  EXPECT_EQ(first[0]["wh"], 2000);
  EXPECT_EQ(first[0]["payer"], "pev_account");
  EXPECT_EQ(first[0]["payer_account"], "owner");
  EXPECT_EQ(first[0]["pev"], vin1);
  EXPECT_EQ(first[0]["amount_micro"], 300000);        // 2,000 Wh at 0.15/kWh
  EXPECT_EQ(first[0]["credit_account"], "host");
  EXPECT_EQ(first[0]["credit_micro"], -400000);       // 2,000 Wh at 0.20/kWh, credited
  EXPECT_EQ(first[1]["session"], "s3");
  EXPECT_EQ(first[1]["payer"], "main_meter");
  EXPECT_EQ(first[1]["reason"], "bind_timeout");
  EXPECT_TRUE(first[1]["payer_account"].is_null());
  EXPECT_EQ(first[1]["premise_account"], "host");
  EXPECT_EQ(first[1]["amount_micro"], 0);
  EXPECT_LT(first[0]["seq"].get<std::uint64_t>(), first[1]["seq"].get<std::uint64_t>());

  const std::uint64_t handled = first[1]["seq"];
  EXPECT_TRUE(notifications(s, handled).empty());
  s.cmd("session.unplug", "2024-03-06T09:00:00Z", R"("session":"s2")");
  s.run_ok();
  auto next = notifications(s, handled);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0]["id"], "session-summary/s2");
  EXPECT_EQ(next[0]["wh"], 800);
  // Asked again from the start, the same notifications come with the same ids: at least once.
  auto again = notifications(s, 0);
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0], first[0]);
  EXPECT_EQ(again[1], first[1]);
}

TEST(notifications, the_command_line_follows_the_writer_until_stopped) {
  scenario s;
  world(s);
  charge(s, "s1", 5, 1000);
  s.run_ok();
  const auto listed = testing::run_pevledger("notifications --db " + s.dir().file("db"));
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(json::parse(listed.out)["session"], "s1");
  // The follower writes to a file: this thread reads the file, never the follower's stream.
  const std::string outbox = s.dir().file("outbox.jsonl");
  std::ofstream out(outbox);
  std::atomic<bool> stop{false};
  portal::outbox_options options;
  options.follow = true;
  options.poll_interval = std::chrono::milliseconds(20);
  options.stop = [&] { return stop.load(); };
  status followed = status::ok();
  std::thread follower([&] { followed = portal::write_notifications(s.dir().file("db"), out, options); });
  charge(s, "s2", 6, 500);
  s.run_ok();
  std::string seen;
  for (int i = 0; i < 500 && seen.find("session-summary/s2") == std::string::npos; ++i) {  // at most 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen = testing::detail::slurp(outbox);
  }
  stop.store(true);
  follower.join();
  EXPECT_TRUE(followed.is_ok()) << followed.describe();
  EXPECT_NE(seen.find("session-summary/s1"), std::string::npos);
  EXPECT_NE(seen.find("session-summary/s2"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Over HTTP, with a real client.

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class served {
 public:
  served(portal::api& api, portal::http_options options) {
    auto s = portal::http_server::listen(api, options);
    if (!s) throw std::runtime_error(s.error().describe());
    server_ = std::move(s.value());
    thread_ = std::thread([this] { result_ = server_->run([this] { return stop_.load(); }); });
  }
  ~served() {
    stop_.store(true);
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return server_->port(); }
  [[nodiscard]] const portal::http_stats& stats() const { return server_->stats(); }

 private:
  std::unique_ptr<portal::http_server> server_;
  std::atomic<bool> stop_{false};
  status result_ = status::ok();
  std::thread thread_;
};

tcp::socket connect_to(asio::io_context& io, std::uint16_t port) {
  tcp::socket socket(io);
  socket.connect({asio::ip::make_address_v4("127.0.0.1"), port});
  return socket;
}

http::response<http::string_body> exchange(tcp::socket& socket, const std::string& target, const std::string& token,
                                           bool keep_alive = false) {
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  req.keep_alive(keep_alive);
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return res;
}

std::string raw_exchange(tcp::socket& socket, const std::string& bytes) {
  asio::write(socket, asio::buffer(bytes));
  std::string reply;
  beast::error_code ec;
  char chunk[4096];
  for (int i = 0; i < 64; ++i) {  // until the server closes
    const std::size_t n = socket.read_some(asio::buffer(chunk), ec);
    reply.append(chunk, n);
    if (ec) break;
  }
  return reply;
}

TEST(http, answers_with_status_headers_and_json_over_a_kept_connection) {
  scenario s;
  world(s);
  s.run_ok();
  reader r(s);
  served server(r.api(), {});
  asio::io_context io;
  auto socket = connect_to(io, server.port());
  auto me = exchange(socket, "/api/v1/me", "tok-owner", true);
  EXPECT_EQ(me.result_int(), 200u);
  EXPECT_EQ(me[http::field::content_type], "application/json");
  EXPECT_EQ(me[http::field::cache_control], "no-store");
  EXPECT_EQ(json::parse(me.body())["account"], "owner");
  auto denied = exchange(socket, "/api/v1/accounts/owner", "", true);  // the same connection
  EXPECT_EQ(denied.result_int(), 401u);
  EXPECT_EQ(denied[http::field::www_authenticate], "Bearer realm=\"pevledger\"");
  auto forbidden = exchange(socket, "/api/v1/accounts/host", "tok-owner");
  EXPECT_EQ(forbidden.result_int(), 403u);
  EXPECT_EQ(json::parse(forbidden.body())["error"], "forbidden");
  auto page_socket = connect_to(io, server.port());
  auto page = exchange(page_socket, "/", "");
  EXPECT_EQ(page.result_int(), 200u);
  EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_NE(page["Content-Security-Policy"].find("default-src 'none'"), beast::string_view::npos);
}

TEST(http, malformed_requests_and_bodies_get_an_error_and_the_connection_closes) {
  scenario s;
  world(s);
  s.run_ok();
  reader r(s);
  served server(r.api(), {});
  asio::io_context io;
  auto garbage = connect_to(io, server.port());
  EXPECT_EQ(raw_exchange(garbage, "GARBAGE\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  auto body = connect_to(io, server.port());
  EXPECT_EQ(raw_exchange(body, "GET /api/v1/me HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").rfind("HTTP/1.1 413", 0),
            0u);
  auto long_head = connect_to(io, server.port());
  EXPECT_EQ(raw_exchange(long_head, "GET / HTTP/1.1\r\nX-Filler: " + std::string(10000, 'x') + "\r\n\r\n")
                .rfind("HTTP/1.1 431", 0),
            0u);
  // The server is still there.
  auto after = connect_to(io, server.port());
  EXPECT_EQ(exchange(after, "/api/v1/me", "tok-owner").result_int(), 200u);
}

TEST(http, a_connection_over_the_bound_is_answered_503_and_the_first_still_works) {
  scenario s;
  world(s);
  s.run_ok();
  reader r(s);
  portal::http_options options;
  options.connections_max = 1;
  served server(r.api(), options);
  asio::io_context io;
  auto first = connect_to(io, server.port());
  EXPECT_EQ(exchange(first, "/api/v1/me", "tok-owner", true).result_int(), 200u);  // accepted and open
  auto second = connect_to(io, server.port());
  const std::string reply = raw_exchange(second, "GET /api/v1/me HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0u) << reply;
  EXPECT_EQ(json::parse(reply.substr(reply.find("\r\n\r\n") + 4))["error"], "busy");  // whole: its length is right
  EXPECT_EQ(exchange(first, "/api/v1/me", "tok-owner").result_int(), 200u);
  EXPECT_GE(server.stats().connections_refused, 1u);
}

}  // namespace
}  // namespace pevledger
