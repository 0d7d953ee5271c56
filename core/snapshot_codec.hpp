#pragma once
// Snapshots: an entity's state as bytes, so that an idle entity can leave memory and come back
// (snapshot plus the tail of its stream) and so that recovery and replay need not fold from zero.
//
// The encoding is private to pevledger and versioned by its first byte; auditors never need it,
// because every snapshot is checked against the log: replay from snapshots and replay from zero
// must give the same projections (tests/residency_test.cpp). Integers are LEB128 varints (signed
// ones zigzag), strings and containers are length-prefixed, maps in key order.

#include <cstdint>
#include <string>
#include <string_view>

#include "core/ledger_state.hpp"
#include "base/status.hpp"

namespace pevledger::core {

[[nodiscard]] std::string encode_snapshot(const utility_state& s);
[[nodiscard]] std::string encode_snapshot(const account_state& s);
[[nodiscard]] std::string encode_snapshot(const premise_state& s);
[[nodiscard]] std::string encode_snapshot(const device_state& s);
[[nodiscard]] std::string encode_snapshot(const pev_state& s);
[[nodiscard]] std::string encode_snapshot(const vin_registration& s);
[[nodiscard]] std::string encode_snapshot(const card_state& s);
[[nodiscard]] std::string encode_snapshot(const session_state& s);
[[nodiscard]] std::string encode_snapshot(const clearinghouse_state& s);
[[nodiscard]] std::string encode_snapshot(const interval_content& s);

// Each fails with `corruption` on bytes that are not a whole, well-formed snapshot of that kind.
[[nodiscard]] status decode_snapshot(std::string_view bytes, utility_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, account_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, premise_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, device_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, pev_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, vin_registration& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, card_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, session_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, clearinghouse_state& out);
[[nodiscard]] status decode_snapshot(std::string_view bytes, interval_content& out);

// Puts the entity of `stream` ("account/a1", "clearinghouse", ...) into `state` from a snapshot of
// it, replacing what `state` held of it.
[[nodiscard]] status restore_entity(ledger_state& state, std::string_view stream, std::string_view bytes);

}  // namespace pevledger::core
