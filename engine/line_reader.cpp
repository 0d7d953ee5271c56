#include "engine/line_reader.hpp"

#include <cstring>

namespace pevledger::engine_detail {

namespace {
constexpr std::size_t chunk_bytes = 1u << 20;
}

line_reader::line_reader(std::istream& in, std::size_t line_bytes_max)
    : in_(in), line_bytes_max_(line_bytes_max), buffer_(chunk_bytes) {}

bool line_reader::fill() {
  if (eof_) return false;
  in_.read(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  begin_ = 0;
  end_ = static_cast<std::size_t>(in_.gcount());
  if (end_ == 0) eof_ = true;
  return end_ > 0;
}

bool line_reader::next(std::string& line, bool& too_long) {
  line.clear();
  too_long = false;
  bool any = false;
  for (;;) {
    if (begin_ == end_ && !fill()) return any;
    any = true;
    const char* start = buffer_.data() + begin_;
    const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - begin_));
    const std::size_t take = newline != nullptr ? static_cast<std::size_t>(newline - start) : end_ - begin_;
    // Keep one byte past the limit so that "over the limit" is visible; drop the rest.
    const std::size_t room = line.size() <= line_bytes_max_ ? line_bytes_max_ + 1 - line.size() : 0;
    line.append(start, take < room ? take : room);
    if (take > room) too_long = true;
    begin_ += take;
    if (newline != nullptr) {
      ++begin_;
      break;
    }
  }
  if (line.size() > line_bytes_max_) too_long = true;
  return true;
}

}  // namespace pevledger::engine_detail
