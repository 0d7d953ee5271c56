#pragma once
// Reads physical lines from a stream with a bounded buffer: a line longer than the limit is
// consumed to its end but kept only as "too long", so no input can make memory grow past it.

#include <cstddef>
#include <istream>
#include <string>
#include <vector>

namespace pevledger::engine_detail {

class line_reader {
 public:
  line_reader(std::istream& in, std::size_t line_bytes_max);

  // The next line without its '\n'; false at the end of input. `too_long` says the line had more
  // than line_bytes_max bytes (then `line` holds only its first bytes).
  bool next(std::string& line, bool& too_long);
  // Whether a whole line is buffered, so that `next` returns it without waiting for the source.
  [[nodiscard]] bool has_buffered() const;

 private:
  bool fill();

  std::istream& in_;
  std::size_t line_bytes_max_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
};

}  // namespace pevledger::engine_detail
