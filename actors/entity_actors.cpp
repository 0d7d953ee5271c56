#include "actors/entity_actors.hpp"

#include <algorithm>

#include "core/apply.hpp"
#include "core/projections.hpp"
#include "actors/recovery.hpp"
#include "base/time.hpp"

namespace pevledger::actors {
entity_actor::behavior_type entity_behavior(entity_actor::stateful_pointer<entity_host> self,
                                            const storage::event_log* log, std::string stream) {
  self->state.stream = std::move(stream);
  auto recovered = recover_entity(*log, self->state.stream, self->state.state);
  if (!recovered) {
    // The log could not be read: the actor refuses to answer rather than answer from nothing.
    self->quit(caf::make_error(caf::sec::runtime_error, recovered.error().describe()));
    return {
        [](apply_atom, const durable_events&) {},
        [](render_atom, const std::string&) { return std::string(); },
        [](stats_atom) { return std::uint64_t{0}; },
    };
  }
  self->state.stream_seq = recovered->stream_seq;
  return {
      [self](apply_atom, const durable_events& events) {
        entity_host& h = self->state;
        for (const durable_event& e : events) {
          if (e.stream_seq <= h.stream_seq) continue;  // recovered from the log already
          PEV_ASSERT(e.stream_seq == h.stream_seq + 1);  // the directory forwards every event, in order
          core::apply(h.state, *flatbuffers::GetRoot<schema::EventBody>(e.body.data()), unix_seconds(e.at));
          ++h.stream_seq;
        }
      },
      [self](render_atom, const std::string& what) { return core::render_projection(self->state.state, self->state.stream, what); },
      [self](stats_atom) { return self->state.stream_seq; },
  };
}

directory_actor::behavior_type directory_behavior(directory_actor::stateful_pointer<directory_host> self,
                                                  const storage::event_log* log, std::size_t live_max) {
  PEV_ASSERT(live_max >= 1);
  // The entity actor of `stream`, spawned (and so recovered) if it is not live.
  auto actor_of = [self, log, live_max](const std::string& stream) -> entity_actor {
    directory_host& d = self->state;
    auto it = d.live.find(stream);
    if (it == d.live.end()) {
      if (d.live.size() >= live_max) {
        // Stop the least recently used; linear in live_max, and only when an actor is spawned.
        auto lru = std::min_element(d.live.begin(), d.live.end(),
                                    [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
        self->send_exit(lru->second.handle, caf::exit_reason::user_shutdown);
        d.live.erase(lru);
        ++d.stats.stopped;
      }
      it = d.live.emplace(stream, directory_host::live_entity{self->spawn(entity_behavior, log, stream), 0}).first;
      ++d.stats.spawned;
    }
    it->second.used = ++d.clock;
    return it->second.handle;
  };
  return {
      [self, log](durable_atom, std::uint64_t first, std::uint64_t last) {
        directory_host& d = self->state;
        d.stats.durable_through = std::max(d.stats.durable_through, last);
        if (d.live.empty() || last < first) return;
        // Only live actors need the events; any other entity recovers them from the log.
        std::unordered_map<std::string, durable_events> by_stream;
        const status read = log->scan(log_seq(first), log_seq(last), [&](const schema::Record& r) {
          const std::string stream = r.stream()->str();
          if (d.live.count(stream) == 0) return status::ok();
          const auto* body = r.body();
          by_stream[stream].push_back({r.stream_seq(), r.at(), {body->begin(), body->end()}});
          return status::ok();
        });
        if (!read.is_ok()) {
          // Live actors would miss events: stop them all; they recover from the log when asked.
          for (auto& [stream, entity] : d.live) self->send_exit(entity.handle, caf::exit_reason::user_shutdown);
          d.stats.stopped += d.live.size();
          d.live.clear();
          return;
        }
        for (auto& [stream, events] : by_stream) self->send(d.live.at(stream).handle, apply_atom::value, std::move(events));
      },
      [self, actor_of](render_atom, const std::string& stream, const std::string& what) {
        return self->delegate(actor_of(stream), render_atom::value, what);
      },
      [self](stats_atom) {
        directory_host& d = self->state;
        d.stats.live = d.live.size();
        return d.stats;
      },
  };
}

}  // namespace pevledger::actors
