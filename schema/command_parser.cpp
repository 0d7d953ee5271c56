#include "schema/command_parser.hpp"

#include <flatbuffers/idl.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "base/assert.hpp"
#include "base/limits.hpp"
#include "base/time.hpp"
#include "schema/field_checks.hpp"
#include "schema/json_line.hpp"

namespace pevledger::schema {

extern const std::string_view commands_fbs_text;

// What an identifier may hold, checked here for every one of them: the line's `id` and every field
// commands.fbs marks `identifier` (utilities, accounts, customers, premises, devices, sessions,
// cards, tariffs, PEVs, TOU window names, whitelisted cards). 1 to 256 bytes of UTF-8 (the line
// was checked as UTF-8 already) without a control character (U+0000 to U+001F, U+007F): identifiers
// become stream names and storage keys, where NUL ends a stream's name, and events built from a
// C string would cut one at its NUL (an account "\u0000" was recorded as "").
status check_identifier(std::string_view s, const std::string& path) {
  if (s.empty()) return {errc::invalid_field, "field '" + path + "' must not be empty"};
  if (s.size() > limits::identifier_bytes_max)
    return {errc::invalid_field, "field '" + path + "' is longer than " + std::to_string(limits::identifier_bytes_max) + " bytes"};
  for (const char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return {errc::invalid_field, "field '" + path + "' holds a control character"};
  return status::ok();
}

// A command's times are read in every utility's zone (a billing month is a local month), and
// months run from 1970-01 to 9999-12: a time within two days of either end could fall in a local
// month outside them (1970-01-01T00:00:00Z is in December 1969 in Los Angeles). Such a time is an
// invalid field, not an input that reaches an invariant in apply.
constexpr std::int64_t edge_margin_s = 2 * 86400;
bool is_business_time(unix_seconds t) {
  return t.value() >= edge_margin_s && t.value() <= limits::unix_seconds_max - edge_margin_s;
}
result<unix_seconds> business_time(std::string_view text) {
  auto t = parse_timestamp(text);
  if (!t) return t;
  if (!is_business_time(t.value()))
    return status(errc::invalid_field, "time " + std::string(text) + " is outside 1970-01-03 to 9999-12-29");
  return t;
}

namespace {

// A subscriber's SMS number (SPEC section 6): E.164, '+' and 8 to 15 digits, nothing else.
bool is_phone_number(std::string_view s) {
  if (s.size() < 9 || s.size() > 16 || s.front() != '+') return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A period (`bill.run`, `settlement.run`) runs from 1970-01 to 9999-11. What arrives later for a
// billed period goes to the first unbilled period after it, and a roaming credit of a settled
// period counts in the first unsettled one: keeping 9999-12 out of every run keeps that period
// within the months a bill can have (a run of 9999-12 and an interval of December 9999 made an
// adjustment of "10000-01", which reached an invariant in apply).
result<month_period> run_period(std::string_view text) {
  auto m = parse_month(text);
  if (!m) return m;
  if (m->index() > month_period{9999, 11}.index())
    return status(errc::invalid_field, "period " + std::string(text) + " is outside 1970-01 to 9999-11");
  return m;
}

// Fields every line carries in its envelope rather than in its command table.
constexpr std::string_view envelope_fields[] = {"type", "id", "at"};

bool is_envelope_field(std::string_view key) {
  for (auto f : envelope_fields)
    if (f == key) return true;
  return false;
}

using json_kind = json_line::kind;

// What the schema says of one field, read from its attributes once, when the parser is created.
struct field_rules {
  const flatbuffers::FieldDef* def = nullptr;
  bool mandatory = false, identifier = false, phone = false, timestamp = false, month = false, clock = false;
  bool non_negative = false, positive = false;
  std::optional<std::int64_t> max;
  std::string max_text;
};

struct table_rules {
  std::vector<field_rules> fields;  // in schema order

  [[nodiscard]] const field_rules* find(std::string_view name) const {
    for (const field_rules& f : fields)
      if (f.def->name == name) return &f;
    return nullptr;
  }
};

field_rules rules_of(const flatbuffers::FieldDef& field) {
  auto has = [&](const char* name) { return field.attributes.Lookup(name) != nullptr; };
  field_rules r;
  r.def = &field;
  r.mandatory = has("mandatory");
  r.identifier = has("identifier");
  r.phone = has("phone");
  r.timestamp = has("timestamp");
  r.month = has("month");
  r.clock = has("clock");
  r.non_negative = has("non_negative");
  r.positive = has("positive");
  if (const flatbuffers::Value* max = field.attributes.Lookup("max")) {
    PEV_ASSERT(!max->constant.empty() && max->constant.size() <= 18 &&
               max->constant.find_first_not_of("0123456789") == std::string::npos);
    r.max = std::stoll(max->constant);
    r.max_text = max->constant;
  }
  return r;
}

// Checks a line's values against the schema's rules; `path` names a value in messages.
class line_checker {
 public:
  line_checker(const json_line& doc, const std::unordered_map<const flatbuffers::StructDef*, table_rules>& rules)
      : doc_(doc), rules_(rules) {}

  status check_table(std::uint32_t object, const flatbuffers::StructDef& table, const std::string& prefix) {
    const table_rules& rules = rules_.at(&table);
    // A field set twice, the envelope's included, is refused rather than read as either value;
    // before anything else of this object, so that no check reads one of the two.
    std::vector<std::uint32_t> members;
    doc_.members_by_name(object, members);
    if (members.size() != doc_.at(object).size)
      return invalid("field '" + prefix + repeated_name(object) + "' is set more than once");
    // Mandatory fields next: a missing field is reported before a malformed one.
    for (const field_rules& field : rules.fields) {
      if (!field.mandatory) continue;
      const std::uint32_t v = doc_.member(object, field.def->name);
      if (v == json_line::none || doc_.at(v).type == json_kind::null)
        return {errc::missing_field, "missing field '" + prefix + field.def->name + "'"};
    }
    for (const std::uint32_t m : members) {
      const std::string_view key = doc_.at(m).key;
      if (prefix.empty() && is_envelope_field(key)) continue;
      const field_rules* field = rules.find(key);
      if (field == nullptr || field->def->deprecated) return invalid("unknown field '" + prefix + std::string(key) + "'");
      if (doc_.at(m).type == json_kind::null) continue;  // absent: the schema default applies
      PEV_RETURN_IF_ERROR(check_value(m, field->def->value.type, *field, prefix + std::string(key)));
    }
    return status::ok();
  }

 private:
  static status invalid(std::string message) { return {errc::invalid_field, std::move(message)}; }

  // A name that more than one member of `object` has (the first in name order).
  std::string repeated_name(std::uint32_t object) const {
    std::vector<std::string_view> names;
    names.reserve(doc_.at(object).size);
    for (std::uint32_t m = object + 1; m < doc_.at(object).next; m = doc_.at(m).next) names.push_back(doc_.at(m).key);
    std::sort(names.begin(), names.end());
    const auto repeated = std::adjacent_find(names.begin(), names.end());
    PEV_ASSERT(repeated != names.end());  // called only when a name repeats
    return std::string(*repeated);
  }

  status check_value(std::uint32_t v, const flatbuffers::Type& type, const field_rules& field, const std::string& path) {
    const json_line::node& n = doc_.at(v);
    if (type.enum_def != nullptr && flatbuffers::IsScalar(type.base_type)) {
      if (n.type != json_kind::string) return invalid("field '" + path + "' must be one of its names, as a string");
      if (type.enum_def->Lookup(std::string(n.text)) == nullptr)
        return invalid("field '" + path + "' has no value '" + std::string(n.text) + "'");
      return status::ok();
    }
    switch (type.base_type) {
      case flatbuffers::BASE_TYPE_STRING:
        return check_string(n, field, path);
      case flatbuffers::BASE_TYPE_BOOL:
        if (n.type != json_kind::boolean) return invalid("field '" + path + "' must be true or false");
        return status::ok();
      case flatbuffers::BASE_TYPE_VECTOR: {
        if (n.type != json_kind::array) return invalid("field '" + path + "' must be a list");
        const std::size_t max = path == "cards" ? limits::whitelist_cards_max : limits::tou_windows_max;
        if (n.size > max) return invalid("field '" + path + "' has too many entries");
        const flatbuffers::Type element = type.VectorType();
        std::size_t i = 0;
        for (std::uint32_t e = v + 1; e < n.next; e = doc_.at(e).next, ++i)
          PEV_RETURN_IF_ERROR(check_value(e, element, field, path + "[" + std::to_string(i) + "]"));
        return status::ok();
      }
      case flatbuffers::BASE_TYPE_STRUCT:
        if (n.type != json_kind::object) return invalid("field '" + path + "' must be an object");
        return check_table(v, *type.struct_def, path + ".");
      default:
        if (flatbuffers::IsInteger(type.base_type)) return check_integer(n, type, field, path);
        return invalid("field '" + path + "' has a type the command format does not use");
    }
  }

  static status check_string(const json_line::node& n, const field_rules& field, const std::string& path) {
    if (n.type != json_kind::string) return invalid("field '" + path + "' must be a string");
    const std::string_view s = n.text;
    if (field.identifier) PEV_RETURN_IF_ERROR(check_identifier(s, path));
    if (field.phone && !is_phone_number(s))
      return invalid("field '" + path + "' is not a phone number in E.164 form ('+' and 8 to 15 digits)");
    if (field.timestamp) {
      auto t = business_time(s);
      if (!t) return invalid("field '" + path + "': " + t.error().message());
    }
    if (field.month) {
      auto m = run_period(s);
      if (!m) return invalid("field '" + path + "': " + m.error().message());
    }
    if (field.clock) {
      auto c = parse_clock(s);
      if (!c) return invalid("field '" + path + "': " + c.error().message());
    }
    return status::ok();
  }

  static status check_integer(const json_line::node& n, const flatbuffers::Type& type, const field_rules& field,
                              const std::string& path) {
    if (n.type != json_kind::integer && n.type != json_kind::unsigned_integer)
      return invalid("field '" + path + "' must be an integer");
    if (n.type == json_kind::unsigned_integer && n.unsigned_integer > static_cast<std::uint64_t>(INT64_MAX))
      return invalid("field '" + path + "' is out of range");
    const std::int64_t v = n.type == json_kind::integer ? n.integer : static_cast<std::int64_t>(n.unsigned_integer);
    // Every numeric command field is a long or a narrower signed/unsigned integer.
    const auto bits = flatbuffers::SizeOf(type.base_type) * 8;
    const bool is_signed = flatbuffers::IsInteger(type.base_type) && type.base_type != flatbuffers::BASE_TYPE_UCHAR &&
                           type.base_type != flatbuffers::BASE_TYPE_USHORT &&
                           type.base_type != flatbuffers::BASE_TYPE_UINT && type.base_type != flatbuffers::BASE_TYPE_ULONG;
    if (bits < 64) {
      const std::int64_t max = is_signed ? (std::int64_t{1} << (bits - 1)) - 1 : (std::int64_t{1} << bits) - 1;
      const std::int64_t min = is_signed ? -(std::int64_t{1} << (bits - 1)) : 0;
      if (v < min || v > max) return invalid("field '" + path + "' is out of range");
    }
    if (!is_signed && v < 0) return invalid("field '" + path + "' must not be negative");
    if (field.non_negative && v < 0) return invalid("field '" + path + "' must not be negative");
    if (field.positive && v <= 0) return invalid("field '" + path + "' must be positive");
    if (field.max && v > *field.max) return invalid("field '" + path + "' is over its limit of " + field.max_text);
    return status::ok();
  }

  const json_line& doc_;
  const std::unordered_map<const flatbuffers::StructDef*, table_rules>& rules_;
};

// Builds a command's table straight from the line's nodes, once line_checker accepted them: every
// value is of its field's type and within its bounds, so nothing here can fail. The schema's
// field types are few (commands.fbs): strings, longs, bools, byte enums named by string, lists of
// strings or of byte enums, and lists of tables.
class table_builder {
 public:
  table_builder(const json_line& doc, flatbuffers::FlatBufferBuilder& fbb) : doc_(doc), fbb_(fbb) {}

  flatbuffers::uoffset_t table(std::uint32_t object, const flatbuffers::StructDef& def, bool root) {
    struct field_value {
      const flatbuffers::FieldDef* field;
      std::int64_t scalar = 0;
      flatbuffers::uoffset_t offset = 0;
    };
    std::vector<field_value> values;
    values.reserve(doc_.at(object).size);
    // Strings, lists and tables first: a table refers only to what was built before it.
    for (std::uint32_t m = object + 1; m < doc_.at(object).next; m = doc_.at(m).next) {
      const json_line::node& n = doc_.at(m);
      if ((root && is_envelope_field(n.key)) || n.type == json_kind::null) continue;
      const flatbuffers::FieldDef* field = def.fields.Lookup(std::string(n.key));
      PEV_ASSERT(field != nullptr);  // line_checker refused unknown fields
      const flatbuffers::Type& type = field->value.type;
      field_value v{field};
      if (type.base_type == flatbuffers::BASE_TYPE_STRING) {
        v.offset = fbb_.CreateString(n.text.data(), n.text.size()).o;
      } else if (type.base_type == flatbuffers::BASE_TYPE_VECTOR) {
        v.offset = list(m, type.VectorType());
      } else if (type.base_type == flatbuffers::BASE_TYPE_STRUCT) {
        PEV_ASSERT(!type.struct_def->fixed);
        v.offset = table(m, *type.struct_def, false);
      } else {
        v.scalar = scalar(n, type);
      }
      values.push_back(v);
    }
    const flatbuffers::uoffset_t start = fbb_.StartTable();
    for (const field_value& v : values) {
      const flatbuffers::Type& type = v.field->value.type;
      const auto slot = v.field->value.offset;
      switch (type.base_type) {
        case flatbuffers::BASE_TYPE_STRING:
        case flatbuffers::BASE_TYPE_VECTOR:
        case flatbuffers::BASE_TYPE_STRUCT:
          fbb_.AddOffset(slot, flatbuffers::Offset<void>(v.offset));
          break;
        case flatbuffers::BASE_TYPE_LONG:
          fbb_.AddElement<std::int64_t>(slot, v.scalar);  // written even when it equals the default
          break;
        case flatbuffers::BASE_TYPE_BOOL:
        case flatbuffers::BASE_TYPE_UCHAR:
          fbb_.AddElement<std::uint8_t>(slot, static_cast<std::uint8_t>(v.scalar));
          break;
        case flatbuffers::BASE_TYPE_CHAR:
          fbb_.AddElement<std::int8_t>(slot, static_cast<std::int8_t>(v.scalar));
          break;
        default:
          PEV_ASSERT(false && "a field type commands.fbs does not use");
      }
    }
    return fbb_.EndTable(start);
  }

 private:
  std::int64_t scalar(const json_line::node& n, const flatbuffers::Type& type) const {
    if (type.enum_def != nullptr) {
      const flatbuffers::EnumVal* e = type.enum_def->Lookup(std::string(n.text));
      PEV_ASSERT(e != nullptr);  // line_checker refused other names
      return e->GetAsInt64();
    }
    if (n.type == json_kind::boolean) return n.boolean ? 1 : 0;
    PEV_ASSERT(n.type == json_kind::integer || n.type == json_kind::unsigned_integer);
    return n.type == json_kind::integer ? n.integer : static_cast<std::int64_t>(n.unsigned_integer);
  }

  flatbuffers::uoffset_t list(std::uint32_t array, const flatbuffers::Type& element) {
    const json_line::node& a = doc_.at(array);
    std::vector<flatbuffers::uoffset_t> offsets;
    if (element.base_type == flatbuffers::BASE_TYPE_STRING || element.base_type == flatbuffers::BASE_TYPE_STRUCT) {
      offsets.reserve(a.size);
      for (std::uint32_t e = array + 1; e < a.next; e = doc_.at(e).next) {
        const json_line::node& n = doc_.at(e);
        offsets.push_back(element.base_type == flatbuffers::BASE_TYPE_STRING
                              ? fbb_.CreateString(n.text.data(), n.text.size()).o
                              : table(e, *element.struct_def, false));
      }
      fbb_.StartVector(offsets.size(), sizeof(flatbuffers::uoffset_t));
      for (auto it = offsets.rbegin(); it != offsets.rend(); ++it) fbb_.PushElement(flatbuffers::Offset<void>(*it));
      return fbb_.EndVector(offsets.size());
    }
    PEV_ASSERT(flatbuffers::SizeOf(element.base_type) == 1);  // lists of byte enums (weekdays)
    std::vector<std::uint8_t> bytes;
    bytes.reserve(a.size);
    for (std::uint32_t e = array + 1; e < a.next; e = doc_.at(e).next)
      bytes.push_back(static_cast<std::uint8_t>(scalar(doc_.at(e), element)));
    return fbb_.CreateVector(bytes).o;
  }

  const json_line& doc_;
  flatbuffers::FlatBufferBuilder& fbb_;
};

// The field types table_builder builds; create() asserts that commands.fbs uses no other, so that
// a new field of another type fails at start-up rather than on the first line that sends it.
bool builds(const flatbuffers::Type& type) {
  switch (type.base_type) {
    case flatbuffers::BASE_TYPE_STRING:
    case flatbuffers::BASE_TYPE_LONG:
    case flatbuffers::BASE_TYPE_BOOL:
    case flatbuffers::BASE_TYPE_UCHAR:
    case flatbuffers::BASE_TYPE_CHAR:
      return true;
    case flatbuffers::BASE_TYPE_STRUCT:
      return !type.struct_def->fixed;
    case flatbuffers::BASE_TYPE_VECTOR: {
      const flatbuffers::Type element = type.VectorType();
      return element.base_type == flatbuffers::BASE_TYPE_STRING ||
             (element.base_type == flatbuffers::BASE_TYPE_STRUCT && !element.struct_def->fixed) ||
             (flatbuffers::IsScalar(element.base_type) && flatbuffers::SizeOf(element.base_type) == 1);
    }
    default:
      return false;
  }
}

}  // namespace

struct command_parser::impl {
  flatbuffers::Parser fb;
  std::unordered_map<std::string, command_kind> kind_by_type;
  std::array<flatbuffers::StructDef*, line_kind_count> tables{};  // the parser may set them as its root
  std::unordered_map<const flatbuffers::StructDef*, table_rules> rules;  // every table of the schema
  json_line doc;
  table_building building = table_building::direct;
  flatbuffers::FlatBufferBuilder direct{1024};
  std::string line_copy;  // what flatbuffers' JSON parser reads: a terminated string

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

result<std::unique_ptr<command_parser>> command_parser::create(table_building building) {
  auto p = std::make_unique<impl>();
  p->building = building;
  const std::string text(commands_fbs_text);
  if (!p->fb.Parse(text.c_str(), nullptr, "commands.fbs"))
    return status(errc::corruption, "embedded commands.fbs does not parse: " + p->fb.error_);
  for (std::size_t i = 0; i < line_kind_count; ++i) {
    const std::string table_name = "pevledger.schema." + std::string(command_tables[i].table);
    flatbuffers::StructDef* table = p->fb.LookupStruct(table_name);
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
  PEV_ASSERT(command_tables_in_schema == line_kind_count);
  for (const flatbuffers::StructDef* st : p->fb.structs_.vec) {
    for (const flatbuffers::FieldDef* f : st->fields.vec) PEV_ASSERT(builds(f->value.type));
    table_rules& rules = p->rules[st];
    for (const flatbuffers::FieldDef* f : st->fields.vec) rules.fields.push_back(rules_of(*f));
  }
  PEV_ASSERT(p->kind_by_type.size() == line_kind_count);
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
  // JSON syntax and UTF-8 first; the values are then checked against the schema.
  json_line& doc = impl_->doc;
  if (!doc.read(line)) return refuse(errc::invalid_json, "line is not valid JSON (or not valid UTF-8)");
  constexpr std::uint32_t root = 0;
  if (doc.at(root).type != json_kind::object) return refuse(errc::invalid_json, "line is not a JSON object");
  auto present = [&](std::uint32_t v) { return v != json_line::none && doc.at(v).type != json_kind::null; };

  const std::uint32_t id = doc.member(root, "id");
  if (id != json_line::none && doc.at(id).type == json_kind::string) failure.id = std::string(doc.at(id).text);

  const std::uint32_t type = doc.member(root, "type");
  if (!present(type)) return refuse(errc::missing_field, "missing field 'type'");
  if (doc.at(type).type != json_kind::string) return refuse(errc::invalid_field, "field 'type' must be a string");
  auto kind_it = impl_->kind_by_type.find(std::string(doc.at(type).text));
  if (kind_it == impl_->kind_by_type.end())
    return refuse(errc::unknown_type, "unknown command type '" + std::string(doc.at(type).text.substr(0, 64)) + "'");
  const command_kind kind = kind_it->second;

  if (!present(id)) return refuse(errc::missing_field, "missing field 'id'");
  const std::uint32_t at_field = doc.member(root, "at");
  if (!present(at_field)) return refuse(errc::missing_field, "missing field 'at'");
  const flatbuffers::StructDef& table = *impl_->tables[static_cast<std::size_t>(kind)];
  if (status s = line_checker(doc, impl_->rules).check_table(root, table, ""); !s.is_ok()) {
    failure.error = std::move(s);
    return std::nullopt;
  }
  if (doc.at(id).type != json_kind::string) return refuse(errc::invalid_field, "field 'id' must be a string");
  const std::string_view id_text = doc.at(id).text;
  if (status s = check_identifier(id_text, "id"); !s.is_ok()) {
    failure.error = std::move(s);
    return std::nullopt;
  }
  if (doc.at(at_field).type != json_kind::string) return refuse(errc::invalid_field, "field 'at' must be a string");
  auto at = business_time(doc.at(at_field).text);
  if (!at) return refuse(errc::invalid_field, "field 'at': " + at.error().message());

  command out;
  out.kind = kind;
  out.id = std::string(id_text);
  out.at = at.value();
  if (impl_->building == table_building::direct) {
    flatbuffers::FlatBufferBuilder& b = impl_->direct;
    b.Clear();
    const auto& def = *impl_->tables[static_cast<std::size_t>(kind)];
    b.Finish(flatbuffers::Offset<void>(table_builder(doc, b).table(root, def, true)));
    out.table.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
    return out;
  }

  // flatbuffers' parser gets the command's own fields only: it would skip the envelope, but not
  // before its lexer had copied every character of those names and values. A null is left out,
  // as absent (the schema default applies), which flatbuffers would refuse for an enum. No name
  // repeats here: check_table refused that.
  std::string& table_text = impl_->line_copy;
  table_text.assign("{");
  for (std::uint32_t m = root + 1; m < doc.at(root).next; m = doc.at(m).next) {
    const json_line::node& member = doc.at(m);
    if (is_envelope_field(member.key) || member.type == json_kind::null) continue;
    if (table_text.size() > 1) table_text.push_back(',');
    table_text.append(line.substr(member.begin, member.end - member.begin));
  }
  table_text.push_back('}');
  // The table was looked up once, at create(); SetRootType would look it up by name again.
  impl_->fb.root_struct_def_ = impl_->tables[static_cast<std::size_t>(kind)];
  if (!impl_->fb.ParseJson(table_text.c_str())) {
    // Its "line: column: error: " prefix would point into table_text, not into the line.
    const std::string& why = impl_->fb.error_;
    const std::size_t at_error = why.find("error: ");
    return refuse(errc::invalid_field,
                  "line does not fit its command: " + (at_error == std::string::npos ? why : why.substr(at_error + 7)));
  }

  const auto& b = impl_->fb.builder_;
  out.table.assign(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  return out;
}

}  // namespace pevledger::schema
