#include "engine/parse_ahead.hpp"

#include "core/snapshot_codec.hpp"
#include "base/limits.hpp"
#include "base/time.hpp"
#include "engine/line_reader.hpp"
#include "engine/residency.hpp"

namespace pevledger::engine_detail {

parse_ahead::parse_ahead(std::istream& in, schema::command_parser& parser, lookahead_source lookups)
    : lookups_(lookups), reader_([this, &in, &parser] { run(in, parser); }) {}

parse_ahead::~parse_ahead() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  reader_.join();
}

bool prepared_lines::next(std::vector<parsed_line>& chunk) {
  chunk.clear();
  for (; next_ < lines_.size() && chunk.size() < chunk_lines_max; ++next_) chunk.push_back(std::move(lines_[next_]));
  return !chunk.empty();
}

bool parse_ahead::next(std::vector<parsed_line>& chunk) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || done_; });
  if (ready_.empty()) return false;
  chunk = std::move(ready_.front());
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  return true;
}

void parse_ahead::look_up(std::vector<parsed_line>& chunk) const {
  if (lookups_.log == nullptr) return;
  // Read before the lookups: every group counted here was readable when they were made.
  const std::uint64_t durable = lookups_.durable_groups->load(std::memory_order_acquire);
  for (parsed_line& line : chunk) {
    line.lookup.durable_groups = durable;
    if (!line.command) continue;
    auto known = lookups_.log->find_command(line.command->id);
    if (!known) continue;
    line_lookup found = line.lookup;
    found.id_durable = known->has_value();
    if (line.command->kind == schema::command_kind::meter_interval) {
      const auto* m = line.command->as<schema::MeterInterval>();
      const auto start = parse_timestamp(m->start()->string_view());
      if (!start) continue;
      auto stored = lookups_.log->get_interval(interval_key(m->device()->string_view(), start->value()));
      if (!stored) continue;
      if (stored->has_value()) {
        core::interval_content content;
        if (!core::decode_snapshot(**stored, content).is_ok()) continue;  // the sequencer reports it
        found.interval = std::move(content);
      }
      found.interval_start = start->value();
      found.interval_looked_up = true;
    }
    found.done = true;
    line.lookup = std::move(found);
  }
}

bool parse_ahead::hand_over(std::vector<parsed_line>& chunk) {
  look_up(chunk);
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return ready_.size() < chunks_max || stop_; });
  if (stop_) return false;
  ready_.push_back(std::move(chunk));
  chunk.clear();
  lock.unlock();
  changed_.notify_all();
  return true;
}

void parse_ahead::run(std::istream& in, schema::command_parser& parser) {
  line_reader reader(in, limits::command_line_bytes_max);
  std::vector<parsed_line> chunk;
  std::string line;
  bool too_long = false;
  bool stopped = false;
  schema::parse_failure failure;
  for (std::uint64_t line_no = 1; reader.next(line, too_long); ++line_no) {
    if (too_long) {
      chunk.push_back({line_no, std::nullopt,
                       status(errc::line_too_long,
                              "line is over " + std::to_string(limits::command_line_bytes_max) + " bytes"),
                       std::nullopt});
    } else if (!schema::command_parser::is_blank(line)) {
      std::optional<schema::command> command = parser.parse(line, failure);
      if (command)
        chunk.push_back({line_no, std::move(command), status::ok(), std::nullopt});
      else
        chunk.push_back({line_no, std::nullopt, std::move(failure.error), std::move(failure.id)});
    }
    if (!chunk.empty() && (chunk.size() >= chunk_lines_max || !reader.has_buffered()) && !hand_over(chunk)) {
      stopped = true;
      break;
    }
  }
  if (!stopped && !chunk.empty()) hand_over(chunk);
  {
    std::lock_guard lock(mutex_);
    done_ = true;
    input_failed_ = in.bad();
  }
  changed_.notify_all();
}

}  // namespace pevledger::engine_detail
