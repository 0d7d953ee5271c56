#pragma once
// prefetch: what deciding a command reads, stated before `decide` runs (the first of TigerBeetle's
// two phases, prefetch then commit).
//
// The live engine keeps only some entities resident (engine/residency). `prefetch` looks up every
// entity and interval the command names, and those they lead to: a session's premise and that
// premise's account, a PEV's account, a card's or an SMS number's accounts, the accounts a
// decision books to, every undecided session of a bill or settlement run and every account a bill
// run bills. A lookup of something not resident is recorded as a miss by the state's pager. The
// engine activates what was missed and asks again; each round follows the chain one link further
// (session, then premise, then account: three rounds at most for any command), and when a round
// misses nothing, `decide` runs once with everything it reads at hand.
//
// It reads only the state and the command, and never looks further than `decide` would: what it
// finds absent is absent. A lookup it leaves out would make `decide` read an entity that is not
// resident, which the engine treats as a bug (an assertion), not as a retry.

#include "core/ledger_state.hpp"
#include "schema/command_parser.hpp"

namespace pevledger::core {

void prefetch(const ledger_state& state, const schema::command& command);
// What deciding reading `index` of an admitted interval batch reads (core/decide.hpp).
void prefetch_reading(const ledger_state& state, const schema::command& batch, std::size_t index);

}  // namespace pevledger::core
