#include "gateway/server.hpp"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <queue>
#include <unordered_map>
#include <variant>
#include <vector>

#include "base/assert.hpp"
#include "gateway/frame.hpp"
#include "gateway/keys.hpp"
#include "gateway/requests.hpp"
#include "schema/field_checks.hpp"

namespace pevledger::gateway {
namespace {

namespace p = pevledger::protocol;
using bytes = std::vector<std::uint8_t>;

constexpr unsigned ring_entries = 256;
constexpr std::size_t receive_bytes = 32u << 10;
constexpr int listen_backlog = 128;
constexpr std::int64_t wait_ms = 100;
// After a stop: how long replies already decided may take to leave.
constexpr int drain_turns_max = 20;
// Interval batches and back-office lines held for the engine before it is called: well within
// one call's bound.
constexpr std::size_t waiting_bytes_max = 16u << 20;
// Devices known to sign their frames (set up, or seen signing since the start); beyond it a
// device is checked only when it signs. The same bound holds the devices whose connection is
// known, and the EUMDs waiting to hear a new interval.
constexpr std::size_t signing_devices_max = 1u << 20;
// On the wall clock, a plug-in stamped more than this ahead of the host's time gets no timer.
constexpr std::int64_t plug_ahead_of_wall_clock_max_s = 86'400;

enum class op : std::uint8_t { accept = 1, receive, send };

std::uint64_t user_data(std::size_t slot, op what) { return (static_cast<std::uint64_t>(slot) << 8) | static_cast<std::uint8_t>(what); }
std::size_t slot_of(std::uint64_t data) { return static_cast<std::size_t>(data >> 8); }
op op_of(std::uint64_t data) { return static_cast<op>(data & 0xff); }

// A gateway frame to `device`: unsigned (devices do not hold a key of the gateway's).
template <class Make>
bytes reply(const std::string& device, Make make) {
  return encode_frame(build_envelope(device, std::nullopt, 0, make));
}

bytes error_reply(const frame_error& e) {
  return reply("", [&](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::Error,
                     p::CreateErrorDirect(fbb, std::string(to_string(e.code)).c_str(), e.message.c_str()).Union()};
  });
}

std::int64_t seconds_of(timestamp t) { return t.time_since_epoch().count(); }

bytes grant_reply(const std::string& device, const energy_grant& g) {
  return reply(device, [&](flatbuffers::FlatBufferBuilder& fbb) {
    const std::int64_t start = seconds_of(g.start), depart = seconds_of(g.depart);
    return std::pair{p::Message::EnergyGrant,
                     p::CreateEnergyGrantDirect(fbb, g.session.c_str(), g.wh, start, depart, g.price_micro_per_kwh,
                                                std::max<std::int64_t>(0, depart - start))
                         .Union()};
  });
}

bytes setup_done_reply(const std::string& device, const std::string& pev, std::uint32_t key_id, const bytes& key) {
  return reply(device, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::SetupDone, p::CreateSetupDoneDirect(fbb, pev.c_str(), key_id, &key).Union()};
  });
}

bytes configure_reply(const std::string& eumd, std::int64_t interval_s) {
  return reply(eumd, [&](flatbuffers::FlatBufferBuilder& fbb) {
    return std::pair{p::Message::EumdConfigure, p::CreateEumdConfigureDirect(fbb, eumd.c_str(), interval_s).Union()};
  });
}

bytes timed_out_notice(const std::string& device, const command& timeout, std::uint64_t decided) {
  return reply(device, [&](flatbuffers::FlatBufferBuilder& fbb) {
    const auto& session = std::get<commands::session_timeout>(timeout.body).session;
    return std::pair{p::Message::SessionTimedOut,
                     p::CreateSessionTimedOutDirect(fbb, session.c_str(), timeout.id.c_str(), seconds_of(timeout.at),
                                                    decided)
                         .Union()};
  });
}

// The id of the session.timeout the timer sends: one per session, so that a second is a duplicate.
std::string timeout_id(const std::string& session) {
  if (session.size() + 8 <= limits::identifier_bytes_max) return "timeout:" + session;
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a: a session id too long to prefix
  for (const unsigned char ch : session) h = (h ^ ch) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return "timeout#" + std::string(hex);
}

// A communication-timeout timer: when its plug-in's session times out, in business seconds.
struct timer {
  std::int64_t fires_after = 0;
  std::string session;
  bool operator>(const timer& o) const { return fires_after > o.fires_after; }
};

bytes ack_reply(const std::string& device, const std::string& id, const command_outcome& o, std::uint64_t decided) {
  return reply(device, [&](flatbuffers::FlatBufferBuilder& fbb) {
    const p::Outcome outcome = o.what == command_outcome::kind::accepted    ? p::Outcome::accepted
                               : o.what == command_outcome::kind::duplicate ? p::Outcome::duplicate
                                                                            : p::Outcome::refused;
    const std::string code = o.refusal.is_ok() ? std::string() : std::string(to_string(o.refusal.code()));
    return std::pair{p::Message::Ack,
                     p::CreateAckDirect(fbb, id.c_str(), outcome, code.c_str(), o.refusal.message().c_str(), decided).Union()};
  });
}

}  // namespace

// One connection speaking the device protocol: its frames in, its replies out.
struct connection {
  int fd = -1;
  std::uint64_t generation = 0;  // tells a request's connection from a later one in the same slot
  frame_splitter splitter;
  bytes received;  // receive_bytes while connected; nothing for a free slot
  std::deque<bytes> replies;
  std::size_t replies_bytes = 0;
  std::size_t sent = 0;  // of replies.front()
  bool receiving = false, sending = false;
  bool closing = false;  // no more reading; closes once its replies are sent
};

// A back-office command line, copied out of its frame.
struct back_office_line {
  std::string line;
};

// A frame's request, waiting for the engine with what its acknowledgement needs. The frame is
// reused once read, so a batch's bytes and a line are copies.
struct waiting_request {
  std::size_t slot;
  std::uint64_t generation;
  std::string device, id;
  std::variant<command, bytes, back_office_line, clock_tick> what;
};

struct server::impl {
  engine* eng = nullptr;
  server_options options;
  int listener = -1;
  std::uint16_t bound_port = 0;
  io_uring ring{};
  bool ring_ready = false;
  bool accepting = false;
  bool stopping = false;  // no new connections
  std::vector<connection> slots;
  std::vector<std::size_t> free_slots;
  std::uint64_t generations = 0;
  std::vector<waiting_request> waiting;
  std::size_t waiting_bytes = 0;  // of interval batches and back-office lines among them
  std::uint64_t decided = 0;      // requests handed to the engine so far, in that order
  server_stats stats;
  // The communication-timeout timers (at most options.timers_max), and the deadline each armed
  // session's timer has: a timer whose session is no longer armed (bound, unplugged) is skipped.
  std::priority_queue<timer, std::vector<timer>, std::greater<>> timers;
  std::unordered_map<std::string, std::int64_t> armed;
  std::int64_t back_office_now = std::numeric_limits<std::int64_t>::min();  // the last Clock's time
  // The connection the back office spoke on last: where SessionTimedOut goes.
  std::optional<std::pair<std::size_t, std::uint64_t>> back_office_connection;
  // Device keys (gateway/keys.hpp): derived from the operator key, so none without one. `signing`:
  // the devices that must sign, and the number of the key each signed with last.
  bytes device_secret;
  std::unordered_map<std::string, std::uint32_t> signing;
  // The setups that issued keys since the start, by id: the ESCI and the EUMD they issued them to.
  // A resend (a duplicate) is answered only from here, never from its own body.
  struct keyed_setup {
    std::string esci, eumd, pev;
  };
  std::unordered_map<std::string, keyed_setup> setups_keyed;
  // Each ESCI's last setup that issued keys: a resend of an earlier one issues nothing (its keys
  // were superseded). Bounded like setups_keyed.
  std::unordered_map<std::string, std::string> last_setup_of;
  // The connection each device spoke on last, and the EUMDs to be told a new interval when they
  // next speak (device.configure while they were not connected).
  std::unordered_map<std::string, std::pair<std::size_t, std::uint64_t>> device_connection;
  std::unordered_map<std::string, std::int64_t> intervals_to_tell;

  ~impl() {
    for (connection& c : slots)
      if (c.fd >= 0) ::close(c.fd);
    if (listener >= 0) ::close(listener);
    if (ring_ready) io_uring_queue_exit(&ring);
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s == nullptr) {
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    PEV_ASSERT(s != nullptr);  // submitting frees the whole queue
    return s;
  }

  void arm_accept() {
    if (accepting || stopping || free_slots.empty()) return;
    io_uring_sqe* s = sqe();
    io_uring_prep_accept(s, listener, nullptr, nullptr, 0);
    io_uring_sqe_set_data64(s, user_data(0, op::accept));
    accepting = true;
  }

  void arm_receive(std::size_t slot) {
    connection& c = slots[slot];
    if (c.receiving || c.closing || c.fd < 0 || c.replies_bytes > options.replies_bytes_max) return;
    io_uring_sqe* s = sqe();
    io_uring_prep_recv(s, c.fd, c.received.data(), c.received.size(), 0);
    io_uring_sqe_set_data64(s, user_data(slot, op::receive));
    c.receiving = true;
  }

  void arm_send(std::size_t slot) {
    connection& c = slots[slot];
    if (c.sending || c.fd < 0 || c.replies.empty()) return;
    const bytes& next = c.replies.front();
    io_uring_sqe* s = sqe();
    io_uring_prep_send(s, c.fd, next.data() + c.sent, next.size() - c.sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, user_data(slot, op::send));
    c.sending = true;
  }

  void queue_reply(std::size_t slot, bytes frame) {
    connection& c = slots[slot];
    c.replies_bytes += frame.size();
    c.replies.push_back(std::move(frame));
    arm_send(slot);
  }

  // Stops reading `slot`; its socket closes once nothing is in flight and its replies are sent.
  void close_when_done(std::size_t slot) {
    connection& c = slots[slot];
    if (!c.closing) {
      c.closing = true;
      ::shutdown(c.fd, SHUT_RD);  // a receive in flight completes
    }
    if (c.receiving || c.sending || !c.replies.empty()) return;
    ::close(c.fd);
    c = connection{};
    free_slots.push_back(slot);
    arm_accept();
  }

  // The operator key for the back office; a device's key numbered `key_id`, or for a frame that
  // names none the key a signing device used last (so that it is missing_mac or bad_mac).
  std::optional<bytes> key_of(std::string_view device, std::optional<std::uint32_t> key_id) const {
    if (!options.operator_device.empty() && device == options.operator_device) return options.operator_key;
    if (device_secret.empty()) return std::nullopt;
    if (key_id) return device_key(device_secret, device, *key_id);
    if (const auto found = signing.find(std::string(device)); found != signing.end())
      return device_key(device_secret, device, found->second);
    return std::nullopt;
  }

  // A device spoke on a connection: an EUMD that was reconfigured meanwhile hears its interval.
  void spoke_on(const std::string& device, std::size_t slot, std::uint64_t generation) {
    if (device_connection.size() < signing_devices_max || device_connection.count(device) != 0)
      device_connection[device] = {slot, generation};
    if (const auto waiting = intervals_to_tell.find(device); waiting != intervals_to_tell.end()) {
      queue_reply(slot, configure_reply(device, waiting->second));
      ++stats.configures;
      intervals_to_tell.erase(waiting);
    }
  }

  // device.configure changed an EUMD's interval (from the back office): tell the EUMD now if it
  // is connected, else when it next speaks. An EUMD that said so itself (EumdConfigured) knows.
  void tell_interval(const waiting_request& w, const command_outcome::eumd_interval& r) {
    if (w.device == r.eumd) return;
    const auto known = device_connection.find(r.eumd);
    if (known != device_connection.end() && connected(known->second.first, known->second.second)) {
      queue_reply(known->second.first, configure_reply(r.eumd, r.interval_s));
      ++stats.configures;
    } else if (intervals_to_tell.size() < signing_devices_max || intervals_to_tell.count(r.eumd) != 0) {
      intervals_to_tell[r.eumd] = r.interval_s;
    }
  }

  void signs_from_now(const std::string& device, std::uint32_t key_id) {
    if (signing.size() < signing_devices_max || signing.count(device) != 0) signing[device] = key_id;
  }

  // A frame without a MAC from a device that must sign passes open_frame only as a Setup; it is
  // let through only as the resend of the setup that issued the key the device holds (its sender
  // heard no answer, so it has no key to sign with). Any other Setup from it is signed.
  bool unsigned_setup_allowed(const std::string& device, const p::Envelope& e) const {
    if (signing.count(device) == 0) return true;  // not known to sign: nothing to prove
    if (e.message_type() != p::Message::Setup || e.id() == nullptr) return false;
    const auto keyed = setups_keyed.find(e.id()->str());
    return keyed != setups_keyed.end() && keyed->second.esci == device &&
           signing.at(device) == key_id_of_setup(keyed->first);
  }

  // An accepted setup (or its resend) issues the ESCI and the EUMD their key, after the ack: from
  // then on their frames must be signed. The ESCI passes the EUMD's on at the premise. Keys go only
  // to the ESCI the setup names, speaking for itself; a duplicate (an id already taken, which says
  // nothing of the body it was taken for) only to an ESCI whose key this setup issued since start.
  // `heard`: the setup's connection is still open; if not, the keys are issued all the same and
  // the device hears them when it sends the setup again.
  void issue_keys(const waiting_request& w, const commands::pev_setup& setup, command_outcome::kind what, bool heard) {
    const std::uint32_t key_id = key_id_of_setup(w.id);
    keyed_setup devices{setup.esci, setup.eumd, setup.pev};
    if (what == command_outcome::kind::duplicate) {
      const auto keyed = setups_keyed.find(w.id);
      if (keyed == setups_keyed.end()) return;  // not keyed by this gateway: nothing to resend
      devices = keyed->second;
      const auto last = last_setup_of.find(devices.esci);
      if (last == last_setup_of.end() || last->second != w.id) return;  // a later setup re-keyed it
      if (w.device != devices.esci) return;
    } else {
      if (w.device != devices.esci) return;
      if (setups_keyed.size() < signing_devices_max) setups_keyed[w.id] = devices;
      // Even when the record is full: an earlier setup of this ESCI must not be answered again.
      if (last_setup_of.size() < signing_devices_max || last_setup_of.count(devices.esci) != 0)
        last_setup_of[devices.esci] = w.id;
    }
    for (const std::string& device : {devices.esci, devices.eumd}) {
      signs_from_now(device, key_id);
      if (heard) queue_reply(w.slot, setup_done_reply(device, devices.pev, key_id, device_key(device_secret, device, key_id)));
    }
  }

  // A connection's bytes: whole frames become waiting requests; a frame that cannot be read ends it.
  status take_bytes(std::size_t slot, std::span<const std::uint8_t> in) {
    connection& c = slots[slot];
    while (!in.empty() && !c.closing) {
      const std::size_t took = c.splitter.feed(in);
      in = in.subspan(took);
      std::optional<frame_error> error;
      while (auto frame = c.splitter.next(error)) {
        ++stats.frames;
        const auto opened = open_frame(
            *frame, [&](std::string_view device, std::optional<std::uint32_t> key_id) { return key_of(device, key_id); },
            error);
        if (!opened) break;
        const p::Envelope& e = *opened->envelope;
        const std::string device = e.device()->str();
        const bool from_operator = !options.operator_device.empty() && device == options.operator_device;
        if (!opened->signed_by_key && (from_operator || !unsigned_setup_allowed(device, e))) {
          error = frame_error{frame_errc::missing_mac, "device '" + device + "' signs its frames"};
          break;
        }
        const auto request = request_of(e, from_operator, error);
        if (!request) break;
        // Only a frame that proved its sender may change what the gateway holds about that device.
        if (opened->key_id && !from_operator) signs_from_now(device, *opened->key_id);
        if (!from_operator && (opened->signed_by_key || signing.count(device) == 0)) spoke_on(device, slot, c.generation);
        if (from_operator) back_office_connection = std::pair{slot, c.generation};
        waiting_request w{slot, c.generation, e.device()->str(), e.id() == nullptr ? std::string() : e.id()->str(), bytes()};
        if (const auto* cmd = std::get_if<command>(&*request)) {
          w.what = *cmd;
        } else if (const auto* tick = std::get_if<clock_tick>(&*request)) {
          w.what = *tick;
        } else if (const auto* line = std::get_if<operator_line>(&*request)) {
          w.what = back_office_line{std::string(line->line)};
          waiting_bytes += line->line.size();
        } else {
          const auto batch = std::get<interval_batch_bytes>(*request).bytes;
          w.what = bytes(batch.begin(), batch.end());
          waiting_bytes += batch.size();
        }
        waiting.push_back(std::move(w));
        if (waiting.size() >= options.requests_max || waiting_bytes >= waiting_bytes_max)
          PEV_RETURN_IF_ERROR(decide_waiting());
      }
      if (error) {
        ++stats.frame_errors;
        if (error->code == frame_errc::bad_mac) ++stats.bad_macs;
        if (options.on_frame_error) options.on_frame_error(*error);
        queue_reply(slot, error_reply(*error));
        close_when_done(slot);
        return status::ok();
      }
      PEV_ASSERT(took > 0);  // frames are taken as they complete, so a splitter always has room
    }
    return status::ok();
  }

  // Hands the waiting requests to the engine, a call per run of commands or of batches, and
  // queues each acknowledgement: the engine returns once they are durable.
  //
  // The latency lane: frames of different connections read in one turn were sent concurrently, so
  // any order among them is one the devices could have caused. Each connection's leading commands
  // (a plug, a bind, an energy request: what a device waits on) therefore go first, in one call,
  // and their acks leave before the interval batches are decided. A connection's own frames keep
  // their order.
  status decide_waiting() {
    std::vector<waiting_request> lane, rest;
    std::vector<bool> behind(slots.size(), false);  // a connection whose batch or back-office line came before
    for (waiting_request& w : waiting) {
      const bool device_command = std::holds_alternative<command>(w.what);
      if (!device_command) behind[w.slot] = true;
      (!device_command || behind[w.slot] ? rest : lane).push_back(std::move(w));
    }
    waiting.clear();
    waiting_bytes = 0;
    PEV_RETURN_IF_ERROR(decide_in_order(lane));
    io_uring_submit(&ring);  // the lane's acks leave now, not after the batches
    return decide_in_order(rest);
  }

  status decide_in_order(std::vector<waiting_request>& requests) {
    std::size_t from = 0;
    while (from < requests.size()) {
      const std::size_t kind = requests[from].what.index();
      std::size_t to = from;
      while (to < requests.size() && requests[to].what.index() == kind) ++to;
      if (std::holds_alternative<clock_tick>(requests[from].what)) {
        for (std::size_t i = from; i < to; ++i) PEV_RETURN_IF_ERROR(set_clock(requests[i]));
        from = to;
        continue;
      }
      result<std::vector<command_outcome>> outcomes = status(errc::io_error, "not decided");
      if (std::holds_alternative<bytes>(requests[from].what)) {
        std::vector<std::span<const std::uint8_t>> spans;
        for (std::size_t i = from; i < to; ++i) spans.emplace_back(std::get<bytes>(requests[i].what));
        outcomes = eng->submit_interval_batches(spans);
      } else if (std::holds_alternative<back_office_line>(requests[from].what)) {
        std::vector<std::string> lines;
        for (std::size_t i = from; i < to; ++i) lines.push_back(std::move(std::get<back_office_line>(requests[i].what).line));
        outcomes = eng->submit_lines(lines);
      } else {
        std::vector<command> commands;
        for (std::size_t i = from; i < to; ++i) commands.push_back(std::get<command>(requests[i].what));
        outcomes = eng->submit(commands);
      }
      if (!outcomes) return outcomes.error();
      for (std::size_t i = from; i < to; ++i) {
        const command_outcome& o = outcomes.value()[i - from];
        (o.what == command_outcome::kind::accepted ? stats.accepted
         : o.what == command_outcome::kind::duplicate ? stats.duplicates
                                                      : stats.refused) += 1;
        const waiting_request& w = requests[i];
        ++decided;
        if (const auto* cmd = std::get_if<command>(&w.what)) follow_timers(*cmd, o);
        if (o.reconfigured) tell_interval(w, *o.reconfigured);
        const bool heard = connected(w.slot, w.generation);  // else gone: the device resends
        if (heard) queue_reply(w.slot, ack_reply(w.device, w.id, o, decided));
        // Keys are issued (and a resend answered from that record) whether or not this answer is heard.
        if (const auto* cmd = std::get_if<command>(&w.what); cmd != nullptr && !device_secret.empty() &&
                                                             o.what != command_outcome::kind::refused)
          if (const auto* setup = std::get_if<commands::pev_setup>(&cmd->body)) issue_keys(w, *setup, o.what, heard);
        if (!heard) continue;
        if (o.grant) {  // to whoever asked: a device, or the back office
          ++stats.grants;
          queue_reply(w.slot, grant_reply(w.device, *o.grant));
        }
      }
      from = to;
    }
    requests.clear();
    return status::ok();
  }

  bool connected(std::size_t slot, std::uint64_t generation) const {
    return slots[slot].fd >= 0 && slots[slot].generation == generation;
  }

  // An accepted plug-in arms its session's timer; an accepted bind or unplug disarms it.
  // On the wall clock, a plug-in that arrives late (its link was down) still gets the timeout's
  // length for its bind to arrive; on the back office's clock the deadline is exact.
  void follow_timers(const command& cmd, const command_outcome& o) {
    if (o.what != command_outcome::kind::accepted) return;
    if (o.bind_deadline) {
      const auto& session = std::get<commands::session_plug>(cmd.body).session;
      std::int64_t fires_after = seconds_of(*o.bind_deadline);
      const std::int64_t timeout = fires_after - seconds_of(cmd.at);
      if (options.clock == server_options::business_clock::wall) {
        const std::int64_t now = *business_now();
        // A device clock a day ahead of ours: no timer that would wait that long.
        if (seconds_of(cmd.at) > now + plug_ahead_of_wall_clock_max_s) {
          ++stats.timers_not_armed;
          return;
        }
        fires_after = std::max(fires_after, now + timeout);
      }
      if (armed.size() >= options.timers_max) {
        ++stats.timers_not_armed;
        return;
      }
      // Timers of sessions bound or unplugged wait in the heap until they are due: rebuilt from
      // the armed ones when they outnumber them, so the heap stays within twice the bound.
      if (timers.size() >= 2 * armed.size() + 1024) {
        std::vector<timer> live;
        live.reserve(armed.size());
        for (const auto& [s, t] : armed) live.push_back({t, s});
        timers = decltype(timers)(std::greater<>(), std::move(live));
      }
      timers.push({fires_after, session});
      armed[session] = fires_after;
    } else if (const auto* bind = std::get_if<commands::session_bind>(&cmd.body)) {
      armed.erase(bind->session);
    } else if (const auto* unplug = std::get_if<commands::session_unplug>(&cmd.body)) {
      armed.erase(unplug->session);
    }
  }

  // Business time now, or nullopt before the back office said it (a back-office clock).
  std::optional<std::int64_t> business_now() const {
    if (options.clock == server_options::business_clock::wall)
      return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (back_office_now == std::numeric_limits<std::int64_t>::min()) return std::nullopt;
    return back_office_now;
  }

  // A Clock from the back office: the time moves on (never back), the timeouts it passes are
  // decided, then the Clock is acknowledged, so its ack comes after their notices.
  status set_clock(const waiting_request& w) {
    command_outcome o;
    const std::int64_t at = std::get<clock_tick>(w.what).at;
    if (options.clock != server_options::business_clock::back_office) {
      o = {command_outcome::kind::refused,
           status(errc::invalid_state, "this gateway's clock is the wall clock (serve --clock back-office)")};
      ++stats.refused;
    } else if (!schema::is_business_time(unix_seconds(at))) {
      o = {command_outcome::kind::refused,
           status(errc::invalid_field, "a Clock's time lies between 1970-01-03 and 9999-12-29 (README, \"Times\")")};
      ++stats.refused;
    } else {
      back_office_now = std::max(back_office_now, at);
      // The notices go where the Clock came from, ahead of its ack.
      PEV_RETURN_IF_ERROR(decide_due_timeouts(std::pair{w.slot, w.generation}));
      ++stats.accepted;
    }
    ++decided;
    if (connected(w.slot, w.generation)) queue_reply(w.slot, ack_reply(w.device, w.id, o, decided));
    return status::ok();
  }

  // Sends the engine a session.timeout for every armed timer the business clock passed (in time
  // means at most comm_timeout_s after plug-in), requests_max a call.
  status decide_due_timeouts(std::optional<std::pair<std::size_t, std::uint64_t>> tell) {
    const std::optional<std::int64_t> now = business_now();
    if (!now) return status::ok();
    while (!timers.empty() && timers.top().fires_after < *now) {
      std::vector<command> due;
      while (!timers.empty() && timers.top().fires_after < *now && due.size() < options.requests_max) {
        timer t = timers.top();
        timers.pop();
        const auto found = armed.find(t.session);
        if (found == armed.end() || found->second != t.fires_after) continue;  // bound, unplugged or armed again
        armed.erase(found);
        due.push_back(command{timeout_id(t.session), timestamp(std::chrono::seconds(*now)),
                              commands::session_timeout{std::move(t.session)}});
      }
      if (due.empty()) continue;
      auto outcomes = eng->submit(due);
      if (!outcomes) return outcomes.error();
      for (std::size_t i = 0; i < due.size(); ++i) {
        ++decided;
        // Refused (invalid_state): decided some other way meanwhile, by a back-office line (a bind,
        // a bill run) or a frame that had no timer.
        if (outcomes.value()[i].what != command_outcome::kind::accepted) continue;
        ++stats.timeouts;
        if (tell && connected(tell->first, tell->second))
          queue_reply(tell->first, timed_out_notice(options.operator_device, due[i], decided));
      }
    }
    return status::ok();
  }

  status on_completion(const io_uring_cqe& cqe) {
    const std::size_t slot = slot_of(cqe.user_data);
    switch (op_of(cqe.user_data)) {
      case op::accept: {
        accepting = false;
        if (cqe.res < 0) return status::ok();  // the listener closed at a stop, or a transient error
        PEV_ASSERT(!free_slots.empty());       // accept is armed only with a free slot
        const std::size_t s = free_slots.back();
        free_slots.pop_back();
        const int one = 1;
        ::setsockopt(cqe.res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // acks leave at once
        slots[s].fd = cqe.res;
        slots[s].generation = ++generations;
        slots[s].received.resize(receive_bytes);
        ++stats.connections;
        arm_receive(s);
        arm_accept();
        return status::ok();
      }
      case op::receive: {
        connection& c = slots[slot];
        c.receiving = false;
        if (cqe.res > 0 && !c.closing) {
          PEV_RETURN_IF_ERROR(take_bytes(slot, std::span(c.received).first(static_cast<std::size_t>(cqe.res))));
          arm_receive(slot);
          return status::ok();
        }
        if (cqe.res == 0 && !c.closing) {
          if (auto cut = c.splitter.finish()) {
            ++stats.frame_errors;
            if (options.on_frame_error) options.on_frame_error(*cut);
            queue_reply(slot, error_reply(*cut));
          }
        }
        close_when_done(slot);
        return status::ok();
      }
      case op::send: {
        connection& c = slots[slot];
        c.sending = false;
        if (cqe.res <= 0) {  // the peer went away: what it did not get, it sends again
          c.replies.clear();
          c.replies_bytes = 0;
          close_when_done(slot);
          return status::ok();
        }
        c.sent += static_cast<std::size_t>(cqe.res);
        if (c.sent == c.replies.front().size()) {
          c.replies_bytes -= c.replies.front().size();
          c.replies.pop_front();
          c.sent = 0;
        }
        arm_send(slot);
        if (c.closing) close_when_done(slot);
        else arm_receive(slot);  // replies drained below the bound: read again
        return status::ok();
      }
    }
    return status::ok();
  }

  // One turn: wait up to wait_ms for completions, handle every one ready, then decide what they
  // brought.
  status turn() {
    io_uring_submit(&ring);
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec timeout{0, wait_ms * 1'000'000};
    const int waited = io_uring_wait_cqe_timeout(&ring, &cqe, &timeout);
    if (waited < 0 && waited != -ETIME && waited != -EINTR)
      return status(errc::io_error, std::string("io_uring: ") + std::strerror(-waited));
    unsigned head = 0, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      PEV_RETURN_IF_ERROR(on_completion(*cqe));
    }
    io_uring_cq_advance(&ring, seen);
    if (!waiting.empty()) PEV_RETURN_IF_ERROR(decide_waiting());
    // The wall clock moves on its own: a timeout is decided within a turn (wait_ms) of its passing.
    if (options.clock == server_options::business_clock::wall)
      PEV_RETURN_IF_ERROR(decide_due_timeouts(back_office_connection));
    return status::ok();
  }
};

server::server(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
server::~server() = default;

result<std::unique_ptr<server>> server::listen(engine& engine, server_options options) {
  if (options.connections_max < 1 || options.connections_max > 65536)
    return status(errc::usage, "connections_max must be 1 to 65536");
  if (options.requests_max < 1) return status(errc::usage, "requests_max must be at least 1");
  if (!options.operator_device.empty() && options.operator_key.empty())
    return status(errc::usage, "a back office needs its key");
  auto p = std::make_unique<impl>();
  p->eng = &engine;
  p->options = options;
  if (!options.operator_key.empty()) p->device_secret = device_key_secret(options.operator_key);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(options.port);
  if (::inet_pton(AF_INET, options.host.c_str(), &address.sin_addr) != 1)
    return status(errc::usage, "'" + options.host + "' is not an IPv4 address");
  p->listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listener < 0) return status(errc::io_error, std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(p->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(p->listener, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(p->listener, listen_backlog) != 0)
    return status(errc::io_error, "cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " +
                                      std::strerror(errno));
  socklen_t length = sizeof address;
  ::getsockname(p->listener, reinterpret_cast<sockaddr*>(&address), &length);
  p->bound_port = ntohs(address.sin_port);
  // Room for every completion that can be outstanding: a receive and a send per connection, and
  // the accept (the kernel keeps overflow too, but need not).
  io_uring_params params{};
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = static_cast<unsigned>(std::max<std::size_t>(2 * ring_entries, 2 * options.connections_max + 1));
  if (const int r = io_uring_queue_init_params(ring_entries, &p->ring, &params); r < 0)
    return status(errc::io_error, std::string("io_uring: ") + std::strerror(-r));
  p->ring_ready = true;
  p->slots.resize(options.connections_max);
  for (std::size_t i = options.connections_max; i > 0; --i) p->free_slots.push_back(i - 1);
  return std::unique_ptr<server>(new server(std::move(p)));
}

std::uint16_t server::port() const { return impl_->bound_port; }
const server_stats& server::stats() const { return impl_->stats; }

status server::run(const std::function<bool()>& stop) {
  impl& m = *impl_;
  m.arm_accept();
  while (!stop()) PEV_RETURN_IF_ERROR(m.turn());
  // Stopping: no new connections or frames; what was read is decided and its replies leave.
  m.stopping = true;
  ::shutdown(m.listener, SHUT_RDWR);
  for (std::size_t s = 0; s < m.slots.size(); ++s)
    if (m.slots[s].fd >= 0) m.close_when_done(s);
  for (int i = 0; i < drain_turns_max; ++i) {
    PEV_RETURN_IF_ERROR(m.turn());
    bool busy = m.accepting;
    for (const connection& c : m.slots) busy = busy || c.fd >= 0;
    if (!busy) break;
  }
  return status::ok();
}

}  // namespace pevledger::gateway
