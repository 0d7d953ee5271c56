#include "pevledger/engine.hpp"

#include <atomic>
#include <chrono>
#include <deque>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>
#include <span>
#include <unordered_set>

#include "core/apply.hpp"
#include "actors/entity_actors.hpp"
#include "core/decide.hpp"
#include "core/prefetch.hpp"
#include "core/stream_name.hpp"
#include "core/projections.hpp"
#include "actors/recovery.hpp"
#include "base/limits.hpp"
#include "base/time.hpp"
#include "engine/parse_ahead.hpp"
#include "engine/record_batcher.hpp"
#include "engine/residency.hpp"
#include "engine/typed_commands.hpp"
#include "schema/command_parser.hpp"
#include "schema/event_text.hpp"
#include "schema/interval_batch.hpp"
#include "storage/event_log.hpp"

namespace pevledger {
namespace {

namespace fb = pevledger::schema;

// Group commits in flight while the next group is decided: one being written, one being filled.
constexpr std::size_t groups_in_flight_max = 2;

// A group of decided lines on its way to the log.
struct group_in_flight {
  std::future<result<storage::append_receipt>> done;
  std::vector<std::string> ids;  // command ids the group takes
  std::uint64_t lines_through = 0;
  std::uint64_t number = 0;
};

// Prefetch rounds of one command against a paged state (core/prefetch.hpp): each activates what
// the one before missed, so a command needs as many as the chain it reads is long (an interval:
// its session, its identity, its neighbours and the session's premise, the premise's account).
constexpr int prefetch_rounds_max = 16;

// The grant recorded for the energy request of command `id`, if it is durable and was granted.
result<std::optional<core::device_answer::energy_grant>> grant_recorded_for(const storage::event_log& log,
                                                                            std::string_view id) {
  auto known = log.find_command(id);
  if (!known) return known.error();
  if (!known->has_value()) return std::optional<core::device_answer::energy_grant>();
  const storage::command_outcome& where = **known;
  for (std::uint32_t i = 0; i < where.events; ++i) {  // an energy request records one event
    auto record = log.read(log_seq(where.first.value() + i));
    if (!record) return record.error();
    if (const auto* g = record->body().event_as_EnergyGranted())
      return std::optional(core::device_answer::energy_grant{g->session()->str(), g->wh(), unix_seconds(g->start()),
                                                             unix_seconds(g->depart()), g->price_micro_per_kwh()});
  }
  return std::optional<core::device_answer::energy_grant>();
}

}  // namespace

struct engine::impl {
  engine_options options;
  std::unique_ptr<storage::event_log> log;
  std::unique_ptr<fb::command_parser> parser;
  std::unique_ptr<engine_detail::residency> resident;
  bool opened = false;
  // The actors that host entities with their durable state (actors/entity_actors.hpp). Declared
  // after the log: they read it, so they stop first.
  std::unique_ptr<caf::actor_system_config> actor_config;
  std::unique_ptr<caf::actor_system> actor_system;
  actors::directory_actor directory;

  ~impl() {
    if (actor_system) {
      caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
      directory = nullptr;
      actor_system.reset();  // waits for every actor
    }
  }

  // What became of each line of an ingest, when a caller (submit) wants to know line by line.
  // A line's outcome, and for an accepted one what a device waits to hear.
  std::function<void(std::uint64_t line, command_outcome::kind, const core::device_answer*)> on_outcome;

  void start_actors() {
    actor_config = std::make_unique<caf::actor_system_config>();
    actor_config->set("scheduler.max-threads", options.actor_threads);
    actor_system = std::make_unique<caf::actor_system>(*actor_config);
    directory = actor_system->spawn(actors::directory_behavior, log.get(), options.live_entity_actors_max);
  }

  // The projection `what` of the entity of `stream`, from its actor: what is durable. "" when the
  // entity does not exist.
  result<std::string> ask_entity(const std::string& stream, const std::string& what) {
    if (!actor_system) {
      // A read-only engine has no actors: it recovers the entity as an actor would, on this thread.
      core::ledger_state one;
      auto recovered = actors::recover_entity(*log, stream, one);
      if (!recovered) return recovered.error();
      return core::render_projection(one, stream, what);
    }
    caf::scoped_actor self{*actor_system};
    result<std::string> out = status(errc::io_error, "no answer from the actor of '" + stream + "'");
    self->request(directory, caf::infinite, actors::render_atom::value, stream, what)
        .receive([&](const std::string& json) { out = json; },
                 [&](const caf::error& e) {
                   out = status(errc::io_error, "actor of '" + stream + "': " + actor_system->render(e));
                 });
    return out;
  }
  std::uint64_t groups = 0;

  [[nodiscard]] core::ledger_state& state() { return resident->state(); }

  // Recovery: utilities and the clearinghouse come back from their snapshots plus tails; every
  // other entity comes back when a command or a query needs it.
  status open_state() {
    if (opened) return status::ok();
    PEV_RETURN_IF_ERROR(resident->open());
    opened = true;
    return status::ok();
  }
  // Forgets everything in memory; the next use recovers from the log.
  void discard_state() {
    resident = std::make_unique<engine_detail::residency>(*log, residency_options());
    opened = false;
  }
  [[nodiscard]] engine_detail::residency_options residency_options() const {
    engine_detail::residency_options r;
    r.resident_max = options.resident_entities_max;
    r.interval_cache_max = options.interval_identities_known_max;
    return r;
  }

  // Decides `cmd` once everything it reads is resident: prefetch states what that is, round by
  // round, and the residency activates it (or proves it absent).
  result<core::decision> decide(const fb::command& cmd) {
    if (cmd.kind == fb::command_kind::utility_register)
      resident->look_up_zone(cmd.as<fb::UtilityRegister>()->timezone()->string_view());
    return decide_resident([&] { core::prefetch(state(), cmd); }, [&] { return core::decide(state(), cmd); });
  }
  // Reading `index` of an admitted interval batch, on the state the readings before it left.
  result<core::decision> decide_reading(const fb::command& batch, std::size_t index) {
    return decide_resident([&] { core::prefetch_reading(state(), batch, index); },
                           [&] { return core::decide_reading(state(), batch, index); });
  }
  template <class Prefetch, class Decide>
  result<core::decision> decide_resident(const Prefetch& prefetch, const Decide& decide) {
    for (int round = 0;; ++round) {
      PEV_ASSERT(round < prefetch_rounds_max && "a command read a chain longer than prefetch_rounds_max");
      prefetch();
      if (!resident->has_misses()) break;
      PEV_RETURN_IF_ERROR(resident->resolve_misses());
    }
    core::decision d = decide();
    PEV_ASSERT(!resident->has_misses() && "decide read an entity or interval that prefetch did not state");
    return d;
  }

  // Decides the lines `open_lines` hands over, in order, in group commits (engine::ingest).
  using line_source_factory =
      std::function<std::unique_ptr<engine_detail::line_source>(engine_detail::lookahead_source)>;
  result<ingest_summary> sequence(const line_source_factory& open_lines,
                                  const std::function<void(const line_refusal&)>& on_refusal,
                                  const std::function<void(std::uint64_t)>& on_durable);
  // What became of each of `count` lines `open_lines` hands over (engine::submit and the batches).
  result<std::vector<command_outcome>> outcomes(std::size_t count, const line_source_factory& open_lines);
  // The outcomes of `count` command lines, each ended by a line break, in `text`.
  result<std::vector<command_outcome>> outcomes_of_lines(std::size_t count, std::string text);

  // An account made resident for a query, or nullptr when there is none.
  result<const core::account_state*> account_for_query(const std::string& id) {
    resident->trim();
    PEV_RETURN_IF_ERROR(resident->ensure_resident(core::stream_of(core::stream_kind::account, id)));
    auto* slot = state().accounts.resident(id);
    return slot == nullptr ? nullptr : &slot->state;
  }

};

engine::engine(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
engine::~engine() = default;

result<std::unique_ptr<engine>> engine::open(const std::string& dir, engine_options options) {
  if (options.group_lines < 1 || options.group_lines > limits::ingest_group_lines_max)
    return status(errc::usage, "group_lines must be 1 to " + std::to_string(limits::ingest_group_lines_max));
  if (options.resident_entities_max < 1) return status(errc::usage, "resident_entities_max must be at least 1");
  if (options.live_entity_actors_max < 1) return status(errc::usage, "live_entity_actors_max must be at least 1");
  if (options.interval_identities_known_max < 1)
    return status(errc::usage, "interval_identities_known_max must be at least 1");
  if (options.actor_threads < 1 || options.actor_threads > 64)
    return status(errc::usage, "actor_threads must be 1 to 64");
  if (options.block_cache_bytes < limits::log_block_cache_bytes_min)
    return status(errc::usage, "block_cache_bytes must be at least " + std::to_string(limits::log_block_cache_bytes_min));
  auto p = std::make_unique<impl>();
  p->options = options;
  storage::log_options log_options;
  log_options.access = options.read_only ? storage::log_access::read_only : storage::log_access::read_write;
  log_options.sync = options.sync;
  log_options.create_if_missing = options.create_if_missing;
  log_options.follow_writer = options.follow_writer;
  log_options.block_cache_bytes = options.block_cache_bytes;
  auto log = storage::event_log::open(dir, log_options);
  if (!log) return log.error();
  p->log = std::move(log.value());
  auto parser = fb::command_parser::create();
  if (!parser) return parser.error();
  p->parser = std::move(parser.value());
  p->discard_state();
  if (!options.read_only) p->start_actors();
  return std::unique_ptr<engine>(new engine(std::move(p)));
}

std::string_view log_format_written() { return storage::log_format_written(); }

const char* library_version() noexcept { return PEVLEDGER_LIBRARY_VERSION; }

result<std::string> engine::upgrade(const std::string& dir) {
  std::string held;
  {
    storage::log_options reader;
    reader.access = storage::log_access::read_only;
    auto log = storage::event_log::open(dir, reader);
    if (!log) return log.error();
    held = log.value()->format();
  }
  if (held == storage::log_format_written()) return held;
  storage::log_options writer;
  writer.create_if_missing = false;
  writer.upgrade_format = true;
  auto log = storage::event_log::open(dir, writer);
  if (!log) return log.error();
  return held;
}

result<ingest_summary> engine::ingest(std::istream& in, const std::function<void(const line_refusal&)>& on_refusal,
                                      const std::function<void(std::uint64_t)>& on_durable) {
  impl& m = *impl_;
  return m.sequence(
      [&](engine_detail::lookahead_source lookups) {
        return std::make_unique<engine_detail::parse_ahead>(in, *m.parser, lookups);
      },
      on_refusal, on_durable);
}

result<ingest_summary> engine::impl::sequence(const line_source_factory& open_lines,
                                              const std::function<void(const line_refusal&)>& on_refusal,
                                              const std::function<void(std::uint64_t)>& on_durable) {
  impl& m = *this;
  if (m.log->read_only()) return status(errc::log_closed, "this engine was opened read-only");
  PEV_RETURN_IF_ERROR(m.open_state());
  ingest_summary summary;
  std::deque<group_in_flight> in_flight;
  // Ids taken and not yet durable, or durable but maybe not yet seen by the reader's lookups.
  std::unordered_set<std::string> ids_in_flight;
  // Groups durable, whose ids stay in ids_in_flight until a line's lookup was made after them.
  // Bounded by the groups that can complete while the reader's chunks wait (parse_ahead.hpp), or
  // by the call's own lines when they were read before (prepared_lines).
  struct durable_ids {
    std::uint64_t group;
    std::vector<std::string> ids;
  };
  std::deque<durable_ids> ids_leaving;
  // Every group up to this number is durable (and readable); the reader's lookups are as of it.
  std::atomic<std::uint64_t> durable_groups{m.groups};
  // Interval identities were forgotten when every group up to this one was durable: a lookup
  // made before then may miss an interval that was recorded and forgotten.
  std::uint64_t intervals_forgotten_through = 0;

  storage::append_batch batch;
  engine_detail::record_batcher batcher;
  // The residency counts records per stream, so that its snapshots name stream positions.
  const engine_detail::record_batcher::on_record record_added = [&](std::string_view stream) {
    return m.resident->applied(stream);
  };
  std::vector<std::string> batch_ids;
  std::size_t batch_lines = 0;
  std::chrono::steady_clock::time_point group_opened;
  std::uint64_t line_no = 0;

  auto wait_oldest = [&]() -> status {
    group_in_flight g = std::move(in_flight.front());
    in_flight.pop_front();
    auto receipt = g.done.get();
    if (!receipt) return receipt.error();
    ids_leaving.push_back({g.number, std::move(g.ids)});
    durable_groups.store(g.number, std::memory_order_release);
    m.resident->group_durable(g.number);
    caf::anon_send(m.directory, actors::durable_atom::value, receipt->first.value(), receipt->last.value());
    if (on_durable) on_durable(g.lines_through);
    return status::ok();
  };
  auto submit = [&]() -> status {
    batcher.close_all(batch, record_added);
    if (batch.commands.empty()) return status::ok();
    const std::uint64_t number = ++m.groups;
    m.resident->end_group(number, batch);
    if (in_flight.size() >= groups_in_flight_max) PEV_RETURN_IF_ERROR(wait_oldest());
    in_flight.push_back({m.log->append(std::move(batch)), std::move(batch_ids), line_no, number});
    batch = {};
    // A line adds at most one command and closes at most a few batches: sized once per group.
    batch.commands.reserve(m.options.group_lines + m.options.group_lines / 4);
    batch_ids.clear();
    batch_lines = 0;
    if (m.resident->interval_cache_full()) {
      // Forget interval identities only once all of them are readable from the log.
      while (!in_flight.empty()) PEV_RETURN_IF_ERROR(wait_oldest());
      m.resident->forget_intervals();
      intervals_forgotten_through = number;
    }
    return status::ok();
  };
  auto refuse = [&](errc code, std::string message, std::optional<std::string> id) {
    ++summary.refused;
    if (on_refusal) on_refusal({line_no, std::move(id), code, std::move(message)});
  };

  // Whatever stops this ingest early, state decided but not durable must not outlive it: the next
  // query or ingest refolds the state from the log.
  struct discard_on_error {
    impl& m;
    bool done = false;
    ~discard_on_error() {
      if (!done) m.discard_state();
    }
  } guard{m};

  const std::unique_ptr<engine_detail::line_source> lines = open_lines({m.log.get(), &durable_groups});
  std::vector<engine_detail::parsed_line> chunk;
  // Applies a decision's events and adds them to the command's record. Every recorded event is
  // applied, the audit records of a refusal included: replay will.
  auto take = [&](core::decision& d, storage::command_to_append& record) -> status {
    // Once: a batch's readings then grow the record geometrically, not one exact size at a time.
    if (record.events.empty()) record.events.reserve(d.events.size());
    for (auto& e : d.events) {
      const auto* body = flatbuffers::GetRoot<fb::EventBody>(e.body.data());
      PEV_RETURN_IF_ERROR(m.resident->ensure_resident(e.stream));
      core::apply(m.state(), *body, record.at);
      if (const auto* rec = body->event_as_IntervalRecorded()) {
        const fb::IntervalReading& r = *rec->reading();
        core::interval_content content{r.session()->str(), r.seconds(), r.wh(), std::nullopt};
        if (r.register_wh()) content.register_wh = *r.register_wh();
        m.resident->interval_recorded(r.device()->str(), r.start(), content, batch);
      }
      record.events.push_back({std::move(e.stream), std::move(e.body)});
    }
    return status::ok();
  };
  while (lines->next(chunk)) {
    for (engine_detail::parsed_line& parsed : chunk) {
      line_no = parsed.line_no;
      if (!parsed.command) {
        refuse(parsed.refusal.code(), parsed.refusal.message(), std::move(parsed.id));
        continue;
      }
      const std::optional<fb::command>& cmd = parsed.command;
      engine_detail::line_lookup& ahead = parsed.lookup;
      // Ids of groups durable before this line's lookups were made: they, and every later line's
      // (made no earlier), see them.
      while (!ids_leaving.empty() && ids_leaving.front().group <= ahead.durable_groups) {
        for (const auto& id : ids_leaving.front().ids) ids_in_flight.erase(id);
        ids_leaving.pop_front();
      }
      // Idempotency: an id already taken (durable, in flight, or in this group) is a duplicate.
      bool seen = ids_in_flight.count(cmd->id) != 0;
      if (!seen && ahead.done) {
        seen = ahead.id_durable;
      } else if (!seen) {
        auto known = m.log->find_command(cmd->id);
        if (!known) return known.error();
        seen = known->has_value();
      }
      if (seen) {
        ++summary.duplicates;
        if (m.on_outcome) {
          // A device that resends an energy request heard no answer: it hears the grant recorded
          // for the first (when that is durable; one in flight is answered with its own ack).
          std::optional<core::device_answer> again;
          if (cmd->kind == fb::command_kind::energy_request) {
            auto granted = grant_recorded_for(*m.log, cmd->id);
            if (!granted) return granted.error();
            if (granted->has_value()) again = core::device_answer{.grant = std::move(*granted)};
          }
          m.on_outcome(line_no, command_outcome::kind::duplicate, again ? &*again : nullptr);
        }
        continue;
      }
      if (ahead.interval_looked_up && ahead.durable_groups >= intervals_forgotten_through) {
        m.resident->offer_interval(cmd->as<fb::MeterInterval>()->device()->string_view(), ahead.interval_start,
                                   std::move(ahead.interval));
      }
      auto decided = m.decide(*cmd);
      if (!decided) return decided.error();
      core::decision& d = decided.value();
      storage::command_to_append record{cmd->id, cmd->at, {}, d.refusal.is_ok()};
      PEV_RETURN_IF_ERROR(take(d, record));
      // The lines this one weighs in its group: an interval batch, one per reading.
      std::size_t weight = 1;
      if (cmd->kind == fb::command_kind::interval_batch && d.refusal.is_ok()) {
        // Admitted: each reading as the line that spells it, so the batch is a duplicate only
        // when every reading is.
        weight = cmd->as<wire::IntervalBatch>()->readings()->size();
        bool every_reading_duplicate = true;
        for (std::size_t i = 0; i < weight; ++i) {
          auto reading = m.decide_reading(*cmd, i);
          if (!reading) return reading.error();
          every_reading_duplicate = every_reading_duplicate && reading->duplicate;
          PEV_RETURN_IF_ERROR(take(reading.value(), record));
        }
        d.duplicate = every_reading_duplicate;
      }
      if (d.refusal.is_ok()) {
        d.duplicate ? ++summary.duplicates : ++summary.accepted;
        if (m.on_outcome)
          m.on_outcome(line_no, d.duplicate ? command_outcome::kind::duplicate : command_outcome::kind::accepted,
                       d.duplicate ? nullptr : &d.answer);
        ids_in_flight.insert(cmd->id);
        batch_ids.push_back(cmd->id);
      } else {
        refuse(d.refusal.code(), d.refusal.message(), cmd->id);
      }
      m.resident->end_command();
      batcher.add(std::move(record), batch, record_added);
      if (batch_lines == 0) group_opened = std::chrono::steady_clock::now();
      batch_lines += weight;
      if (batch_lines >= m.options.group_lines ||
          (m.options.group_delay_max_us > 0 &&
           std::chrono::steady_clock::now() - group_opened >= std::chrono::microseconds(m.options.group_delay_max_us)))
        PEV_RETURN_IF_ERROR(submit());
      // Report a group as soon as it is durable, not when the next one needs its slot.
      if (m.options.group_delay_max_us > 0 && !in_flight.empty() &&
          in_flight.front().done.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
        PEV_RETURN_IF_ERROR(wait_oldest());
    }
  }
  if (lines->input_failed()) return status(errc::io_error, "reading the command stream failed");
  PEV_RETURN_IF_ERROR(submit());
  while (!in_flight.empty()) PEV_RETURN_IF_ERROR(wait_oldest());
  // A checkpoint: what this ingest changed comes back quickly in the next process.
  storage::append_batch checkpoint;
  m.resident->checkpoint(checkpoint);
  if (!checkpoint.snapshots.empty()) {
    auto written = m.log->append_and_wait(std::move(checkpoint));
    if (!written) return written.error();
  }
  guard.done = true;
  return summary;
}

result<std::vector<command_outcome>> engine::impl::outcomes(
    std::size_t count, const line_source_factory& open_lines) {
  std::vector<command_outcome> out(count);
  on_outcome = [&](std::uint64_t line, command_outcome::kind what, const core::device_answer* answer) {
    PEV_ASSERT(line >= 1 && line <= out.size());
    command_outcome& o = out[line - 1];
    o.what = what;
    if (answer == nullptr) return;
    if (answer->bind_deadline) o.bind_deadline = timestamp(std::chrono::seconds(answer->bind_deadline->value()));
    if (const auto& g = answer->grant)
      o.grant = energy_grant{g->session, g->wh, timestamp(std::chrono::seconds(g->start.value())),
                             timestamp(std::chrono::seconds(g->depart.value())), g->price_micro_per_kwh};
    if (const auto& r = answer->reconfigured) o.reconfigured = command_outcome::eumd_interval{r->eumd, r->interval_s};
  };
  auto summary = sequence(open_lines, [&](const line_refusal& r) {
    PEV_ASSERT(r.line >= 1 && r.line <= out.size());
    out[r.line - 1] = {command_outcome::kind::refused, status(r.error, r.message)};
  }, {});
  on_outcome = {};
  if (!summary) return summary.error();
  PEV_ASSERT(summary->accepted + summary->duplicates + summary->refused == count);
  return out;
}

result<std::vector<command_outcome>> engine::submit(std::span<const command> commands) {
  if (commands.size() > submit_commands_max)
    return status(errc::usage, "at most " + std::to_string(submit_commands_max) + " commands a call");
  // Each command becomes the line that spells it, so that it meets the same schema checks.
  std::string lines;
  for (const command& c : commands) lines.append(to_json_line(c)).push_back('\n');
  return impl_->outcomes_of_lines(commands.size(), std::move(lines));
}

result<std::vector<command_outcome>> engine::impl::outcomes_of_lines(std::size_t count, std::string text) {
  std::istringstream in(std::move(text));
  return outcomes(count, [&](engine_detail::lookahead_source lookups) {
    return std::make_unique<engine_detail::parse_ahead>(in, *parser, lookups);
  });
}

result<std::vector<command_outcome>> engine::submit_lines(std::span<const std::string> lines) {
  if (lines.size() > submit_commands_max)
    return status(errc::usage, "at most " + std::to_string(submit_commands_max) + " lines a call");
  // Only lines the reader sees as one command each are fed to it; the others are refused here.
  std::vector<command_outcome> out(lines.size());
  std::vector<std::size_t> fed;
  std::string text;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.find('\n') != std::string::npos || schema::command_parser::is_blank(line)) {
      out[i] = {command_outcome::kind::refused,
                status(errc::invalid_json, "a command line is one line of JSON, not blank and without a line break")};
      continue;
    }
    fed.push_back(i);
    text.append(line).push_back('\n');
  }
  auto decided = impl_->outcomes_of_lines(fed.size(), std::move(text));
  if (!decided) return decided.error();
  for (std::size_t k = 0; k < fed.size(); ++k) out[fed[k]] = std::move(decided.value()[k]);
  return out;
}

result<std::vector<command_outcome>> engine::submit_interval_batches(
    std::span<const std::span<const std::uint8_t>> batches) {
  static_assert(interval_batches_per_call_max == limits::interval_batches_per_call_max);
  static_assert(interval_batch_readings_max == limits::interval_batch_readings_max);
  static_assert(interval_batches_bytes_per_call_max == limits::interval_batches_bytes_per_call_max);
  if (batches.size() > interval_batches_per_call_max)
    return status(errc::usage, "at most " + std::to_string(interval_batches_per_call_max) + " batches a call");
  std::size_t total_bytes = 0;
  for (const auto& b : batches) total_bytes += std::min(b.size(), limits::interval_batch_bytes_max + 1);
  if (total_bytes > interval_batches_bytes_per_call_max)
    return status(errc::usage,
                  "at most " + std::to_string(interval_batches_bytes_per_call_max) + " bytes of batches a call");
  // Read on this thread, before the sequencer starts: verifying a batch is a bounds check per
  // field, far less than deciding its readings.
  std::vector<engine_detail::parsed_line> read;
  read.reserve(batches.size());
  for (std::size_t i = 0; i < batches.size(); ++i) {
    engine_detail::parsed_line line;
    line.line_no = i + 1;
    fb::parse_failure failure;
    line.command = fb::read_interval_batch(batches[i], failure);
    if (!line.command) {
      line.refusal = std::move(failure.error);
      line.id = std::move(failure.id);
    }
    read.push_back(std::move(line));
  }
  return impl_->outcomes(batches.size(), [&](engine_detail::lookahead_source) {
    return std::make_unique<engine_detail::prepared_lines>(std::move(read));
  });
}

namespace {
std::string month_text(std::chrono::year_month m) {
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u", static_cast<int>(m.year()), static_cast<unsigned>(m.month()));
  return text;
}
}  // namespace

result<pevledger::bill> engine::bill_of(std::string_view account, std::chrono::year_month period) {
  if (!period.ok()) return status(errc::usage, "the period is not a month");
  auto doc = bill(account, month_text(period));
  if (!doc) return doc.error();
  return engine_detail::bill_from_json(doc.value());
}

result<pevledger::balance> engine::balance_of(std::string_view account) {
  auto doc = balance(account);
  if (!doc) return doc.error();
  return engine_detail::balance_from_json(doc.value());
}

result<std::vector<settlement_entry>> engine::settlement_of(std::chrono::year_month period) {
  if (!period.ok()) return status(errc::usage, "the period is not a month");
  auto doc = settlement(month_text(period));
  if (!doc) return doc.error();
  return engine_detail::settlement_from_json(doc.value());
}

result<std::string> engine::bill(std::string_view account, std::string_view period) {
  auto p = parse_month(period);
  if (!p) return status(errc::usage, "--period must be YYYY-MM");
  const std::string id(account);
  // Issued or a preview: an issued bill's lines and totals are frozen in the account's state.
  auto doc = impl_->ask_entity(core::stream_of(core::stream_kind::account, id), "bill/" + p->to_string());
  if (!doc) return doc.error();
  if (doc->empty()) return status(errc::unknown_account, "unknown account '" + id + "'");
  return std::move(doc.value());
}

result<std::string> engine::balance(std::string_view account) {
  const std::string id(account);
  auto doc = impl_->ask_entity(core::stream_of(core::stream_kind::account, id), "balance");
  if (!doc) return doc.error();
  if (doc->empty()) return status(errc::unknown_account, "unknown account '" + id + "'");
  return std::move(doc.value());
}

result<std::string> engine::settlement(std::string_view period) {
  auto p = parse_month(period);
  if (!p) return status(errc::usage, "--period must be YYYY-MM");
  auto doc = impl_->ask_entity("clearinghouse", "settlement/" + p->to_string());
  if (!doc) return doc.error();
  return doc->empty() ? std::string("[]") : std::move(doc.value());  // no roaming yet: nothing owed
}

result<std::string> engine::session(std::string_view session) {
  const std::string id(session);
  auto doc = impl_->ask_entity(core::stream_of(core::stream_kind::session, id), "session");
  if (!doc) return doc.error();
  if (doc->empty()) return status(errc::unknown_session, "unknown session '" + id + "'");
  return std::move(doc.value());
}

result<std::string> engine::period_report(std::string_view period) {
  auto p = parse_month(period);
  if (!p) return status(errc::usage, "--period must be YYYY-MM");
  PEV_RETURN_IF_ERROR(impl_->open_state());
  status failed = status::ok();
  std::string report = core::period_report_json(impl_->state(), p->index(), [&](const std::string& id) {
    auto account = impl_->account_for_query(id);
    if (!account) {
      failed = account.error();
      return static_cast<const core::account_state*>(nullptr);
    }
    PEV_ASSERT(account.value() != nullptr);  // the utility lists only accounts it opened
    return account.value();
  });
  PEV_RETURN_IF_ERROR(failed);
  return report;
}

namespace {
std::string base64(std::span<const std::uint8_t> bytes) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{bytes[i]} << 16) | (i + 1 < bytes.size() ? bytes[i + 1] << 8 : 0) |
                            (i + 2 < bytes.size() ? bytes[i + 2] : 0);
    out.push_back(table[(n >> 18) & 63]);
    out.push_back(table[(n >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? table[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < bytes.size() ? table[n & 63] : '=');
  }
  return out;
}
}  // namespace

status engine::export_events(std::ostream& out, bool raw) const {
  export_options options;
  options.raw = raw;
  return export_events(out, options);
}

status engine::export_events(std::ostream& out, const export_options& options) const {
  if (options.follow && !impl_->log->read_only())
    return status(errc::usage, "following the log needs a read-only engine");
  auto printer = fb::event_printer::create();
  if (!printer) return printer.error();
  auto write = [&](const fb::Record& r, std::span<const std::uint8_t> bytes) -> status {
    const auto* body = r.body();
    auto text = printer.value()->body_json({body->data(), body->size()});
    if (!text) return text.error();
    nlohmann::ordered_json j;
    j["seq"] = r.global_seq();
    j["stream"] = r.stream()->str();
    j["stream_seq"] = r.stream_seq();
    j["at"] = format_timestamp(unix_seconds(r.at()));
    j["command_id"] = r.command_id()->str();
    const auto parsed = nlohmann::ordered_json::parse(text.value());
    j["type"] = parsed.at("event_type");
    j["event"] = parsed.at("event");
    j["prev_hash"] = storage::to_hex(storage::record_prev_hash(r));
    j["hash"] = storage::to_hex(storage::record_hash(r));
    if (options.raw) {
      j["hash_offset"] = reinterpret_cast<const std::uint8_t*>(r.hash()) - bytes.data();
      j["record_base64"] = base64(bytes);
    }
    out << j.dump() << '\n';
    if (!out) return status(errc::io_error, "writing the export failed");
    if (options.on_record) options.on_record();
    return status::ok();
  };
  std::uint64_t next = std::max<std::uint64_t>(options.from_seq, 1);
  // A follower makes one look per poll until told to stop; each look writes what became durable.
  for (;;) {
    const log_seq head = impl_->log->last_seq();
    if (next <= head.value()) {
      PEV_RETURN_IF_ERROR(impl_->log->scan_bytes(log_seq(next), head, write));
      next = head.value() + 1;
    }
    out.flush();
    if (!out) return status(errc::io_error, "writing the export failed");
    if (!options.follow) return status::ok();
    const auto wake = std::chrono::steady_clock::now() + options.poll_interval;
    // Sleeps in short steps so that a stop is seen within tens of milliseconds.
    while (std::chrono::steady_clock::now() < wake) {
      if (options.stop && options.stop()) return status::ok();
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(options.poll_interval, std::chrono::milliseconds(20)));
    }
    if (options.stop && options.stop()) return status::ok();
    auto caught = impl_->log->catch_up();
    if (!caught) return caught.error();
  }
}

std::uint64_t engine::log_size() const { return impl_->log->last_seq().value(); }

result<std::uint64_t> engine::catch_up() {
  auto head = impl_->log->catch_up();
  if (!head) return head.error();
  // What was activated reflects the old view; the next query refolds from the new one.
  impl_->discard_state();
  return head->value();
}

result<std::string> engine::stats() const {
  auto s = impl_->log->stats();
  if (!s) return s.error();
  const storage::log_stats& st = s.value();
  nlohmann::ordered_json j;
  j["format"] = st.format;
  j["records"] = st.last_seq.value();
  j["last_seq"] = st.last_seq.value();
  j["last_at"] = st.last_at ? nlohmann::ordered_json(format_timestamp(*st.last_at)) : nlohmann::ordered_json(nullptr);
  j["last_hash"] = st.last_seq.value() > 0 ? nlohmann::ordered_json(storage::to_hex(st.last_hash))
                                           : nlohmann::ordered_json(nullptr);
  j["streams"] = st.streams;
  nlohmann::ordered_json kinds = nlohmann::ordered_json::object();
  for (const auto& [kind, count] : st.streams_by_kind) kinds[kind] = count;
  j["entities"] = kinds;
  j["disk_bytes"] = st.disk_bytes;
  j["wal_files"] = st.wal_files;
  j["wal_bytes"] = st.wal_bytes;
  j["pending_compaction_bytes"] = st.pending_compaction_bytes;
  nlohmann::ordered_json cfs = nlohmann::ordered_json::array();
  for (const auto& c : st.column_families) {
    nlohmann::ordered_json cf;
    cf["name"] = c.name;
    cf["estimated_keys"] = c.estimated_keys;
    cf["sst_bytes"] = c.sst_bytes;
    cf["blob_bytes"] = c.blob_bytes;
    cf["memtable_bytes"] = c.memtable_bytes;
    cf["files_per_level"] = c.files_per_level;
    cfs.push_back(std::move(cf));
  }
  j["column_families"] = std::move(cfs);
  return j.dump();
}

status engine::backup(const std::string& to,
                      const std::function<void(std::uint64_t, std::uint64_t)>& progress) const {
  if (!progress) return impl_->log->copy_to(to);
  auto figures = impl_->log->stats();
  if (!figures) return figures.error();
  std::uint64_t keys_total = 0;  // RocksDB's estimate: good enough to show how far a copy is
  for (const auto& cf : figures->column_families) keys_total += cf.estimated_keys;
  return impl_->log->copy_to(to, [&](std::uint64_t keys) { progress(keys, keys_total); });
}

residency_stats engine::residency() const {
  residency_stats out{impl_->resident->resident_count(), impl_->resident->activations(),
                      impl_->resident->passivations()};
  if (!impl_->actor_system) return out;
  caf::scoped_actor self{*impl_->actor_system};
  self->request(impl_->directory, caf::infinite, actors::stats_atom::value)
      .receive([&](const actors::directory_stats& s) {
                 out.live_entity_actors = s.live;
                 out.entity_actors_spawned = s.spawned;
                 out.entity_actors_stopped = s.stopped;
               },
               [](const caf::error&) {});
  return out;
}

}  // namespace pevledger
