#pragma once
// Projections: the JSON documents of SPEC section 7 (bill, balance, settlement, session report),
// rendered from the ledger state. Pure functions: an entity's actor renders them on query, and
// replay renders them again from the log alone to compare.

#include <functional>
#include <string>
#include <vector>

#include "core/ledger_state.hpp"

namespace pevledger::core {

// Keys of the projections: replay's names for them, and where databases before log-6 stored them.
[[nodiscard]] std::string balance_key(const std::string& account);
[[nodiscard]] std::string bill_key(const std::string& account, std::int32_t period);
[[nodiscard]] std::string settlement_key(std::int32_t period);
[[nodiscard]] std::string session_key(const std::string& session);

// Each expects the entity to exist (callers check and refuse unknown ones).
[[nodiscard]] std::string balance_json(const ledger_state& state, const std::string& account);
// The issued bill, or a preview of the lines booked so far when the period is not billed.
[[nodiscard]] std::string bill_json(const ledger_state& state, const std::string& account, std::int32_t period);
// The issued statement, or a preview of the credits counted in the period so far.
[[nodiscard]] std::string settlement_json(const ledger_state& state, std::int32_t period);
// The projection `what` ("balance", "bill/YYYY-MM", "session", "settlement/YYYY-MM") of the entity
// of `stream` held in `state` (an entity actor's, or one recovered for a query); "" when `state`
// does not hold that entity.
[[nodiscard]] std::string render_projection(const ledger_state& state, const std::string& stream,
                                            const std::string& what);
[[nodiscard]] std::string session_json(const ledger_state& state, const std::string& session);

// A period at a glance: per utility, its bills' totals by line kind; and the settlement.
// `account` returns each account the utilities list (the engine activates them one at a time);
// a nullptr stops the report early (the caller has the error).
[[nodiscard]] std::string period_report_json(
    const ledger_state& state, std::int32_t period,
    const std::function<const account_state*(const std::string&)>& account);

// Every projection the state holds, as (key, JSON): what a replay compares with a query's answers.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> all_projections(const ledger_state& state);

}  // namespace pevledger::core
