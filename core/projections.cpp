#include "core/projections.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/settlement.hpp"
#include "core/stream_name.hpp"
#include "base/json_writer.hpp"
#include "base/money.hpp"

namespace pevledger::core {
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
  json_writer j;
  j.begin_object();
  j.key("account").string(account);
  j.key("utility").string(a.utility);
  j.key("kind").string(fb::EnumNameAccountKind(a.kind));
  j.key("balance_micro").number(a.balance_micro());
  j.key("reserved_micro").number(a.reserved_micro());
  j.key("available_micro").number(a.available_micro());
  return j.end_object().take();
}

std::string bill_json(const ledger_state& state, const std::string& account, std::int32_t period) {
  const account_state& a = state.accounts.at(account);
  const bool issued = a.bills.count(period) != 0;
  json_writer j(1024);
  j.begin_object();
  j.key("account").string(account);
  j.key("utility").string(a.utility);
  j.key("period").string(period_text(period));
  j.key("status").string(issued ? "issued" : "preview");
  j.key("lines").begin_array();
  std::int64_t total = 0;
  std::int64_t wh = 0;
  if (auto it = a.lines.find(period); it != a.lines.end()) {
    for (const auto& [key, t] : it->second) {
      j.begin_object();
      j.key("session").string(key.session);
      j.key("kind").string(line_kind_name(key.kind));
      j.key("tariff").string(key.kind == fb::LineKind::main_meter ? "" : key.tariff);
      j.key("window").string(key.window);
      j.key("wh").number(t.wh);
      j.key("amount_micro").number(t.amount_micro);
      if (key.kind == fb::LineKind::adjustment) {
        j.key("adjusts").string(line_kind_name(key.adjusts));
        j.key("original_period").string(period_text(key.original_period));
      }
      j.end_object();
      total += t.amount_micro;
      wh += t.wh;
    }
  }
  j.end_array();
  j.key("wh").number(wh);
  j.key("total_micro").number(total);
  j.key("total_cents").number(total_cents(amount_micro(total)));
  if (issued) PEV_ASSERT(a.bills.at(period).total_micro == total);  // an issued bill never changes
  return j.end_object().take();
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
  json_writer j(768);  // a report without gaps or anomalies is about 500 bytes
  j.begin_object();
  j.key("session").string(session);
  j.key("premise").string(ss.premise);
  j.key("utility").string(ss.utility);
  j.key("state").string(ss.unplugged ? "unplugged" : (ss.is_public ? "started" : "plugged"));
  if (ss.decision) {
    const session_decision& d = *ss.decision;
    j.key("payer").string(d.payer == fb::Payer::main_meter ? std::string_view("main_meter") : d.payer_account);
    j.key("payer_kind").string(payer_name(d.payer));
    j.key("reason");
    d.reason == fb::FallbackReason::none ? j.null() : j.string(fb::EnumNameFallbackReason(d.reason));
    j.key("tariff").string(d.tariff);
    j.key("pev");
    d.pev.empty() ? j.null() : j.string(d.pev);
    j.key("roaming").boolean(d.roaming);
  } else {
    j.key("payer").null();
    j.key("payer_kind").null();
    j.key("reason").null();
    j.key("tariff").null();
    j.key("pev");
    ss.bound ? j.string(ss.bound_pev) : j.null();
    j.key("roaming").boolean(false);
  }
  if (ss.is_public) {
    // Started by a card, or by SMS: the other is null.
    j.key("card");
    ss.phone.empty() ? j.string(ss.card) : j.null();
    j.key("phone");
    ss.phone.empty() ? j.null() : j.string(ss.phone);
    j.key("online").boolean(ss.online);
  }
  // How the PEV identified itself: "full" authentication on a first bind at this premise, "rebind"
  // with the credentials its pev.setup here issued; null when nothing bound.
  j.key("authentication");
  ss.bound ? j.string(ss.rebind ? "rebind" : "full") : j.null();
  j.key("eumd");
  ss.eumd.empty() ? j.null() : j.string(ss.eumd);
  j.key("wh").number(ss.eumd_wh);
  j.key("intervals").number_unsigned(ss.readings.size());
  j.key("duplicates").number_unsigned(ss.duplicates);
  // Gaps: consecutive readings with registers that leave time uncovered between them.
  std::vector<std::pair<const session_reading*, const session_reading*>> gaps;  // (before, after)
  const session_reading* prev = nullptr;
  for (const session_reading& r : ss.readings) {
    if (prev != nullptr && prev->start + prev->seconds < r.start) gaps.emplace_back(prev, &r);
    prev = &r;
  }
  j.key("gaps").number_unsigned(gaps.size());
  j.key("gap_list").begin_array();
  for (const auto& [before, after] : gaps) {
    j.begin_object();
    j.key("from").string(format_timestamp(unix_seconds(before->start + before->seconds)));
    j.key("to").string(format_timestamp(unix_seconds(after->start)));
    j.key("wh");
    if (before->register_wh && after->register_wh)
      j.number(*after->register_wh - after->wh - *before->register_wh);
    else
      j.null();
    j.end_object();
  }
  j.end_array();
  // Readings of another length than the EUMD's interval are flagged apart from SPEC section 5's
  // anomalies, and listed only when there are some.
  const auto is_length_flag = [](const anomaly_note& a) { return a.kind == fb::AnomalyKind::interval_length; };
  const auto length_flags = static_cast<std::size_t>(std::count_if(ss.anomalies.begin(), ss.anomalies.end(), is_length_flag));
  j.key("anomalies").number_unsigned(ss.anomalies.size() - length_flags);
  j.key("anomaly_list").begin_array();
  for (const anomaly_note& a : ss.anomalies) {
    if (is_length_flag(a)) continue;
    j.begin_object();
    j.key("kind").string(fb::EnumNameAnomalyKind(a.kind));
    if (a.kind != fb::AnomalyKind::reconciliation) j.key("interval_start").string(format_timestamp(a.interval_start));
    j.key("expected_wh").number(a.expected_wh);
    j.key("observed_wh").number(a.observed_wh);
    j.key("detail").string(a.detail);
    j.end_object();
  }
  j.end_array();
  if (length_flags > 0) {
    j.key("interval_length_flags").begin_array();
    for (const anomaly_note& a : ss.anomalies) {
      if (!is_length_flag(a)) continue;
      j.begin_object();
      j.key("interval_start").string(format_timestamp(a.interval_start));
      j.key("detail").string(a.detail);
      j.end_object();
    }
    j.end_array();
  }
  j.key("pev_total_wh");
  ss.pev_total_wh ? j.number(*ss.pev_total_wh) : j.null();
  j.key("grants").begin_array();
  for (const energy_grant& g : ss.grants) {
    j.begin_object();
    j.key("wh").number(g.wh);
    j.key("depart").string(format_timestamp(g.depart));
    j.key("start").string(format_timestamp(g.start));
    j.key("price_micro_per_kwh");
    g.price ? j.number(*g.price) : j.null();
    j.end_object();
  }
  j.end_array();
  return j.end_object().take();
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

std::string render_projection(const ledger_state& st, const std::string& stream, const std::string& what) {
  const stream_name parts = stream_name::split(stream);
  const std::string_view kind = parts.kind;
  const std::string id(parts.id);
  const auto cut = what.find('/');
  const std::string name = what.substr(0, cut);
  std::optional<month_period> period;
  if (cut != std::string::npos)
    if (auto p = parse_month(what.substr(cut + 1))) period = p.value();
  if (kind == stream_kind::account && st.accounts.resident_entities().count(id) != 0) {
    if (name == "balance") return balance_json(st, id);
    if (name == "bill" && period) return bill_json(st, id, period->index());
  }
  if (kind == stream_kind::session && name == "session" && st.sessions.resident_entities().count(id) != 0)
    return session_json(st, id);
  if (kind == stream_kind::clearinghouse && id.empty() && name == "settlement" && period) return settlement_json(st, period->index());
  return {};
}

}  // namespace pevledger::core
