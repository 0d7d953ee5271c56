#pragma once
// The name of a stream of the log, built and split here and nowhere else: "kind/id" for an
// entity ("account/a1", "session/s7"; the kinds are entity_table kinds), or "clearinghouse" for
// the clearinghouse's book, which has no id. Identifiers never hold a NUL or a control character
// (the command parser refuses them), and a kind never holds a '/', so the first '/' splits.

#include <string>
#include <string_view>

namespace pevledger::core {

namespace stream_kind {
inline constexpr std::string_view utility = "utility";
inline constexpr std::string_view account = "account";
inline constexpr std::string_view premise = "premise";
inline constexpr std::string_view device = "device";
inline constexpr std::string_view pev = "pev";
inline constexpr std::string_view registry = "registry";
inline constexpr std::string_view card = "card";
inline constexpr std::string_view phone = "phone";
inline constexpr std::string_view session = "session";
inline constexpr std::string_view clearinghouse = "clearinghouse";
}  // namespace stream_kind

struct stream_name {
  std::string_view kind;  // one of stream_kind
  std::string_view id;    // empty for the clearinghouse

  // The parts of a stream's name, as views into `text`.
  [[nodiscard]] static stream_name split(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return {text, {}};
    return {text.substr(0, slash), text.substr(slash + 1)};
  }
  // The name as the log stores it.
  [[nodiscard]] std::string text() const {
    if (kind == stream_kind::clearinghouse) return std::string(kind);
    std::string out;
    out.reserve(kind.size() + 1 + id.size());
    out += kind;
    out += '/';
    out += id;
    return out;
  }
};

[[nodiscard]] inline std::string stream_of(std::string_view kind, std::string_view id) {
  return stream_name{kind, id}.text();
}

}  // namespace pevledger::core
