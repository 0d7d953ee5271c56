#pragma once
// The JSON-lines command parser (SPEC section 6). A line is checked against schema/commands.fbs
// (fields, types, mandatory fields, formats), then the command table is built from the checked
// values. Refusals carry the stable codes of SPEC section 7.
//
// Not thread-safe: one parser per thread (the flatbuffers parser keeps its builder inside).

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.hpp"
#include "base/strong_types.hpp"
#include "schema/commands_generated.h"

namespace pevledger::schema {

enum class command_kind : std::uint8_t {
  utility_register,
  tariff_publish,
  price_publish,
  cpp_declare,
  dlc_declare,
  account_open,
  account_topup,
  premise_register,
  station_boot,
  station_activate,
  device_commission,
  device_configure,
  pev_enroll,
  pev_setup,
  session_plug,
  session_bind,
  session_start,
  energy_request,
  meter_interval,
  pev_total,
  session_unplug,
  card_assign,
  card_revoke,
  whitelist_push,
  bill_run,
  settlement_run,
  phone_assign,
  phone_revoke,
  session_timeout,
  access_grant,
  access_revoke,
  // The kinds above are the line types of SPEC section 6, in the order of command_tables. A batch
  // of one EUMD's readings (schema/interval_batch.fbs) is binary only: it has no JSON type.
  interval_batch,
};
inline constexpr std::size_t line_kind_count = 31;

struct command_table {
  std::string_view table;  // in commands.fbs
  std::string_view type;   // the JSON `type`: the table's `command` attribute
};

// Indexed by command_kind, for the line kinds. The parser checks at start-up that commands.fbs says
// the same.
inline constexpr std::array<command_table, line_kind_count> command_tables = {{
    {"UtilityRegister", "utility.register"},   {"TariffPublish", "tariff.publish"},
    {"PricePublish", "price.publish"},         {"CppDeclare", "cpp.declare"},
    {"DlcDeclare", "dlc.declare"},             {"AccountOpen", "account.open"},
    {"AccountTopup", "account.topup"},         {"PremiseRegister", "premise.register"},
    {"StationBoot", "station.boot"},           {"StationActivate", "station.activate"},
    {"DeviceCommission", "device.commission"}, {"DeviceConfigure", "device.configure"},
    {"PevEnroll", "pev.enroll"},               {"PevSetup", "pev.setup"},
    {"SessionPlug", "session.plug"},           {"SessionBind", "session.bind"},
    {"SessionStart", "session.start"},         {"EnergyRequest", "energy.request"},
    {"MeterInterval", "meter.interval"},       {"PevTotal", "pev.total"},
    {"SessionUnplug", "session.unplug"},       {"CardAssign", "card.assign"},
    {"CardRevoke", "card.revoke"},             {"WhitelistPush", "whitelist.push"},
    {"BillRun", "bill.run"},                   {"SettlementRun", "settlement.run"},
    {"PhoneAssign", "phone.assign"},           {"PhoneRevoke", "phone.revoke"},
    {"SessionTimeout", "session.timeout"},     {"AccessGrant", "access.grant"},
    {"AccessRevoke", "access.revoke"},
}};

// One accepted-for-parsing line: the envelope fields and the command table as a FlatBuffer.
struct command {
  command_kind kind{};
  std::string id;
  unix_seconds at;
  std::vector<std::uint8_t> table;  // root: the table of `kind`

  template <class Table>
  [[nodiscard]] const Table* as() const {
    return flatbuffers::GetRoot<Table>(table.data());
  }
};

// What a refused line could still tell: its id when it had a readable one.
struct parse_failure {
  status error;
  std::optional<std::string> id;
};

[[nodiscard]] constexpr std::string_view command_type_name(command_kind kind) {
  if (kind == command_kind::interval_batch) return "interval batch";
  return command_tables[static_cast<std::size_t>(kind)].type;
}

// How a checked line becomes its command's table: built straight from the line's values (what the
// engine uses), or by flatbuffers' own JSON parser reading the line's fields again (kept to show
// that both give the same tables, and to measure the difference: bench/parse).
enum class table_building { direct, flatbuffers_json };

class command_parser {
 public:
  // Loads the embedded schema. Fails only if the schema text is broken (a build bug).
  [[nodiscard]] static result<std::unique_ptr<command_parser>> create(
      table_building building = table_building::direct);
  ~command_parser();
  command_parser(const command_parser&) = delete;
  command_parser& operator=(const command_parser&) = delete;

  // Parses one non-blank line (no trailing newline). On refusal, `failure` says why.
  [[nodiscard]] std::optional<command> parse(std::string_view line, parse_failure& failure);

  // True for a line the format skips: empty or white space only.
  [[nodiscard]] static bool is_blank(std::string_view line) noexcept;

 private:
  struct impl;
  explicit command_parser(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace pevledger::schema
