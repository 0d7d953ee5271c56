#pragma once
// A small scenario DSL for domain tests: command lines written with helpers, ingested through the
// engine, and the JSON answers parsed. Expected amounts are computed by hand in each test.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "pevledger/engine.hpp"
#include "tests/test_support.hpp"

namespace pevledger::testing {

using json = nlohmann::json;

class scenario {
 public:
  explicit scenario(std::size_t group_lines = 4096,
                    std::size_t resident_entities_max = engine_options{}.resident_entities_max) {
    options_.group_lines = group_lines;
    options_.resident_entities_max = resident_entities_max;
    reopen();
  }

  // Closes the engine and opens the database again: what is not durable is gone, the rest comes
  // back from the log (snapshots plus tails).
  void reopen() {
    engine_.reset();
    auto e = engine::open(dir_.file("db"), options_);
    if (!e) throw std::runtime_error(e.error().describe());
    engine_ = std::move(e.value());
  }

  // Closes the engine, so that another process may open the database.
  void close() { engine_.reset(); }

  // One command line; `fields` is the JSON body after type, id and at (without braces).
  scenario& cmd(const std::string& type, const std::string& at, const std::string& fields) {
    lines_.push_back(R"({"type":")" + type + R"(","id":"c)" + std::to_string(++next_id_) + R"(","at":")" + at +
                     "\"" + (fields.empty() ? "" : "," + fields) + "}");
    return *this;
  }
  scenario& raw(const std::string& line) {
    lines_.push_back(line);
    return *this;
  }

  // Ingests the pending lines; returns the refusals (codes) in order.
  std::vector<line_refusal> run() {
    std::string text;
    for (const auto& l : lines_) text += l + "\n";
    lines_.clear();
    std::vector<line_refusal> refusals;
    std::istringstream in(text);
    auto s = engine_->ingest(in, [&](const line_refusal& r) { refusals.push_back(r); });
    if (!s) throw std::runtime_error(s.error().describe());
    last_ = s.value();
    return refusals;
  }
  // Ingests and expects no refusal.
  void run_ok() {
    const auto refusals = run();
    for (const auto& r : refusals)
      ADD_FAILURE() << "line refused: " << to_string(r.error) << " " << r.message << " (id "
                    << r.id.value_or("?") << ")";
  }
  // Ingests and expects exactly one refusal with this code.
  void run_refused(errc code) {
    const auto refusals = run();
    ASSERT_EQ(refusals.size(), 1u);
    EXPECT_EQ(refusals[0].error, code) << refusals[0].message;
  }
  [[nodiscard]] const ingest_summary& summary() const { return last_; }

  json bill(const std::string& account, const std::string& period) { return parse(engine_->bill(account, period)); }
  json balance(const std::string& account) { return parse(engine_->balance(account)); }
  json settlement(const std::string& period) { return parse(engine_->settlement(period)); }
  json session(const std::string& id) { return parse(engine_->session(id)); }
  engine& eng() { return *engine_; }
  const temp_dir& dir() const { return dir_; }

 private:
  static json parse(const result<std::string>& r) {
    if (!r) throw std::runtime_error(r.error().describe());
    return json::parse(r.value());
  }
  temp_dir dir_;
  std::unique_ptr<engine> engine_;
  std::vector<std::string> lines_;
  int next_id_ = 0;
  ingest_summary last_;
  engine_options options_;
};

// A JSON string literal for an identifier (test identifiers need no escaping).
inline std::string q(const std::string& s) { return "\"" + s + "\""; }

// Sum of a bill's lines matching kind (and session, when given).
inline std::int64_t amount_of(const json& bill, const std::string& kind, const std::string& session = "") {
  std::int64_t total = 0;
  for (const auto& l : bill["lines"])
    if (l["kind"] == kind && (session.empty() || l["session"] == session)) total += l["amount_micro"].get<std::int64_t>();
  return total;
}
inline std::int64_t wh_of(const json& bill, const std::string& kind, const std::string& session = "") {
  std::int64_t total = 0;
  for (const auto& l : bill["lines"])
    if (l["kind"] == kind && (session.empty() || l["session"] == session)) total += l["wh"].get<std::int64_t>();
  return total;
}

}  // namespace pevledger::testing
