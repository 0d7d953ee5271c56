#include "cli/text_output.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

namespace pevledger::cli {
namespace {

using json = nlohmann::json;

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "-";
  return v.dump();
}

}  // namespace

std::string micro_text(long long micro) {
  const bool negative = micro < 0;
  const unsigned long long magnitude = negative ? 0ULL - static_cast<unsigned long long>(micro)
                                                : static_cast<unsigned long long>(micro);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%llu.%06llu", negative ? "-" : "", magnitude / 1000000, magnitude % 1000000);
  return buf;
}

std::string bill_text(const std::string& text) {
  const json b = json::parse(text);
  std::string out = "Bill " + str(b["account"]) + " (" + str(b["utility"]) + ") " + str(b["period"]) + " [" +
                    str(b["status"]) + "]\n";
  out += pad("session", 22) + pad("kind", 14) + pad("tariff", 12) + pad("window", 16) + pad("wh", 10) + "amount\n";
  for (const json& l : b["lines"]) {
    std::string kind = str(l["kind"]);
    if (l.contains("adjusts")) kind += "(" + str(l["adjusts"]) + " " + str(l["original_period"]) + ")";
    out += pad(str(l["session"]), 22) + pad(kind, 14) + pad(str(l["tariff"]), 12) + pad(str(l["window"]), 16) +
           pad(str(l["wh"]), 10) + micro_text(l["amount_micro"].get<long long>()) + "\n";
  }
  out += "total " + micro_text(b["total_micro"].get<long long>()) + " (" + str(b["total_cents"]) + " cents)";
  return out;
}

std::string balance_text(const std::string& text) {
  const json b = json::parse(text);
  return "Account " + str(b["account"]) + " (" + str(b["utility"]) + ", " + str(b["kind"]) + "): balance " +
         micro_text(b["balance_micro"].get<long long>()) + ", reserved " +
         micro_text(b["reserved_micro"].get<long long>());
}

std::string settlement_text(const std::string& text) {
  const json entries = json::parse(text);
  std::string out = pad("home", 16) + pad("roaming", 16) + pad("wh", 12) + pad("owed", 16) + "net\n";
  for (const json& e : entries)
    out += pad(str(e["home_utility"]), 16) + pad(str(e["roaming_utility"]), 16) + pad(str(e["wh"]), 12) +
           pad(micro_text(e["amount_micro"].get<long long>()), 16) + (e["net"].get<bool>() ? "net" : "gross") + "\n";
  if (entries.empty()) out += "(no roaming energy in this period)\n";
  out.pop_back();
  return out;
}

std::string session_text(const std::string& text) {
  const json s = json::parse(text);
  return "Session " + str(s["session"]) + " at " + str(s["premise"]) + ": " + str(s["state"]) + ", payer " +
         str(s["payer"]) + (s["reason"].is_null() ? "" : " (" + str(s["reason"]) + ")") + ", " + str(s["wh"]) +
         " Wh in " + str(s["intervals"]) + " intervals, " + str(s["duplicates"]) + " duplicates, " +
         str(s["gaps"]) + " gaps, " + str(s["anomalies"]) + " anomalies";
}

std::string report_text(const std::string& text) {
  const json r = json::parse(text);
  std::string out = "Period " + str(r["period"]) + "\n";
  out += pad("utility", 10) + pad("bills", 9) + pad("accounts", 10) + pad("kind", 15) + pad("wh", 12) + "amount\n";
  for (const json& u : r["utilities"]) {
    bool first = true;
    for (auto it = u["kinds"].begin(); it != u["kinds"].end(); ++it) {
      out += pad(first ? str(u["utility"]) : "", 10) + pad(first ? str(u["status"]) : "", 9) +
             pad(first ? str(u["accounts_with_lines"]) + "/" + str(u["accounts"]) : "", 10) + pad(it.key(), 15) +
             pad(str(it.value()["wh"]), 12) + micro_text(it.value()["amount_micro"].get<long long>()) + "\n";
      first = false;
    }
    if (first) out += pad(str(u["utility"]), 10) + pad(str(u["status"]), 9) + "(no lines)\n";
    out += pad("", 44) + pad("total", 12) + micro_text(u["total_micro"].get<long long>()) + "\n";
  }
  out += std::string("\nSettlement ") + (r["settled"].get<bool>() ? "(issued)" : "(preview)") + "\n";
  out += settlement_text(r["settlement"].dump());
  return out;
}

}  // namespace pevledger::cli
