#include "base/json_writer.hpp"

#include <charconv>

#include "base/assert.hpp"

namespace pevledger {
namespace {

template <typename Integer>
void append_decimal(std::string& out, Integer n) {
  char buf[24];  // 20 digits and a sign at most
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  PEV_ASSERT(ec == std::errc());
  out.append(buf, end);
}

bool needs_escape(char c) { return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20; }

}  // namespace

void json_writer::before_value() {
  if (after_value_) out_.push_back(',');
}

json_writer& json_writer::begin_object() {
  PEV_ASSERT(depth_ < depth_max);
  before_value();
  out_.push_back('{');
  ++depth_;
  after_value_ = false;
  return *this;
}

json_writer& json_writer::end_object() {
  PEV_ASSERT(depth_ > 0);
  out_.push_back('}');
  --depth_;
  after_value_ = true;
  return *this;
}

json_writer& json_writer::begin_array() {
  PEV_ASSERT(depth_ < depth_max);
  before_value();
  out_.push_back('[');
  ++depth_;
  after_value_ = false;
  return *this;
}

json_writer& json_writer::end_array() {
  PEV_ASSERT(depth_ > 0);
  out_.push_back(']');
  --depth_;
  after_value_ = true;
  return *this;
}

json_writer& json_writer::key(std::string_view name) {
  PEV_ASSERT(depth_ > 0);
  before_value();
  append_escaped(name);
  out_.push_back(':');
  after_value_ = false;
  return *this;
}

json_writer& json_writer::string(std::string_view text) {
  before_value();
  append_escaped(text);
  after_value_ = true;
  return *this;
}

json_writer& json_writer::number(std::int64_t n) {
  before_value();
  append_decimal(out_, n);
  after_value_ = true;
  return *this;
}

json_writer& json_writer::number_unsigned(std::uint64_t n) {
  before_value();
  append_decimal(out_, n);
  after_value_ = true;
  return *this;
}

json_writer& json_writer::boolean(bool b) {
  before_value();
  out_.append(b ? "true" : "false");
  after_value_ = true;
  return *this;
}

json_writer& json_writer::null() {
  before_value();
  out_.append("null");
  after_value_ = true;
  return *this;
}

std::string json_writer::take() {
  PEV_ASSERT(depth_ == 0);
  after_value_ = false;
  return std::move(out_);
}

void json_writer::append_escaped(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out_.push_back('"');
  std::size_t plain_from = 0;  // identifiers rarely need escapes: copy the runs between them whole
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!needs_escape(c)) continue;  // UTF-8 is kept as is, as nlohmann's dump() keeps it
    out_.append(text.data() + plain_from, i - plain_from);
    plain_from = i + 1;
    switch (c) {
      case '"': out_.append("\\\""); break;
      case '\\': out_.append("\\\\"); break;
      case '\b': out_.append("\\b"); break;
      case '\f': out_.append("\\f"); break;
      case '\n': out_.append("\\n"); break;
      case '\r': out_.append("\\r"); break;
      case '\t': out_.append("\\t"); break;
      default:
        out_.append("\\u00");
        out_.push_back(hex[static_cast<unsigned char>(c) >> 4]);
        out_.push_back(hex[static_cast<unsigned char>(c) & 0xf]);
    }
  }
  out_.append(text.data() + plain_from, text.size() - plain_from);
  out_.push_back('"');
}

}  // namespace pevledger
