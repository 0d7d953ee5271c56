#include "schema/command_parser.hpp"

#include <flatbuffers/idl.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "base/limits.hpp"
#include "base/time.hpp"

namespace pevledger::schema {

extern const std::string_view commands_fbs_text;

namespace {

using json = nlohmann::json;

// Fields every line carries in its envelope rather than in its command table.
constexpr std::string_view envelope_fields[] = {"type", "id", "at"};

bool is_envelope_field(std::string_view key) {
  for (auto f : envelope_fields)
    if (f == key) return true;
  return false;
}

status invalid(std::string message) { return {errc::invalid_field, std::move(message)}; }

bool has_attribute(const flatbuffers::FieldDef& field, const char* name) {
  return field.attributes.Lookup(name) != nullptr;
}

// Checks one JSON value against the schema type of `field`; `path` names it in messages.
status check_value(const json& v, const flatbuffers::Type& type, const flatbuffers::FieldDef& field,
                   const std::string& path);

status check_table(const json& object, const flatbuffers::StructDef& table, const std::string& prefix) {
  // Mandatory fields first: a missing field is reported before a malformed one.
  for (const flatbuffers::FieldDef* field : table.fields.vec) {
    if (!has_attribute(*field, "mandatory")) continue;
    auto it = object.find(field->name);
    if (it == object.end() || it->is_null())
      return {errc::missing_field, "missing field '" + prefix + field->name + "'"};
  }
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (prefix.empty() && is_envelope_field(it.key())) continue;
    const flatbuffers::FieldDef* field = table.fields.Lookup(it.key());
    if (field == nullptr || field->deprecated)
      return invalid("unknown field '" + prefix + it.key() + "'");
    if (it->is_null()) continue;  // absent: the schema default applies
    PEV_RETURN_IF_ERROR(check_value(*it, field->value.type, *field, prefix + it.key()));
  }
  return status::ok();
}

status check_string(const json& v, const flatbuffers::FieldDef& field, const std::string& path) {
  if (!v.is_string()) return invalid("field '" + path + "' must be a string");
  const auto& s = v.get_ref<const std::string&>();
  if (has_attribute(field, "identifier")) {
    if (s.empty()) return invalid("field '" + path + "' must not be empty");
    if (s.size() > limits::identifier_bytes_max) return invalid("field '" + path + "' is too long");
  }
  if (has_attribute(field, "timestamp")) {
    auto t = parse_timestamp(s);
    if (!t) return invalid("field '" + path + "': " + t.error().message());
  }
  if (has_attribute(field, "month")) {
    auto m = parse_month(s);
    if (!m) return invalid("field '" + path + "': " + m.error().message());
  }
  if (has_attribute(field, "clock")) {
    auto c = parse_clock(s);
    if (!c) return invalid("field '" + path + "': " + c.error().message());
  }
  return status::ok();
}

status check_integer(const json& v, const flatbuffers::Type& type, const flatbuffers::FieldDef& field,
                     const std::string& path) {
  if (!v.is_number_integer()) return invalid("field '" + path + "' must be an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    return invalid("field '" + path + "' is out of range");
  const std::int64_t n = v.get<std::int64_t>();
  // Every numeric command field is a long or a narrower signed/unsigned integer.
  const auto bits = flatbuffers::SizeOf(type.base_type) * 8;
  const bool is_signed = flatbuffers::IsInteger(type.base_type) && type.base_type != flatbuffers::BASE_TYPE_UCHAR &&
                         type.base_type != flatbuffers::BASE_TYPE_USHORT &&
                         type.base_type != flatbuffers::BASE_TYPE_UINT && type.base_type != flatbuffers::BASE_TYPE_ULONG;
  if (bits < 64) {
    const std::int64_t max = is_signed ? (std::int64_t{1} << (bits - 1)) - 1 : (std::int64_t{1} << bits) - 1;
    const std::int64_t min = is_signed ? -(std::int64_t{1} << (bits - 1)) : 0;
    if (n < min || n > max) return invalid("field '" + path + "' is out of range");
  }
  if (!is_signed && n < 0) return invalid("field '" + path + "' must not be negative");
  if (has_attribute(field, "non_negative") && n < 0) return invalid("field '" + path + "' must not be negative");
  if (has_attribute(field, "positive") && n <= 0) return invalid("field '" + path + "' must be positive");
  if (const flatbuffers::Value* max = field.attributes.Lookup("max")) {
    const std::int64_t bound = std::stoll(max->constant);  // the schema's own text, checked at start-up
    if (n > bound) return invalid("field '" + path + "' is over its limit of " + max->constant);
  }
  return status::ok();
}

status check_value(const json& v, const flatbuffers::Type& type, const flatbuffers::FieldDef& field,
                   const std::string& path) {
  if (type.enum_def != nullptr && flatbuffers::IsScalar(type.base_type)) {
    if (!v.is_string()) return invalid("field '" + path + "' must be one of its names, as a string");
    if (type.enum_def->Lookup(v.get_ref<const std::string&>()) == nullptr)
      return invalid("field '" + path + "' has no value '" + v.get<std::string>() + "'");
    return status::ok();
  }
  switch (type.base_type) {
    case flatbuffers::BASE_TYPE_STRING:
      return check_string(v, field, path);
    case flatbuffers::BASE_TYPE_BOOL:
      if (!v.is_boolean()) return invalid("field '" + path + "' must be true or false");
      return status::ok();
    case flatbuffers::BASE_TYPE_VECTOR: {
      if (!v.is_array()) return invalid("field '" + path + "' must be a list");
      const std::size_t max = path == "cards" ? limits::whitelist_cards_max : limits::tou_windows_max;
      if (v.size() > max) return invalid("field '" + path + "' has too many entries");
      const flatbuffers::Type element = type.VectorType();
      for (std::size_t i = 0; i < v.size(); ++i)
        PEV_RETURN_IF_ERROR(check_value(v[i], element, field, path + "[" + std::to_string(i) + "]"));
      return status::ok();
    }
    case flatbuffers::BASE_TYPE_STRUCT:
      if (!v.is_object()) return invalid("field '" + path + "' must be an object");
      return check_table(v, *type.struct_def, path + ".");
    default:
      if (flatbuffers::IsInteger(type.base_type)) return check_integer(v, type, field, path);
      return invalid("field '" + path + "' has a type the command format does not use");
  }
}

}  // namespace

struct command_parser::impl {
  flatbuffers::Parser fb;
  std::unordered_map<std::string, command_kind> kind_by_type;
  std::array<const flatbuffers::StructDef*, command_kind_count> tables{};
  std::string line_copy;  // flatbuffers' JSON parser wants a terminated string

  static flatbuffers::IDLOptions options() {
    flatbuffers::IDLOptions o;
    // `type`, `id` and `at` belong to the envelope; every other field was checked above.
    o.skip_unexpected_fields_in_json = true;
    o.allow_non_utf8 = false;
    return o;
  }
  impl() : fb(options()) {}
};

command_parser::command_parser(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
command_parser::~command_parser() = default;

result<std::unique_ptr<command_parser>> command_parser::create() {
  auto p = std::make_unique<impl>();
  const std::string text(commands_fbs_text);
  if (!p->fb.Parse(text.c_str(), nullptr, "commands.fbs"))
    return status(errc::corruption, "embedded commands.fbs does not parse: " + p->fb.error_);
  for (std::size_t i = 0; i < command_kind_count; ++i) {
    const std::string table_name = "pevledger.schema." + std::string(command_tables[i].table);
    const flatbuffers::StructDef* table = p->fb.LookupStruct(table_name);
    PEV_ASSERT(table != nullptr);
    const flatbuffers::Value* type_attr = table->attributes.Lookup("command");
    PEV_ASSERT(type_attr != nullptr);
    PEV_ASSERT(type_attr->constant == command_tables[i].type);
    p->tables[i] = table;
    p->kind_by_type.emplace(type_attr->constant, static_cast<command_kind>(i));
  }
  // Every table with a `command` attribute has a kind: the schema and this file agree.
  std::size_t command_tables_in_schema = 0;
  for (const flatbuffers::StructDef* s : p->fb.structs_.vec)
    if (s->attributes.Lookup("command") != nullptr) ++command_tables_in_schema;
  PEV_ASSERT(command_tables_in_schema == command_kind_count);
  for (const flatbuffers::StructDef* st : p->fb.structs_.vec)
    for (const flatbuffers::FieldDef* f : st->fields.vec)
      if (const flatbuffers::Value* max = f->attributes.Lookup("max"))
        PEV_ASSERT(!max->constant.empty() && max->constant.find_first_not_of("0123456789") == std::string::npos);
  PEV_ASSERT(p->kind_by_type.size() == command_kind_count);
  return std::unique_ptr<command_parser>(new command_parser(std::move(p)));
}

bool command_parser::is_blank(std::string_view line) noexcept {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

std::optional<command> command_parser::parse(std::string_view line, parse_failure& failure) {
  failure = {};
  auto refuse = [&](errc code, std::string message) -> std::optional<command> {
    failure.error = status(code, std::move(message));
    return std::nullopt;
  };
  if (line.size() > limits::command_line_bytes_max)
    return refuse(errc::line_too_long, "line is " + std::to_string(line.size()) + " bytes; the limit is " +
                                           std::to_string(limits::command_line_bytes_max));
  // nlohmann checks JSON syntax and UTF-8; it does not throw with allow_exceptions = false.
  const json doc = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return refuse(errc::invalid_json, "line is not valid JSON (or not valid UTF-8)");
  if (!doc.is_object()) return refuse(errc::invalid_json, "line is not a JSON object");

  auto id_it = doc.find("id");
  if (id_it != doc.end() && id_it->is_string()) failure.id = id_it->get<std::string>();

  auto type_it = doc.find("type");
  if (type_it == doc.end() || type_it->is_null()) return refuse(errc::missing_field, "missing field 'type'");
  if (!type_it->is_string()) return refuse(errc::invalid_field, "field 'type' must be a string");
  auto kind_it = impl_->kind_by_type.find(type_it->get_ref<const std::string&>());
  if (kind_it == impl_->kind_by_type.end())
    return refuse(errc::unknown_type, "unknown command type '" + type_it->get<std::string>().substr(0, 64) + "'");
  const command_kind kind = kind_it->second;

  if (id_it == doc.end() || id_it->is_null()) return refuse(errc::missing_field, "missing field 'id'");
  auto at_it = doc.find("at");
  if (at_it == doc.end() || at_it->is_null()) return refuse(errc::missing_field, "missing field 'at'");
  const flatbuffers::StructDef& table = *impl_->tables[static_cast<std::size_t>(kind)];
  if (status s = check_table(doc, table, ""); !s.is_ok()) {
    failure.error = std::move(s);
    return std::nullopt;
  }
  if (!id_it->is_string()) return refuse(errc::invalid_field, "field 'id' must be a string");
  const auto& id = id_it->get_ref<const std::string&>();
  if (id.empty() || id.size() > limits::identifier_bytes_max)
    return refuse(errc::invalid_field, "field 'id' must be 1 to 256 bytes");
  if (!at_it->is_string()) return refuse(errc::invalid_field, "field 'at' must be a string");
  auto at = parse_timestamp(at_it->get_ref<const std::string&>());
  if (!at) return refuse(errc::invalid_field, "field 'at': " + at.error().message());

  impl_->line_copy.assign(line);
  PEV_ASSERT(impl_->fb.SetRootType(std::string(command_tables[static_cast<std::size_t>(kind)].table).c_str()));
  if (!impl_->fb.ParseJson(impl_->line_copy.c_str()))
    return refuse(errc::invalid_field, "line does not fit its command: " + impl_->fb.error_);

  command out;
  out.kind = kind;
  out.id = id;
  out.at = at.value();
  const auto& b = impl_->fb.builder_;
  out.table.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  return out;
}

}  // namespace pevledger::schema
