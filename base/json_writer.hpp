#pragma once
// Compact JSON text written straight into a string, in the order it is given.
//
// It gives the bytes nlohmann's dump() gives for the same document (no spaces, the same string
// escapes, UTF-8 kept as is) without building a document first. The projections rendered on every
// group commit (a session's report, an account's balance, a bill) went through a tree of nlohmann
// nodes, and at fleet scale that tree was a quarter of the ingest thread's time
// (docs/performance.md).
//
// Callers keep the document well formed (a key before each value in an object, every container
// closed); the depth and the balance are checked by assertions, since only a bug breaks them.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pevledger {

class json_writer {
 public:
  // Containers nest at most this deep: the projections need three.
  static constexpr std::size_t depth_max = 16;

  // Reserves the expected size up front: one allocation instead of one per doubling.
  explicit json_writer(std::size_t expected_bytes = 256) { out_.reserve(expected_bytes); }

  json_writer& begin_object();
  json_writer& end_object();
  json_writer& begin_array();
  json_writer& end_array();
  json_writer& key(std::string_view name);
  json_writer& string(std::string_view text);
  json_writer& number(std::int64_t n);
  json_writer& number_unsigned(std::uint64_t n);
  json_writer& boolean(bool b);
  json_writer& null();

  // The document; every container must be closed.
  [[nodiscard]] std::string take();

 private:
  void before_value();
  void append_escaped(std::string_view text);

  std::string out_;
  std::size_t depth_ = 0;
  bool after_value_ = false;  // the next key or value needs a comma before it
};

}  // namespace pevledger
