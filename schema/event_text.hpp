#pragma once
// Events as JSON text, for export and for people: flatbuffers' own text generator driven by the
// embedded schema, so every field of every event appears without hand-written mapping.

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/status.hpp"

namespace pevledger::schema {

class event_printer {
 public:
  [[nodiscard]] static result<std::unique_ptr<event_printer>> create();
  ~event_printer();
  event_printer(const event_printer&) = delete;
  event_printer& operator=(const event_printer&) = delete;

  // A verified EventBody buffer as one line of JSON: {"event_type":"...","event":{...}}.
  [[nodiscard]] result<std::string> body_json(std::span<const std::uint8_t> body) const;

 private:
  struct impl;
  explicit event_printer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace pevledger::schema
