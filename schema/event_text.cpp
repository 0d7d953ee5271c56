#include "schema/event_text.hpp"

#include <flatbuffers/idl.h>

namespace pevledger::schema {

extern const std::string_view commands_fbs_text;
extern const std::string_view events_fbs_text;

struct event_printer::impl {
  flatbuffers::Parser fb;
  static flatbuffers::IDLOptions options() {
    flatbuffers::IDLOptions o;
    o.strict_json = true;
    o.indent_step = -1;  // one line
    o.output_default_scalars_in_json = true;
    return o;
  }
  impl() : fb(options()) {}
};

event_printer::event_printer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
event_printer::~event_printer() = default;

result<std::unique_ptr<event_printer>> event_printer::create() {
  auto p = std::make_unique<impl>();
  // One text: the commands schema, then the events schema without its include line.
  std::string events(events_fbs_text);
  const std::string include_line = "include \"commands.fbs\";";
  const auto at = events.find(include_line);
  PEV_ASSERT(at != std::string::npos);
  events.erase(at, include_line.size());
  const std::string text = std::string(commands_fbs_text) + "\n" + events;
  if (!p->fb.Parse(text.c_str(), nullptr, "events.fbs"))
    return status(errc::corruption, "embedded events schema does not parse: " + p->fb.error_);
  if (!p->fb.SetRootType("EventBody")) return status(errc::corruption, "events schema has no EventBody");
  return std::unique_ptr<event_printer>(new event_printer(std::move(p)));
}

result<std::string> event_printer::body_json(std::span<const std::uint8_t> body) const {
  std::string out;
  if (!flatbuffers::GenerateText(impl_->fb, body.data(), &out))
    return status(errc::corruption, "event body cannot be printed");
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace pevledger::schema
