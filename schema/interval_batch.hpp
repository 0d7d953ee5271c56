#pragma once
// Reading a binary interval batch (schema/interval_batch.fbs) into the command the engine decides:
// FlatBuffers' verifier for the framing, then the rules a JSON meter.interval line meets for every
// field (schema/field_checks.hpp) and the batch's own (1 to limits::interval_batch_readings_max
// readings, starts strictly increasing). A batch that fails any check is refused whole, with the
// code a line would get (invalid_field, missing_field) and its id when it had a readable one.

#include <cstdint>
#include <optional>
#include <span>

#include "schema/command_parser.hpp"
#include "schema/interval_batch_generated.h"

namespace pevledger::schema {

// The command of kind interval_batch whose table is a copy of `bytes`, or nullopt and `failure`.
[[nodiscard]] std::optional<command> read_interval_batch(std::span<const std::uint8_t> bytes, parse_failure& failure);

}  // namespace pevledger::schema
