#include "portal/notifications.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <ostream>
#include <thread>

#include "base/time.hpp"
#include "storage/event_log.hpp"

namespace pevledger::portal {
namespace {

namespace fb = pevledger::schema;
using json = nlohmann::ordered_json;

// Records read per scan: a look at a long log is many bounded scans, each flushed.
constexpr std::uint64_t records_per_scan = 1u << 16;

json nullable(const flatbuffers::String* s) { return s == nullptr || s->size() == 0 ? json(nullptr) : json(s->str()); }

json notification_of(const fb::Record& r, const fb::SessionSummarized& e) {
  json j;
  j["seq"] = r.global_seq();
  j["id"] = "session-summary/" + e.session()->str();
  j["at"] = format_timestamp(unix_seconds(r.at()));
  j["session"] = e.session()->str();
  j["premise"] = e.premise()->str();
  j["utility"] = e.utility()->str();
  j["premise_account"] = e.premise_account()->str();
  j["began"] = format_timestamp(unix_seconds(e.began()));
  j["ended"] = format_timestamp(unix_seconds(e.ended()));
  j["wh"] = e.wh();
  j["payer"] = fb::EnumNamePayer(e.payer());
  j["reason"] = e.reason() == fb::FallbackReason::none ? json(nullptr) : json(fb::EnumNameFallbackReason(e.reason()));
  j["payer_account"] = nullable(e.payer_account());
  j["pev"] = nullable(e.pev());
  j["amount_micro"] = e.amount_micro();
  j["credit_account"] = nullable(e.credit_account());
  j["credit_micro"] = e.credit_micro();
  return j;
}

}  // namespace

status write_notifications(const std::string& db, std::ostream& out, const outbox_options& options) {
  storage::log_options log_options;
  log_options.access = storage::log_access::read_only;
  log_options.follow_writer = options.follow;
  auto opened = storage::event_log::open(db, log_options);
  if (!opened) return opened.error();
  storage::event_log& log = *opened.value();
  std::uint64_t next = options.after + 1;
  for (;;) {
    const std::uint64_t head = log.last_seq().value();
    while (next <= head) {
      const std::uint64_t last = std::min(head, next + records_per_scan - 1);
      PEV_RETURN_IF_ERROR(log.scan(log_seq(next), log_seq(last), [&](const fb::Record& r) -> status {
        if (const auto* e = r.body_nested_root()->event_as_SessionSummarized())
          out << notification_of(r, *e).dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
        return status::ok();
      }));
      next = last + 1;
      out.flush();
      if (!out) return status(errc::io_error, "writing the notifications failed");
    }
    if (!options.follow) return status::ok();
    const auto wake = std::chrono::steady_clock::now() + options.poll_interval;
    while (std::chrono::steady_clock::now() < wake) {  // short sleeps: a stop is seen within 20 ms
      if (options.stop && options.stop()) return status::ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (options.stop && options.stop()) return status::ok();
    auto caught = log.catch_up();
    if (!caught) return caught.error();
  }
}

}  // namespace pevledger::portal
