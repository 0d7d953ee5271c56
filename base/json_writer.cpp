#include "base/json_writer.hpp"

#include <charconv>

#include "base/assert.hpp"

namespace pevledger {

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
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  PEV_ASSERT(ec == std::errc());
  out_.append(buf, end);
  after_value_ = true;
  return *this;
}

json_writer& json_writer::number_unsigned(std::uint64_t n) {
  before_value();
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  PEV_ASSERT(ec == std::errc());
  out_.append(buf, end);
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
  for (const char c : text) {
    switch (c) {
      case '"': out_.append("\\\""); break;
      case '\\': out_.append("\\\\"); break;
      case '\b': out_.append("\\b"); break;
      case '\f': out_.append("\\f"); break;
      case '\n': out_.append("\\n"); break;
      case '\r': out_.append("\\r"); break;
      case '\t': out_.append("\\t"); break;
      default: {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20) {
          out_.append("\\u00");
          out_.push_back(hex[u >> 4]);
          out_.push_back(hex[u & 0xf]);
        } else {
          out_.push_back(c);  // UTF-8 is kept as is, as nlohmann's dump() keeps it
        }
      }
    }
  }
  out_.push_back('"');
}

}  // namespace pevledger
