#include "core/settlement.hpp"

#include <algorithm>
#include <set>

namespace pevledger::core {

std::vector<settlement_entry> statement_entries(
    const std::map<std::pair<std::string, std::string>, settlement_pair_total>& gross) {
  std::vector<settlement_entry> out;
  for (const auto& [pair, t] : gross) out.push_back({pair.first, pair.second, t.wh, t.amount_micro, false});
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& [pair, t] : gross) {
    const auto unordered = std::minmax(pair.first, pair.second);
    if (!seen.insert({unordered.first, unordered.second}).second) continue;
    const std::string& a = unordered.first;
    const std::string& b = unordered.second;
    settlement_pair_total ab, ba;
    if (auto it = gross.find({a, b}); it != gross.end()) ab = it->second;
    if (auto it = gross.find({b, a}); it != gross.end()) ba = it->second;
    const std::int64_t amount = ab.amount_micro - ba.amount_micro;
    const std::int64_t wh = ab.wh - ba.wh;
    if (amount == 0 && wh == 0) continue;
    const bool flip = amount < 0 || (amount == 0 && wh < 0);
    if (flip) out.push_back({b, a, -wh, -amount, true});
    else out.push_back({a, b, wh, amount, true});
  }
  return out;
}

}  // namespace pevledger::core
