#pragma once
// apply: the other pure half. Folds one recorded event into the ledger state. It never fails and
// uses no clock, randomness or I/O: live processing, recovery and replay all use it.

#include "core/ledger_state.hpp"
#include "base/strong_types.hpp"
#include "schema/events_generated.h"

namespace pevledger::core {

void apply(ledger_state& state, const schema::EventBody& event, unix_seconds at);

}  // namespace pevledger::core
