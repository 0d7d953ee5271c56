#pragma once
// One command line's JSON, read without a DOM (internal to schema/; the command parser's first pass).
//
// The parser only needs to know what a line holds in order to check it against commands.fbs and to
// refuse it with the right code; flatbuffers' own JSON parser then builds the table. This reader
// validates the line as strict JSON (RFC 8259, UTF-8 as RFC 3629: no overlong forms, no encoded
// surrogates; a leading byte order mark is skipped, as nlohmann does; unlike nlohmann, a NUL byte
// does not end the line: `{...}` NUL `...` is not JSON) and records every value as a
// node in document order: an object's members, or an array's elements, are the nodes that follow
// it up to its `next`. A string without escapes is a view into the line itself; escaped ones are
// unescaped into a buffer reserved to the line's size, which they cannot outgrow. Numbers are
// classified as nlohmann classifies them: an integer that fits int64 (negative) or uint64
// (otherwise), else a number that is not an integer (refused, as by nlohmann, when no floating-point
// value can hold it; its value is not kept).
//
// The views stay valid until the next read() and while the line itself lives. Reused line after
// line, a read allocates nothing once its buffers have grown to the longest line.
// Bounds: at most limits::command_line_bytes_max nodes and as many levels of nesting.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pevledger::schema {

class json_line {
 public:
  enum class kind : std::uint8_t { null, boolean, integer, unsigned_integer, number_not_integer, string, array, object };
  struct node {
    kind type = kind::null;
    bool boolean = false;
    std::uint32_t next = 0;  // the index just past this value and everything inside it
    std::uint32_t size = 0;  // members of an object, elements of an array
    std::int64_t integer = 0;
    std::uint64_t unsigned_integer = 0;
    std::string_view key;   // the member's name, for a member of an object
    std::string_view text;  // a string's value
    // Where the value's text lies in the line, [begin, end); for a member of an object from the
    // opening quote of its name, so that the span is the whole `"name": value`.
    std::uint32_t begin = 0, end = 0;
  };
  static constexpr std::uint32_t none = UINT32_MAX;

  // Reads `line`; false when it is not valid JSON (or not valid UTF-8). Node 0 is the root.
  [[nodiscard]] bool read(std::string_view line);

  [[nodiscard]] const node& at(std::uint32_t i) const { return nodes_[i]; }
  [[nodiscard]] std::uint32_t node_count() const { return static_cast<std::uint32_t>(nodes_.size()); }

  // The value of member `name` of the object at `object`; the last one when the name repeats (as
  // an object read into a map keeps it). `none` when absent.
  [[nodiscard]] std::uint32_t member(std::uint32_t object, std::string_view name) const;
  // The members of the object at `object` in name order, each name once (its last value).
  void members_by_name(std::uint32_t object, std::vector<std::uint32_t>& out) const;

 private:
  bool value();
  bool string_token(std::string_view& out);
  bool number();
  bool literal(std::string_view word);
  bool push(kind type);
  void skip_space();

  std::string_view in_;
  std::size_t pos_ = 0;
  std::vector<node> nodes_;
  std::vector<std::uint32_t> open_;  // the objects and arrays not yet closed, outermost first
  std::string unescaped_;
  std::string_view pending_key_;
  std::size_t pending_key_begin_ = 0;
  std::size_t value_begin_ = 0;
  bool has_key_ = false;
};

}  // namespace pevledger::schema
