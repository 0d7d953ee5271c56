#include "actors/projections.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "actors/settlement.hpp"
#include "base/money.hpp"

namespace pevledger::actors {
namespace {

using ojson = nlohmann::ordered_json;
namespace fb = pevledger::schema;

std::string period_text(std::int32_t period) { return month_period::from_index(period).to_string(); }

const char* line_kind_name(fb::LineKind k) { return fb::EnumNameLineKind(k); }

const char* payer_name(fb::Payer p) { return fb::EnumNamePayer(p); }

}  // namespace

std::string balance_key(const std::string& account) { return "balance/" + account; }
std::string bill_key(const std::string& account, std::int32_t period) {
  return "bill/" + account + "/" + period_text(period);
}
std::string settlement_key(std::int32_t period) { return "settlement/" + period_text(period); }
std::string session_key(const std::string& session) { return "session/" + session; }

std::string balance_json(const ledger_state& state, const std::string& account) {
  const account_state& a = state.accounts.at(account);
  ojson j;
  j["account"] = account;
  j["utility"] = a.utility;
  j["kind"] = fb::EnumNameAccountKind(a.kind);
  j["balance_micro"] = a.balance_micro();
  j["reserved_micro"] = a.reserved_micro();
  j["available_micro"] = a.available_micro();
  return j.dump();
}

std::string bill_json(const ledger_state& state, const std::string& account, std::int32_t period) {
  const account_state& a = state.accounts.at(account);
  const bool issued = a.bills.count(period) != 0;
  ojson j;
  j["account"] = account;
  j["utility"] = a.utility;
  j["period"] = period_text(period);
  j["status"] = issued ? "issued" : "preview";
  ojson lines = ojson::array();
  std::int64_t total = 0;
  std::int64_t wh = 0;
  if (auto it = a.lines.find(period); it != a.lines.end()) {
    for (const auto& [key, t] : it->second) {
      ojson line;
      line["session"] = key.session;
      line["kind"] = line_kind_name(key.kind);
      line["tariff"] = key.kind == fb::LineKind::main_meter ? "" : key.tariff;
      line["window"] = key.window;
      line["wh"] = t.wh;
      line["amount_micro"] = t.amount_micro;
      if (key.kind == fb::LineKind::adjustment) {
        line["adjusts"] = line_kind_name(key.adjusts);
        line["original_period"] = period_text(key.original_period);
      }
      total += t.amount_micro;
      wh += t.wh;
      lines.push_back(std::move(line));
    }
  }
  j["lines"] = std::move(lines);
  j["wh"] = wh;
  j["total_micro"] = total;
  j["total_cents"] = total_cents(amount_micro(total));
  if (issued) PEV_ASSERT(a.bills.at(period).total_micro == total);  // an issued bill never changes
  return j.dump();
}

std::string settlement_json(const ledger_state& state, std::int32_t period) {
  ojson entries = ojson::array();
  auto add = [&](const settlement_entry& e) {
    ojson x;
    x["home_utility"] = e.home_utility;
    x["roaming_utility"] = e.roaming_utility;
    x["wh"] = e.wh;
    x["amount_micro"] = e.amount_micro;
    x["net"] = e.net;
    entries.push_back(std::move(x));
  };
  const clearinghouse_state& ch = state.clearinghouse;
  if (auto it = ch.statements.find(period); it != ch.statements.end()) {
    for (const auto& e : it->second) add(e);
  } else if (auto credits = ch.roaming_credits.find(period); credits != ch.roaming_credits.end()) {
    for (const auto& e : statement_entries(credits->second)) add(e);  // the statement a run would issue now
  }
  return entries.dump();
}

std::string session_json(const ledger_state& state, const std::string& session) {
  const session_state& ss = state.sessions.at(session);
  ojson j;
  j["session"] = session;
  j["premise"] = ss.premise;
  j["utility"] = ss.utility;
  j["state"] = ss.unplugged ? "unplugged" : (ss.is_public ? "started" : "plugged");
  if (ss.decision) {
    const session_decision& d = *ss.decision;
    j["payer"] = d.payer == fb::Payer::main_meter ? std::string("main_meter") : d.payer_account;
    j["payer_kind"] = payer_name(d.payer);
    j["reason"] = d.reason == fb::FallbackReason::none ? ojson(nullptr) : ojson(fb::EnumNameFallbackReason(d.reason));
    j["tariff"] = d.tariff;
    j["pev"] = d.pev.empty() ? ojson(nullptr) : ojson(d.pev);
    j["roaming"] = d.roaming;
  } else {
    j["payer"] = nullptr;
    j["payer_kind"] = nullptr;
    j["reason"] = nullptr;
    j["tariff"] = nullptr;
    j["pev"] = ss.bound ? ojson(ss.bound_pev) : ojson(nullptr);
    j["roaming"] = false;
  }
  if (ss.is_public) {
    j["card"] = ss.card;
    j["online"] = ss.online;
  }
  // How the PEV identified itself: "full" authentication on a first bind at this premise, "rebind"
  // with the credentials its pev.setup here issued; null when nothing bound.
  j["authentication"] = ss.bound ? ojson(ss.rebind ? "rebind" : "full") : ojson(nullptr);
  j["eumd"] = ss.eumd.empty() ? ojson(nullptr) : ojson(ss.eumd);
  j["wh"] = ss.eumd_wh;
  j["intervals"] = ss.readings.size();
  j["duplicates"] = ss.duplicates;
  // Gaps: consecutive readings with registers that leave time uncovered between them.
  ojson gaps = ojson::array();
  const interval_reading* prev = nullptr;
  for (const auto& [start, r] : ss.readings) {
    if (prev != nullptr && prev->start.value() + prev->content.seconds < start) {
      ojson g;
      g["from"] = format_timestamp(unix_seconds(prev->start.value() + prev->content.seconds));
      g["to"] = format_timestamp(r.start);
      if (prev->content.register_wh && r.content.register_wh)
        g["wh"] = *r.content.register_wh - r.content.wh - *prev->content.register_wh;
      else
        g["wh"] = nullptr;
      gaps.push_back(std::move(g));
    }
    prev = &r;
  }
  j["gaps"] = gaps.size();
  j["gap_list"] = std::move(gaps);
  ojson anomalies = ojson::array();
  for (const anomaly_note& a : ss.anomalies) {
    ojson x;
    x["kind"] = fb::EnumNameAnomalyKind(a.kind);
    if (a.kind != fb::AnomalyKind::reconciliation) x["interval_start"] = format_timestamp(a.interval_start);
    x["expected_wh"] = a.expected_wh;
    x["observed_wh"] = a.observed_wh;
    x["detail"] = a.detail;
    anomalies.push_back(std::move(x));
  }
  j["anomalies"] = anomalies.size();
  j["anomaly_list"] = std::move(anomalies);
  j["pev_total_wh"] = ss.pev_total_wh ? ojson(*ss.pev_total_wh) : ojson(nullptr);
  ojson grants = ojson::array();
  for (const energy_grant& g : ss.grants) {
    ojson x;
    x["wh"] = g.wh;
    x["depart"] = format_timestamp(g.depart);
    x["start"] = format_timestamp(g.start);
    x["price_micro_per_kwh"] = g.price ? ojson(*g.price) : ojson(nullptr);
    grants.push_back(std::move(x));
  }
  j["grants"] = std::move(grants);
  return j.dump();
}

std::string period_report_json(const ledger_state& state, std::int32_t period,
                               const std::function<const account_state*(const std::string&)>& account) {
  std::vector<std::string> utility_ids;
  for (const auto& [id, u] : state.utilities) utility_ids.push_back(id);
  std::sort(utility_ids.begin(), utility_ids.end());
  ojson utilities = ojson::array();
  for (const std::string& uid : utility_ids) {
    const utility_state& u = state.utilities.at(uid);
    std::map<std::string, std::int64_t> amount_by_kind, wh_by_kind;
    std::int64_t total = 0;
    std::size_t accounts_with_lines = 0;
    for (const std::string& aid : u.accounts) {
      const account_state* found = account(aid);
      if (found == nullptr) return {};
      const account_state& a = *found;
      auto it = a.lines.find(period);
      if (it == a.lines.end() || it->second.empty()) continue;
      ++accounts_with_lines;
      for (const auto& [key, t] : it->second) {
        amount_by_kind[line_kind_name(key.kind)] += t.amount_micro;
        wh_by_kind[line_kind_name(key.kind)] += t.wh;
        total += t.amount_micro;
      }
    }
    ojson x;
    x["utility"] = uid;
    x["status"] = u.billed_periods.count(period) != 0 ? "issued" : "preview";
    x["accounts"] = u.accounts.size();
    x["accounts_with_lines"] = accounts_with_lines;
    ojson kinds = ojson::object();
    for (const auto& [kind, amount] : amount_by_kind) kinds[kind] = {{"wh", wh_by_kind[kind]}, {"amount_micro", amount}};
    x["kinds"] = std::move(kinds);
    x["total_micro"] = total;
    utilities.push_back(std::move(x));
  }
  ojson j;
  j["period"] = period_text(period);
  j["utilities"] = std::move(utilities);
  j["settled"] = state.clearinghouse.settled_periods.count(period) != 0;
  j["settlement"] = ojson::parse(settlement_json(state, period));
  return j.dump();
}

std::vector<std::pair<std::string, std::string>> all_projections(const ledger_state& state) {
  std::vector<std::pair<std::string, std::string>> out;
  state.accounts.for_each([&](const std::string& id, const account_state& a) {
    out.emplace_back(balance_key(id), balance_json(state, id));
    for (const auto& [period, bill] : a.bills) out.emplace_back(bill_key(id, period), bill_json(state, id, period));
  });
  for (const auto& [period, entries] : state.clearinghouse.statements)
    out.emplace_back(settlement_key(period), settlement_json(state, period));
  state.sessions.for_each(
      [&](const std::string& id, const session_state&) { out.emplace_back(session_key(id), session_json(state, id)); });
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace pevledger::actors
