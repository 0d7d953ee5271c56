#include "engine/line_reader.hpp"

#include <algorithm>

#include <cstring>

namespace pevledger::engine_detail {

namespace {
constexpr std::size_t chunk_bytes = 1u << 20;
}

line_reader::line_reader(std::istream& in, std::size_t line_bytes_max)
    : in_(in), line_bytes_max_(line_bytes_max), buffer_(chunk_bytes) {}

bool line_reader::fill() {
  if (eof_) return false;
  // Take what the stream has buffered, and block only when it has nothing: a line that has arrived
  // on a pipe is processed now, not when a whole chunk has (istream::read would wait for one).
  std::streambuf* source = in_.rdbuf();
  std::streamsize available = source->in_avail();
  if (available <= 0) {
    if (std::istream::traits_type::eq_int_type(source->sgetc(), std::istream::traits_type::eof())) {
      eof_ = true;
      begin_ = end_ = 0;
      return false;
    }
    available = std::max<std::streamsize>(source->in_avail(), 1);
  }
  const std::streamsize got =
      source->sgetn(buffer_.data(), std::min<std::streamsize>(available, static_cast<std::streamsize>(buffer_.size())));
  begin_ = 0;
  end_ = static_cast<std::size_t>(std::max<std::streamsize>(got, 0));
  if (end_ == 0) eof_ = true;
  return end_ > 0;
}

bool line_reader::has_buffered() const {
  return begin_ < end_ && std::memchr(buffer_.data() + begin_, '\n', end_ - begin_) != nullptr;
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
