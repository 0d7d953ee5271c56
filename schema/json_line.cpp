#include "schema/json_line.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "base/assert.hpp"
#include "base/limits.hpp"
#include "schema/field_checks.hpp"

namespace pevledger::schema {
namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The length of the UTF-8 sequence at `s[i]` (RFC 3629, section 4), or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  auto in = [&](std::size_t k, unsigned char lo, unsigned char hi) { return k < s.size() && byte(k) >= lo && byte(k) <= hi; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return in(i + 1, 0x80, 0xBF) ? 2 : 0;
  if (b0 == 0xE0) return in(i + 1, 0xA0, 0xBF) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return in(i + 1, 0x80, 0xBF) && in(i + 2, 0x80, 0xBF) ? 3 : 0;
  if (b0 == 0xED) return in(i + 1, 0x80, 0x9F) && in(i + 2, 0x80, 0xBF) ? 3 : 0;  // no encoded surrogates
  if (b0 == 0xF0) return in(i + 1, 0x90, 0xBF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return in(i + 1, 0x80, 0xBF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  if (b0 == 0xF4) return in(i + 1, 0x80, 0x8F) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool json_line::read(std::string_view line) {
  in_ = line;
  pos_ = 0;
  nodes_.clear();
  open_.clear();
  unescaped_.clear();
  unescaped_.reserve(line.size());
  has_key_ = false;
  if (in_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
  if (!value()) return false;
  skip_space();
  return pos_ == in_.size();
}

void json_line::skip_space() {
  while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r')) ++pos_;
}

bool json_line::push(kind type) {
  if (nodes_.size() >= limits::command_line_bytes_max) return false;
  node n;
  n.type = type;
  n.next = static_cast<std::uint32_t>(nodes_.size() + 1);
  n.begin = static_cast<std::uint32_t>(has_key_ ? pending_key_begin_ : value_begin_);
  n.end = static_cast<std::uint32_t>(pos_);  // a container's end is set when it closes
  if (has_key_) n.key = pending_key_;
  has_key_ = false;
  if (!open_.empty()) ++nodes_[open_.back()].size;
  nodes_.push_back(n);
  return true;
}

// One value, containers included, without recursion: open containers are kept on `open_`.
bool json_line::value() {
  // Every pass of either loop consumes at least one byte, so the line's length bounds both.
  const std::size_t passes_max = in_.size() + 1;
  std::size_t passes = 0;
  // After '{' or ',' in an object: a member's name and its colon.
  auto member_name = [&]() -> bool {
    skip_space();
    pending_key_begin_ = pos_;
    if (pos_ >= in_.size() || in_[pos_] != '"' || !string_token(pending_key_)) return false;
    has_key_ = true;
    skip_space();
    if (pos_ >= in_.size() || in_[pos_] != ':') return false;
    ++pos_;
    return true;
  };
  auto close = [&] {
    nodes_[open_.back()].next = static_cast<std::uint32_t>(nodes_.size());
    nodes_[open_.back()].end = static_cast<std::uint32_t>(pos_);
    open_.pop_back();
  };
  for (;;) {
    PEV_ASSERT(++passes <= passes_max);
    skip_space();
    if (pos_ >= in_.size()) return false;
    value_begin_ = pos_;
    const char c = in_[pos_];
    if (c == '{' || c == '[') {
      if (open_.size() >= limits::command_line_bytes_max || !push(c == '{' ? kind::object : kind::array)) return false;
      open_.push_back(static_cast<std::uint32_t>(nodes_.size() - 1));
      ++pos_;
      skip_space();
      if (pos_ < in_.size() && in_[pos_] == (c == '{' ? '}' : ']')) {
        ++pos_;
        close();
      } else {
        if (c == '{' && !member_name()) return false;
        continue;  // the first member's or element's value
      }
    } else if (c == '"') {
      std::string_view text;
      if (!string_token(text) || !push(kind::string)) return false;
      nodes_.back().text = text;
    } else if (c == 't' || c == 'f') {
      if (!literal(c == 't' ? "true" : "false") || !push(kind::boolean)) return false;
      nodes_.back().boolean = c == 't';
    } else if (c == 'n') {
      if (!literal("null") || !push(kind::null)) return false;
    } else if (c == '-' || is_digit(c)) {
      if (!number()) return false;
    } else {
      return false;
    }
    // A value is complete: close what it completes, or go on to the next member or element.
    for (;;) {
      PEV_ASSERT(++passes <= passes_max);
      if (open_.empty()) return true;
      skip_space();
      if (pos_ >= in_.size()) return false;
      const bool in_object = nodes_[open_.back()].type == kind::object;
      const char d = in_[pos_];
      if (d == (in_object ? '}' : ']')) {
        ++pos_;
        close();
        continue;
      }
      if (d != ',') return false;
      ++pos_;
      if (in_object && !member_name()) return false;
      break;
    }
  }
}

bool json_line::literal(std::string_view word) {
  if (in_.substr(pos_, word.size()) != word) return false;
  pos_ += word.size();
  return true;
}

bool json_line::number() {
  const std::size_t start = pos_;
  const bool negative = in_[pos_] == '-';
  if (negative) ++pos_;
  if (pos_ >= in_.size() || !is_digit(in_[pos_])) return false;
  // Magnitude of the integer part, and whether it still fits (uint64, or int64 when negative).
  std::uint64_t magnitude = 0;
  bool fits = true;
  if (in_[pos_] == '0') {
    ++pos_;
  } else {
    while (pos_ < in_.size() && is_digit(in_[pos_])) {
      const auto digit = static_cast<std::uint64_t>(in_[pos_] - '0');
      if (magnitude > (UINT64_MAX - digit) / 10) fits = false;
      else magnitude = magnitude * 10 + digit;
      ++pos_;
    }
  }
  bool integer = true;
  if (pos_ < in_.size() && in_[pos_] == '.') {
    ++pos_;
    if (pos_ >= in_.size() || !is_digit(in_[pos_])) return false;
    while (pos_ < in_.size() && is_digit(in_[pos_])) ++pos_;
    integer = false;
  }
  if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
    if (pos_ >= in_.size() || !is_digit(in_[pos_])) return false;
    while (pos_ < in_.size() && is_digit(in_[pos_])) ++pos_;
    integer = false;
  }
  constexpr std::uint64_t int64_magnitude_max = std::uint64_t{1} << 63;  // of a negative int64
  if (negative && magnitude > int64_magnitude_max) fits = false;
  if (!integer || !fits) {
    // As nlohmann does, a number too large for any floating-point value is not JSON it reads (the
    // value is only tested, never kept: a command's numbers are integers).
    const std::string token(in_.substr(start, pos_ - start));
    if (!std::isfinite(std::strtod(token.c_str(), nullptr))) return false;
    return push(kind::number_not_integer);
  }
  if (!push(negative ? kind::integer : kind::unsigned_integer)) return false;
  if (negative) nodes_.back().integer = magnitude == int64_magnitude_max ? INT64_MIN : -static_cast<std::int64_t>(magnitude);
  else nodes_.back().unsigned_integer = magnitude;
  return true;
}

// The string starting at in_[pos_] (a '"'); a view into the line unless it holds escapes.
bool json_line::string_token(std::string_view& out) {
  PEV_ASSERT(in_[pos_] == '"');
  const std::size_t start = ++pos_;
  std::size_t escaped_from = std::string::npos;  // where unescaped_ took over this string
  const std::size_t capacity = unescaped_.capacity();
  while (pos_ < in_.size()) {
    const auto b = static_cast<unsigned char>(in_[pos_]);
    if (b == '"') {
      if (escaped_from == std::string::npos) {
        out = in_.substr(start, pos_ - start);
      } else {
        PEV_ASSERT(unescaped_.capacity() == capacity);  // earlier views into unescaped_ stay valid
        out = std::string_view(unescaped_).substr(escaped_from);
      }
      ++pos_;
      return true;
    }
    if (b < 0x20) return false;
    if (b >= 0x80) {
      const std::size_t n = utf8_sequence(in_, pos_);
      if (n == 0) return false;
      if (escaped_from != std::string::npos) unescaped_.append(in_.substr(pos_, n));
      pos_ += n;
      continue;
    }
    if (b != '\\') {
      if (escaped_from != std::string::npos) unescaped_.push_back(static_cast<char>(b));
      ++pos_;
      continue;
    }
    if (escaped_from == std::string::npos) {
      escaped_from = unescaped_.size();
      unescaped_.append(in_.substr(start, pos_ - start));
    }
    if (++pos_ >= in_.size()) return false;
    const char e = in_[pos_++];
    switch (e) {
      case '"': unescaped_.push_back('"'); break;
      case '\\': unescaped_.push_back('\\'); break;
      case '/': unescaped_.push_back('/'); break;
      case 'b': unescaped_.push_back('\b'); break;
      case 'f': unescaped_.push_back('\f'); break;
      case 'n': unescaped_.push_back('\n'); break;
      case 'r': unescaped_.push_back('\r'); break;
      case 't': unescaped_.push_back('\t'); break;
      case 'u': {
        auto hex4 = [&](std::uint32_t& v) {
          if (pos_ + 4 > in_.size()) return false;
          v = 0;
          for (int k = 0; k < 4; ++k) {
            const int h = hex_value(in_[pos_ + k]);
            if (h < 0) return false;
            v = v * 16 + static_cast<std::uint32_t>(h);
          }
          pos_ += 4;
          return true;
        };
        std::uint32_t cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a low surrogate alone
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          std::uint32_t low = 0;
          if (in_.substr(pos_, 2) != "\\u") return false;
          pos_ += 2;
          if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(unescaped_, cp);
        break;
      }
      default:
        return false;
    }
  }
  return false;  // no closing quote
}

std::uint32_t json_line::member(std::uint32_t object, std::string_view name) const {
  std::uint32_t found = none;
  for (std::uint32_t i = object + 1; i < nodes_[object].next; i = nodes_[i].next)
    if (nodes_[i].key == name) found = i;
  return found;
}

void json_line::members_by_name(std::uint32_t object, std::vector<std::uint32_t>& out) const {
  out.clear();
  for (std::uint32_t i = object + 1; i < nodes_[object].next; i = nodes_[i].next) out.push_back(i);
  std::stable_sort(out.begin(), out.end(), [&](std::uint32_t a, std::uint32_t b) { return nodes_[a].key < nodes_[b].key; });
  std::size_t kept = 0;
  for (std::size_t k = 0; k < out.size(); ++k)
    if (k + 1 == out.size() || nodes_[out[k + 1]].key != nodes_[out[k]].key) out[kept++] = out[k];
  out.resize(kept);
}

}  // namespace pevledger::schema
