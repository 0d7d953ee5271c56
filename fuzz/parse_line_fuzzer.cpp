// libFuzzer target: the JSON-lines command parser (schema/command_parser.hpp, which reads each line
// with schema/json_line.hpp first). The input is split into lines as `pevledger ingest` splits its
// input (engine/line_reader.cpp: at '\n', nothing else stripped), blank lines are skipped, and one
// parser, created once, parses every line, as the ingest's parse thread does.
//
// Whatever the bytes, the parser must neither crash, hang nor reach an assertion (PEV_ASSERT
// aborts, which libFuzzer reports as a crash). Beyond that, cheap invariants of its answer:
//   - a refusal carries one of the format codes of SPEC section 7, and the id it reports is the
//     line's own;
//   - an accepted command has an id of 1 to 256 bytes without a control character, a business
//     time inside the accepted range, and a FlatBuffer that verifies as the table of its kind;
//   - parsing the same line again gives the same answer, byte for byte (the parser keeps buffers
//     and flatbuffers' parser state from one line to the next).
// scripts/fuzz.sh builds and runs it (PEVLEDGER_LIBFUZZER=ON).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <flatbuffers/flatbuffers.h>

#include "base/limits.hpp"
#include "fuzz/check.hpp"
#include "schema/command_parser.hpp"

namespace {

using namespace pevledger;
using namespace pevledger::schema;

command_parser& parser() {
  static const std::unique_ptr<command_parser> p = [] {
    auto created = command_parser::create();
    FUZZ_CHECK(created.has_value());
    return std::move(created.value());
  }();
  return *p;
}

// The command tables in command_kind order (schema/command_parser.hpp's command_tables).
template <class... Tables>
struct table_list {};
using command_table_types =
    table_list<UtilityRegister, TariffPublish, PricePublish, CppDeclare, DlcDeclare, AccountOpen, AccountTopup,
               PremiseRegister, StationBoot, StationActivate, DeviceCommission, DeviceConfigure, PevEnroll, PevSetup,
               SessionPlug, SessionBind, SessionStart, EnergyRequest, MeterInterval, PevTotal, SessionUnplug,
               CardAssign, CardRevoke, WhitelistPush, BillRun, SettlementRun, PhoneAssign, PhoneRevoke,
               SessionTimeout, AccessGrant, AccessRevoke>;

template <class... Tables>
bool verifies_as(table_list<Tables...>, command_kind kind, const std::vector<std::uint8_t>& table) {
  static_assert(sizeof...(Tables) == line_kind_count);
  std::size_t i = 0;
  bool ok = false;
  // The table of the kind's index, verified as that type.
  ((i++ == static_cast<std::size_t>(kind)
        ? (ok = [&] {
             flatbuffers::Verifier verifier(table.data(), table.size());
             return verifier.VerifyBuffer<Tables>(nullptr);
           }())
        : false),
   ...);
  return ok;
}

bool is_format_refusal(errc code) {
  return code == errc::invalid_json || code == errc::line_too_long || code == errc::missing_field ||
         code == errc::invalid_field || code == errc::unknown_type;
}

bool holds_control_character(std::string_view s) {
  for (const char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  return false;
}

struct outcome {
  std::optional<command> cmd;
  parse_failure failure;
};

outcome parse(std::string_view line) {
  outcome out;
  out.cmd = parser().parse(line, out.failure);
  return out;
}

void check_line(std::string_view line) {
  const outcome first = parse(line);
  if (first.cmd) {
    const command& c = *first.cmd;
    FUZZ_CHECK(first.failure.error.is_ok());
    FUZZ_CHECK(static_cast<std::size_t>(c.kind) < line_kind_count);
    FUZZ_CHECK(!c.id.empty() && c.id.size() <= limits::identifier_bytes_max && !holds_control_character(c.id));
    FUZZ_CHECK(c.at.value() >= 2 * 86400 && c.at.value() <= limits::unix_seconds_max - 2 * 86400);
    FUZZ_CHECK(!c.table.empty());
    FUZZ_CHECK(verifies_as(command_table_types{}, c.kind, c.table));
  } else {
    FUZZ_CHECK(!first.failure.error.is_ok());
    FUZZ_CHECK(is_format_refusal(first.failure.error.code()));
    FUZZ_CHECK(!first.failure.error.message().empty());
    if (first.failure.id) FUZZ_CHECK(first.failure.id->size() <= line.size());
  }
  // The same line again: the same answer (nothing of one line leaks into the next).
  const outcome again = parse(line);
  FUZZ_CHECK(again.cmd.has_value() == first.cmd.has_value());
  if (first.cmd) {
    FUZZ_CHECK(again.cmd->kind == first.cmd->kind && again.cmd->id == first.cmd->id &&
               again.cmd->at.value() == first.cmd->at.value() && again.cmd->table == first.cmd->table);
  } else {
    FUZZ_CHECK(again.failure.error.code() == first.failure.error.code());
    FUZZ_CHECK(again.failure.error.message() == first.failure.error.message());
    FUZZ_CHECK(again.failure.id == first.failure.id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t begin = 0;
  while (begin <= input.size()) {
    std::size_t end = input.find('\n', begin);
    if (end == std::string_view::npos) end = input.size();
    const std::string_view line = input.substr(begin, end - begin);
    // A line over the limit never reaches the parser in an ingest (the line reader refuses it),
    // but the parser refuses it too: give it the whole line.
    if (!command_parser::is_blank(line)) check_line(line);
    begin = end + 1;
  }
  return 0;
}
