#include "sim/simulator.hpp"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "base/assert.hpp"
#include "base/time.hpp"
#include "gateway/device_client.hpp"
#include "gateway/frame.hpp"
#include "gateway/keys.hpp"
#include "pevledger/interval_batch.hpp"

namespace pevledger::sim {
namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t batch_readings_max = 256;
constexpr std::size_t acks_per_read_max = 4096;
constexpr int ack_wait_ms_max = 60'000;
constexpr std::size_t latency_samples_max = 1u << 20;
constexpr std::uint64_t progress_every_lines = 2048;

// A frame sent and not yet acknowledged.
struct sent_frame {
  std::string id;
  bytes frame;                     // sent again after a drop
  std::vector<std::string> lines;  // what it means, for the record
  bool is_batch = false;
  bool is_command = false;  // a device command: its ack's latency is sampled
  clock_type::time_point sent_at;
  bool is_clock = false;  // the back office setting the gateway's business clock
  bool is_setup = false;  // answered, unless refused, with the ESCI's and the EUMD's keys
};

// One connection to the gateway and what waits on it.
struct link {
  std::optional<gateway::device_client> client;
  std::deque<sent_frame> in_flight;
  // SetupDone frames the acks of setups announced on this connection, and those read.
  std::uint64_t keys_announced = 0, keys_read = 0;
};

// An EUMD's readings of one session, gathered until they are sent as one Intervals frame.
struct pending_batch {
  std::string id, device, session;
  std::size_t link = 0;
  std::int64_t first_at = 0, last_at = 0;
  std::vector<interval_reading> readings;
  std::vector<std::string> lines;
};

// A batch an EUMD sent last: what it sends again after a restart.
struct sent_batch {
  interval_batch batch;
  std::vector<std::string> lines;
};

struct decided_lines {
  std::uint64_t decided = 0;
  std::vector<std::string> lines;
};

timestamp time_of(std::int64_t t) { return timestamp(std::chrono::seconds(t)); }

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ull;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// The interval the back office sets a reconfigured EUMD to.
constexpr std::int64_t reconfigured_interval_s = 300;

bool is_device_command(std::string_view type) {
  static constexpr std::string_view types[] = {"session.plug",  "session.bind",   "energy.request", "pev.total",
                                               "session.unplug", "session.start", "pev.setup"};
  return std::find(std::begin(types), std::end(types), type) != std::end(types);
}

class driver {
 public:
  explicit driver(const simulation_options& o)
      : o_(o), rng_(o.fleet.seed ^ 0x51a7'1a7e'0000'0001ull), reconfigure_rng_(o.fleet.seed ^ 0x51a7'1a7e'0000'0002ull) {
    links_.resize(o.connections + 1);  // the last is the back office's
  }

  status open() {
    for (std::size_t i = 0; i < links_.size(); ++i) PEV_RETURN_IF_ERROR(connect(i));
    started_ = clock_type::now();
    return status::ok();
  }

  // False once a line failed: the rest is not generated.
  bool take(std::string_view line) {
    failed_ = take_line(line);
    return failed_.is_ok();
  }

  result<simulation_summary> finish() {
    if (!failed_.is_ok()) return failed_;
    PEV_RETURN_IF_ERROR(flush_all());
    PEV_RETURN_IF_ERROR(drain_all());
    for (link& l : links_) l.client.reset();
    summary_.elapsed_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started_).count());
    if (!latencies_.empty()) {
      std::sort(latencies_.begin(), latencies_.end());
      summary_.command_ack_p50_us = latencies_[latencies_.size() / 2];
      summary_.command_ack_p99_us = latencies_[std::min(latencies_.size() - 1, latencies_.size() * 99 / 100)];
    }
    if (o_.record != nullptr) {
      std::stable_sort(record_.begin(), record_.end(),
                       [](const decided_lines& a, const decided_lines& b) { return a.decided < b.decided; });
      for (const decided_lines& d : record_)
        for (const std::string& line : d.lines) {
          *o_.record << line << '\n';
          ++summary_.recorded;
        }
      o_.record->flush();
      if (!*o_.record) return status(errc::io_error, "writing the record failed");
    }
    return summary_;
  }

 private:
  bool draw(std::uint32_t per_million, std::mt19937_64& rng) {
    return o_.faults && std::uniform_int_distribution<std::uint32_t>(0, 999'999)(rng) < per_million;
  }
  bool draw(std::uint32_t per_million) { return draw(per_million, rng_); }

  std::size_t back_office() const { return links_.size() - 1; }
  std::size_t link_of(std::string_view premise) const { return fnv1a(premise) % o_.connections; }

  status connect(std::size_t i) {
    auto client = gateway::device_client::connect(o_.host, o_.port, std::chrono::milliseconds(ack_wait_ms_max));
    if (!client) return client.error();
    links_[i].client.emplace(std::move(client.value()));
    links_[i].keys_announced = links_[i].keys_read = 0;
    return status::ok();
  }

  status take_line(std::string_view text) {
    ++summary_.lines;
    const auto j = nlohmann::json::parse(text, nullptr, false);
    PEV_ASSERT(!j.is_discarded() && j.is_object());  // the fleet generator writes JSON
    const std::string type = j.at("type").get<std::string>();
    const std::string id = j.at("id").get<std::string>();
    const auto at_parsed = parse_timestamp(j.at("at").get<std::string>());
    PEV_ASSERT(at_parsed.has_value());
    const std::int64_t at = at_parsed.value().value();
    now_ = at;
    PEV_RETURN_IF_ERROR(set_clock_before(at));
    PEV_RETURN_IF_ERROR(flush_older_than(at));
    follow_deadlines(j, type, at);
    if (summary_.lines % progress_every_lines == 0 && o_.on_progress) o_.on_progress(progress());

    if (type == "meter.interval") return report(j, std::string(text), at);
    if (!is_device_command(type)) {
      if (type == "bill.run" || type == "settlement.run") {
        PEV_RETURN_IF_ERROR(flush_all());
        PEV_RETURN_IF_ERROR(drain_all());
      }
      return send_operator_line(id, at, std::string(text));
    }

    // A device command: the back office's earlier lines (the premise, the PEV, a price) first.
    PEV_RETURN_IF_ERROR(drain(back_office()));
    ++summary_.command_frames;
    std::string premise, device;
    const std::string session = j.contains("session") ? j["session"].get<std::string>() : std::string();
    if (type == "session.plug" || type == "session.start") {
      premise = j.at("premise").get<std::string>();
      sessions_[session] = premise;
    } else if (type == "pev.setup") {
      premise = j.at("premise").get<std::string>();
    } else if (const auto found = sessions_.find(session); found != sessions_.end()) {
      premise = found->second;
    }
    if (!session.empty()) PEV_RETURN_IF_ERROR(flush(session));
    device = type == "pev.setup" ? j.at("esci").get<std::string>()
             : type == "session.start" ? premise
                                       : premise + "-esci";
    auto s = [&](const char* field) { return j.at(field).get<std::string>(); };
    const auto envelope = gateway::build_envelope(device, id, at, [&](flatbuffers::FlatBufferBuilder& fbb) {
      if (type == "session.plug") {
        const std::string eumd = j.contains("eumd") ? s("eumd") : std::string();
        return std::pair{p::Message::Plug,
                         p::CreatePlugDirect(fbb, session.c_str(), premise.c_str(), eumd.empty() ? nullptr : eumd.c_str())
                             .Union()};
      }
      if (type == "session.bind")
        return std::pair{p::Message::Bind, p::CreateBindDirect(fbb, session.c_str(), s("pev").c_str()).Union()};
      if (type == "energy.request") {
        const auto depart = parse_timestamp(s("depart"));
        PEV_ASSERT(depart.has_value());
        return std::pair{p::Message::EnergyRequest,
                         p::CreateEnergyRequestDirect(fbb, session.c_str(), j.at("wh").get<std::int64_t>(),
                                                      depart.value().value())
                             .Union()};
      }
      if (type == "pev.total")
        return std::pair{p::Message::PevTotal,
                         p::CreatePevTotalDirect(fbb, session.c_str(), j.at("wh").get<std::int64_t>()).Union()};
      if (type == "session.unplug")
        return std::pair{p::Message::Unplug, p::CreateUnplugDirect(fbb, session.c_str()).Union()};
      if (type == "session.start")
        return std::pair{p::Message::CardSession,
                         p::CreateCardSessionDirect(fbb, session.c_str(), premise.c_str(), s("card").c_str(),
                                                    j.value("online", true))
                             .Union()};
      return std::pair{p::Message::Setup, p::CreateSetupDirect(fbb, s("pev").c_str(), premise.c_str(),
                                                               s("esci").c_str(), s("eumd").c_str())
                                              .Union()};
    });
    const std::size_t l = link_of(premise);
    sent_frame f{id, signed_frame(device, envelope), {std::string(text)}, false, true, {}};
    f.is_setup = type == "pev.setup";
    PEV_RETURN_IF_ERROR(send(l, std::move(f)));
    // Set up, the ESCI and the EUMD sign their frames with the keys SetupDone brings (after the
    // ack): wait for them.
    return type == "pev.setup" ? drain(l) : status::ok();
  }

  // A command line of the back office, signed with the operator key.
  status send_operator_line(const std::string& id, std::int64_t at, std::string text) {
    ++summary_.operator_frames;
    const auto envelope = gateway::build_envelope(gateway::back_office_device, id, at, [&](auto& fbb) {
      return std::pair{p::Message::OperatorCommand, p::CreateOperatorCommandDirect(fbb, text.c_str()).Union()};
    });
    return send(back_office(), sent_frame{id, gateway::encode_frame(envelope, std::span(o_.operator_key)),
                                          {std::move(text)}, false, false, {}});
  }

  // The back office sets `eumd` to 5-minute intervals; the EUMD changes when the gateway tells it.
  status reconfigure(const std::string& eumd, std::int64_t at) {
    ++summary_.reconfigures;
    nlohmann::ordered_json line;
    line["id"] = "configure-" + std::to_string(summary_.reconfigures) + "-" + eumd;
    line["at"] = format_timestamp(unix_seconds(at));
    line["type"] = "device.configure";
    line["device"] = eumd;
    line["interval_s"] = reconfigured_interval_s;
    return send_operator_line(line["id"].get<std::string>(), at, line.dump());
  }

  status wait_readable(std::size_t l) {
    pollfd fd{links_[l].client->native_handle(), POLLIN, 0};
    const int ready = ::poll(&fd, 1, ack_wait_ms_max);
    if (ready == 0) return status(errc::io_error, "the gateway sent no keys after a setup for 60 s");
    if (ready > 0 && (fd.revents & POLLIN) == 0)
      return status(errc::io_error, "the gateway closed the connection before the keys of a setup");
    if (ready < 0) return errno == EINTR ? status::ok() : status(errc::io_error, "poll failed");
    return take_acks(l);
  }

  // A frame around `envelope`, signed if `device` holds a key.
  bytes signed_frame(const std::string& device, std::span<const std::uint8_t> envelope) const {
    const auto key = keys_.find(device);
    if (key == keys_.end()) return gateway::encode_frame(envelope);
    return gateway::encode_frame(envelope, std::span<const std::uint8_t>(key->second.second), key->second.first);
  }

  // What the simulators know of bind deadlines: each utility's comm_timeout_s, each premise's
  // utility, and the plug-ins still waiting for a bind. Only to know when to move the clock: the
  // gateway decides the timeouts.
  void follow_deadlines(const nlohmann::json& j, const std::string& type, std::int64_t at) {
    if (type == "utility.register") {
      comm_timeout_s_[j.at("utility").get<std::string>()] = j.value("comm_timeout_s", std::int64_t{60});
    } else if (type == "premise.register") {
      utility_of_premise_[j.at("premise").get<std::string>()] = j.at("utility").get<std::string>();
    } else if (type == "session.plug") {
      const auto utility = utility_of_premise_.find(j.at("premise").get<std::string>());
      if (utility == utility_of_premise_.end()) return;  // refused: nothing to wait for
      const auto timeout = comm_timeout_s_.find(utility->second);
      const std::int64_t deadline = at + (timeout == comm_timeout_s_.end() ? 60 : timeout->second);
      const std::string session = j.at("session").get<std::string>();
      if (deadline_of_.emplace(session, deadline).second) awaiting_bind_.emplace(deadline, session);
    } else if (type == "session.bind" || type == "session.unplug") {
      const std::string session = j.at("session").get<std::string>();
      if (const auto found = deadline_of_.find(session); found != deadline_of_.end()) {
        awaiting_bind_.erase({found->second, session});
        deadline_of_.erase(found);
      }
    }
  }

  // The gateway's business clock is the back office's: before a line at `at` passes a plug-in's bind
  // deadline, everything sent is acknowledged and a Clock frame says the time, so that the timeout
  // is decided where it falls in business time (a bind sent before it is decided before it). The
  // first line checks that the gateway runs on this clock.
  status set_clock_before(std::int64_t at) {
    if (clock_checked_ && (awaiting_bind_.empty() || awaiting_bind_.begin()->first >= at)) return status::ok();
    PEV_RETURN_IF_ERROR(drain_all());
    const std::string id = "clock-" + std::to_string(++summary_.clock_frames);
    const auto envelope = gateway::build_envelope(gateway::back_office_device, id, at, [&](auto& fbb) {
      return std::pair{p::Message::Clock, p::CreateClock(fbb).Union()};
    });
    sent_frame f{id, gateway::encode_frame(envelope, std::span(o_.operator_key)), {}, false, false, {}, true};
    // No faults: the timeouts' notices must reach the connection that reads them.
    f.sent_at = clock_type::now();
    PEV_RETURN_IF_ERROR(write(back_office(), f));
    links_[back_office()].in_flight.push_back(std::move(f));
    PEV_RETURN_IF_ERROR(drain(back_office()));
    clock_checked_ = true;
    while (!awaiting_bind_.empty() && awaiting_bind_.begin()->first < at) {
      deadline_of_.erase(awaiting_bind_.begin()->second);
      awaiting_bind_.erase(awaiting_bind_.begin());
    }
    return status::ok();
  }

  // A reading of the fleet, as the EUMD reports it: itself, or, when it began after the EUMD was
  // told a shorter interval that divides it, that many readings of the new length (the energy
  // split evenly, the rest in the last, the register counted at each one's end), each line's id the
  // fleet line's with "#1", "#2", ... after it. A quarter hour that began before is reported as it
  // was measured, however late (the fleet sends some again).
  status report(const nlohmann::json& j, std::string text, std::int64_t at) {
    const auto told = interval_of_.find(j.at("device").get<std::string>());
    const std::int64_t seconds = j.at("seconds").get<std::int64_t>();
    const std::int64_t start = parse_timestamp(j.at("start").get<std::string>()).value().value();
    if (told == interval_of_.end() || start < told->second.second) return gather(j, std::move(text), at);
    const std::int64_t interval = told->second.first;
    if (interval <= 0 || interval >= seconds || seconds % interval != 0) return gather(j, std::move(text), at);
    const std::int64_t parts = seconds / interval;  // at most 900 / 1: bounded by a day's seconds
    const std::int64_t wh = j.at("wh").get<std::int64_t>();
    std::int64_t counted = 0;
    for (std::int64_t k = 0; k < parts; ++k) {
      nlohmann::ordered_json part = nlohmann::ordered_json::parse(text);
      const std::int64_t share = k + 1 < parts ? wh / parts : wh - counted;
      counted += share;
      part["id"] = j.at("id").get<std::string>() + "#" + std::to_string(k + 1);
      part["start"] = format_timestamp(unix_seconds(start + k * interval));
      part["seconds"] = interval;
      part["wh"] = share;
      if (j.contains("register_wh")) part["register_wh"] = j["register_wh"].get<std::int64_t>() - (wh - counted);
      std::string line = part.dump();  // in the fleet line's field order
      const nlohmann::json fields = nlohmann::json::parse(line);
      PEV_RETURN_IF_ERROR(gather(fields, std::move(line), at));
    }
    return status::ok();
  }

  // A reading joins its session's pending batch, which is sent first if it cannot take it.
  status gather(const nlohmann::json& j, std::string text, std::int64_t at) {
    const std::string session = j.at("session").get<std::string>();
    const auto start = parse_timestamp(j.at("start").get<std::string>());
    PEV_ASSERT(start.has_value());
    interval_reading reading{time_of(start.value().value()), j.at("seconds").get<std::int64_t>(),
                             j.at("wh").get<std::int64_t>(), std::nullopt};
    if (j.contains("register_wh")) reading.register_wh = j["register_wh"].get<std::int64_t>();
    auto found = pending_.find(session);
    if (found != pending_.end()) {
      const auto& readings = found->second.readings;
      const bool again = std::any_of(readings.begin(), readings.end(),
                                     [&](const interval_reading& r) { return r.start == reading.start; });
      if (again || readings.size() >= batch_readings_max) {
        PEV_RETURN_IF_ERROR(flush(session));
        found = pending_.end();
      }
    }
    if (found == pending_.end()) {
      const auto premise = sessions_.find(session);
      pending_batch b;
      b.id = "b" + j.at("id").get<std::string>();
      b.device = j.at("device").get<std::string>();
      b.session = session;
      b.link = link_of(premise == sessions_.end() ? std::string_view() : std::string_view(premise->second));
      b.first_at = at;
      found = pending_.emplace(session, std::move(b)).first;
      ageing_.emplace_back(at, session);
    }
    found->second.last_at = at;
    found->second.readings.push_back(reading);
    found->second.lines.push_back(std::move(text));
    return status::ok();
  }

  status flush_older_than(std::int64_t now) {
    while (!ageing_.empty() && ageing_.front().first + o_.batch_window_s <= now) {
      const auto [first_at, session] = ageing_.front();
      ageing_.pop_front();
      const auto found = pending_.find(session);
      if (found != pending_.end() && found->second.first_at == first_at) PEV_RETURN_IF_ERROR(flush(session));
    }
    return status::ok();
  }

  status flush_all() {
    while (!pending_.empty()) PEV_RETURN_IF_ERROR(flush(pending_.begin()->first));
    ageing_.clear();
    return status::ok();
  }

  // Sends a session's pending batch, if it has one, in start order (as an EUMD's register counts).
  status flush(const std::string& session) {
    const auto found = pending_.find(session);
    if (found == pending_.end()) return status::ok();
    pending_batch b = std::move(found->second);
    pending_.erase(found);
    std::vector<std::size_t> order(b.readings.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t x, std::size_t y) { return b.readings[x].start < b.readings[y].start; });
    sent_batch sent{{b.id, time_of(b.last_at), b.device, b.session, {}}, {}};
    for (const std::size_t i : order) {
      sent.batch.readings.push_back(b.readings[i]);
      sent.lines.push_back(std::move(b.lines[i]));
    }
    if (draw(o_.rates.restart)) {
      if (const auto last = last_batch_.find(b.device); last != last_batch_.end()) {
        // The EUMD restarted: its register is intact, but it no longer knows which readings were
        // acknowledged, so it sends its last batch again under a new id.
        ++summary_.restarts;
        PEV_RETURN_IF_ERROR(reconnect(b.link));
        sent_batch again = last->second;
        again.batch.id = "r" + std::to_string(summary_.restarts) + "-" + again.batch.id;
        // Readings under a new id are new lines for the same intervals: duplicates by identity
        // (counted on their session), not resends of the same lines.
        for (std::string& line : again.lines) {
          auto j = nlohmann::ordered_json::parse(line);
          j["id"] = again.batch.id + "." + j["id"].get<std::string>();
          line = j.dump();
        }
        PEV_RETURN_IF_ERROR(send_batch(b.link, again));
      }
    }
    PEV_RETURN_IF_ERROR(send_batch(b.link, sent));
    last_batch_[b.device] = std::move(sent);
    if (draw(o_.rates.reconfigure, reconfigure_rng_) && reconfigured_.insert(b.device).second)
      PEV_RETURN_IF_ERROR(reconfigure(b.device, b.last_at));
    return status::ok();
  }

  status send_batch(std::size_t l, const sent_batch& b) {
    ++summary_.batch_frames;
    summary_.intervals += b.batch.readings.size();
    const bytes body = encode(b.batch);
    const bytes envelope = gateway::build_envelope(b.batch.device, b.batch.id, b.batch.at.time_since_epoch().count(),
                                                   [&](flatbuffers::FlatBufferBuilder& fbb) {
                                                     fbb.ForceVectorAlignment(body.size(), 1, 8);
                                                     return std::pair{p::Message::Intervals,
                                                                      p::CreateIntervals(fbb, fbb.CreateVector(body)).Union()};
                                                   });
    return send(l, sent_frame{b.batch.id, signed_frame(b.batch.device, envelope), b.lines, true, false, {}});
  }

  // Sends a frame on link `l` once it has room (a resend's copy may make it window + 1), with the
  // faults the seed draws.
  status send(std::size_t l, sent_frame f) {
    while (links_[l].in_flight.size() >= o_.window) PEV_RETURN_IF_ERROR(wait_for_acks());
    if (draw(o_.rates.drop_before_ack)) {
      // Everything else acknowledged first: whenever the gateway decided the dropped frame, it
      // decided nothing else before the resend is acknowledged.
      ++summary_.drops;
      PEV_RETURN_IF_ERROR(drain_all());
      PEV_RETURN_IF_ERROR(write(l, f));
      // The device stops sending and hears nothing more: whatever the gateway answers is lost.
      // Reading to the connection's end makes sure the gateway decided the frame before its resend.
      PEV_RETURN_IF_ERROR(links_[l].client->close_unheard());
      PEV_RETURN_IF_ERROR(connect(l));
      f.sent_at = clock_type::now();
      PEV_RETURN_IF_ERROR(write(l, f));
      links_[l].in_flight.push_back(std::move(f));
      return drain(l);
    }
    f.sent_at = clock_type::now();
    PEV_RETURN_IF_ERROR(write(l, f));
    const bool resend = draw(o_.rates.resend);
    if (resend) {
      ++summary_.resends;
      sent_frame copy{f.id, {}, f.lines, f.is_batch, false, f.sent_at};
      copy.is_setup = f.is_setup;  // answered with keys too: counted, so that drain waits for them
      PEV_RETURN_IF_ERROR(write(l, f));
      links_[l].in_flight.push_back(std::move(f));
      links_[l].in_flight.push_back(std::move(copy));
    } else {
      links_[l].in_flight.push_back(std::move(f));
    }
    if (draw(o_.rates.reconnect)) {
      ++summary_.reconnects;
      PEV_RETURN_IF_ERROR(reconnect(l));
    }
    return status::ok();
  }

  status write(std::size_t l, const sent_frame& f) {
    ++summary_.frames;
    const status sent = links_[l].client->send(f.frame);
    if (sent.is_ok()) return sent;
    // The gateway closed the connection: the Error frame it sent first says why.
    std::vector<bytes> envelopes;
    (void)links_[l].client->receive_ready(envelopes, acks_per_read_max);
    for (const bytes& e : envelopes)
      if (const auto* error = flatbuffers::GetRoot<p::Envelope>(e.data())->message_as_Error()) return refusal_of(*error);
    return sent;
  }

  static status refusal_of(const p::Error& error) {
    const std::string code = error.code()->str();
    // Only the back office signs its frames: a MAC refused is about the operator key.
    const std::string hint = code == "unexpected_mac" ? " (does the gateway run with --operator-key?)"
                             : code == "bad_mac"       ? " (is the key the gateway's --operator-key?)"
                                                       : "";
    return status(errc::io_error, "the gateway refused a frame: " + code + ": " +
                                      (error.message() ? error.message()->str() : std::string()) + hint);
  }

  // Closes link `l` once its frames are acknowledged, and opens it again.
  status reconnect(std::size_t l) {
    PEV_RETURN_IF_ERROR(drain(l));
    return connect(l);
  }

  // Until every frame on link `l` is acknowledged and the keys those acks announced are read.
  status drain(std::size_t l) {
    while (!links_[l].in_flight.empty()) PEV_RETURN_IF_ERROR(wait_for_acks());
    while (links_[l].keys_read < links_[l].keys_announced) PEV_RETURN_IF_ERROR(wait_readable(l));
    return status::ok();
  }

  status drain_all() {
    for (std::size_t l = 0; l < links_.size(); ++l) PEV_RETURN_IF_ERROR(drain(l));
    return status::ok();
  }

  // Waits until at least one link with frames in flight has something to read, and takes it.
  status wait_for_acks() {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t l = 0; l < links_.size(); ++l)
      if (!links_[l].in_flight.empty()) {
        fds.push_back({links_[l].client->native_handle(), POLLIN, 0});
        which.push_back(l);
      }
    PEV_ASSERT(!fds.empty());
    const int ready = ::poll(fds.data(), fds.size(), ack_wait_ms_max);
    if (ready == 0) return status(errc::io_error, "the gateway acknowledged nothing for 60 s");
    if (ready < 0) return errno == EINTR ? status::ok() : status(errc::io_error, "poll failed");
    for (std::size_t k = 0; k < fds.size(); ++k)
      if (fds[k].revents != 0) PEV_RETURN_IF_ERROR(take_acks(which[k]));
    return status::ok();
  }

  status take_acks(std::size_t l) {
    std::vector<bytes> envelopes;
    // Frames read before a close are taken first: an Error frame says why the gateway closed.
    const status received = links_[l].client->receive_ready(envelopes, acks_per_read_max);
    for (const bytes& e : envelopes) {
      const auto& envelope = *flatbuffers::GetRoot<p::Envelope>(e.data());  // open_frame verified it
      if (const auto* error = envelope.message_as_Error()) return refusal_of(*error);
      if (const auto* timed_out = envelope.message_as_SessionTimedOut()) {
        // The gateway's own decision, in its place in the order of decision.
        ++summary_.timeouts;
        nlohmann::ordered_json line;
        line["id"] = timed_out->id()->str();
        line["at"] = format_timestamp(unix_seconds(timed_out->at()));
        line["type"] = "session.timeout";
        line["session"] = timed_out->session()->str();
        record_.push_back({timed_out->decided(), {line.dump()}});
        continue;
      }
      if (const auto* configure = envelope.message_as_EumdConfigure()) {
        interval_of_[configure->eumd()->str()] = {configure->interval_s(), now_};
        ++summary_.configures_heard;
        continue;
      }
      if (const auto* done = envelope.message_as_SetupDone()) {
        keys_[envelope.device()->str()] = {done->key_id(), bytes(done->key()->begin(), done->key()->end())};
        ++summary_.keys;
        ++links_[l].keys_read;
        continue;
      }
      if (envelope.message_type() == p::Message::EnergyGrant) ++summary_.grants;
      const auto* ack = envelope.message_as_Ack();
      if (ack == nullptr) continue;
      std::deque<sent_frame>& in_flight = links_[l].in_flight;
      if (in_flight.empty() || in_flight.front().id != ack->id()->string_view())
        return status(errc::io_error, "an ack for '" + ack->id()->str() + "' came out of order");
      sent_frame f = std::move(in_flight.front());
      in_flight.pop_front();
      const bool refused = ack->outcome() == p::Outcome::refused;
      if (f.is_setup && !refused) links_[l].keys_announced += 2;
      (ack->outcome() == p::Outcome::accepted ? summary_.accepted : refused ? summary_.refused : summary_.duplicates) += 1;
      if (f.is_clock) {
        if (refused)
          return status(errc::io_error, "the gateway refused the back office's Clock (" +
                                            (ack->message() ? ack->message()->str() : std::string()) +
                                            "): a simulation needs `serve --clock back-office`");
        continue;
      }
      if (f.is_command && latencies_.size() < latency_samples_max)
        latencies_.push_back(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - f.sent_at).count()));
      if (ack->decided() == 0) return status(errc::io_error, "the gateway's acks do not say the order of decision");
      if (recorded(f, ack->outcome())) record_.push_back({ack->decided(), std::move(f.lines)});
    }
    return received;
  }

  // Whether an ack puts its frame's lines in the record: each time the gateway applied them or
  // refused a command (a refused id stays free, so a later copy may be applied), and for a
  // duplicate only when no ack of the same id was applied before (its first copy was decided on a
  // connection dropped before the ack, or its readings were recorded under other ids). A refused
  // batch is not written: its readings as lines could be taken one by one.
  bool recorded(const sent_frame& f, p::Outcome outcome) {
    if (outcome == p::Outcome::refused) return !f.is_batch;
    return applied_ids_.insert(f.id).second;
  }

  simulation_progress progress() const {
    return {summary_.lines, summary_.frames, summary_.intervals,
            static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started_).count())};
  }

  const simulation_options& o_;
  std::mt19937_64 rng_;
  std::mt19937_64 reconfigure_rng_;
  std::vector<link> links_;
  std::unordered_map<std::string, std::string> sessions_;  // session -> premise
  std::map<std::string, pending_batch> pending_;            // by session
  std::deque<std::pair<std::int64_t, std::string>> ageing_;  // pending batches by when they began
  std::unordered_map<std::string, sent_batch> last_batch_;   // by EUMD
  std::vector<decided_lines> record_;
  std::unordered_set<std::string> applied_ids_;  // frames whose ack said applied: at most one a fleet line
  std::unordered_map<std::string, std::int64_t> comm_timeout_s_;        // by utility
  std::unordered_map<std::string, std::string> utility_of_premise_;
  std::set<std::pair<std::int64_t, std::string>> awaiting_bind_;       // (bind deadline, session)
  std::unordered_map<std::string, std::int64_t> deadline_of_;           // of the sessions in awaiting_bind_
  bool clock_checked_ = false;
  std::unordered_map<std::string, std::pair<std::uint32_t, bytes>> keys_;  // a set-up device's key: its id, its bytes
  std::unordered_set<std::string> reconfigured_;                  // EUMDs the back office reconfigured
  // What the gateway told an EUMD, and the business time it heard it.
  std::unordered_map<std::string, std::pair<std::int64_t, std::int64_t>> interval_of_;
  std::int64_t now_ = 0;  // the business time of the fleet line taken last
  std::vector<std::uint64_t> latencies_;
  simulation_summary summary_;
  clock_type::time_point started_;
  status failed_ = status::ok();
};

}  // namespace

result<simulation_summary> simulate(const simulation_options& options) {
  if (auto why = check(options.fleet)) return status(errc::usage, *why);
  if (options.connections < 1 || options.connections > 256) return status(errc::usage, "connections: 1 to 256");
  if (options.window < 1 || options.window > 1024) return status(errc::usage, "window: 1 to 1,024 frames");
  if (options.batch_window_s < 0) return status(errc::usage, "the batch window is not negative");
  if (options.operator_key.size() < gateway::key_bytes_min)
    return status(errc::usage, "the back office needs the gateway's operator key");
  driver d(options);
  PEV_RETURN_IF_ERROR(d.open());
  generate_fleet(options.fleet, [&](std::string_view line) { return d.take(line); });
  return d.finish();
}

}  // namespace pevledger::sim
