#pragma once
// Roaming settlement (SPEC section 4): from what each home utility owes each roaming utility, the
// statement's gross entries (one per ordered pair) and net entries (one per unordered pair). Used by
// settlement.run and by the preview of a period not yet settled, so both show the same entries.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/ledger_state.hpp"

namespace pevledger::core {

// Net entries are oriented so that the amount is not negative (or, at zero, the Wh); an entry whose
// amount and Wh are both zero is left out.
[[nodiscard]] std::vector<settlement_entry> statement_entries(
    const std::map<std::pair<std::string, std::string>, settlement_pair_total>& gross);

}  // namespace pevledger::core
