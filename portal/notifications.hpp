#pragma once
// The notification outbox (docs/api.md, "Notifications"): every closed session's summary
// (SessionSummarized, written at unplug) as one JSON line, in log order, for a utility's mailer to
// send. Delivery is at least once: the mailer remembers the `seq` of the last line it handled and
// asks again from there (`after`); each notification's `id` is stable (one per session), so a
// mailer that crashed between sending and remembering can drop what it sees twice.

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "base/status.hpp"

namespace pevledger::portal {

struct outbox_options {
  std::uint64_t after = 0;  // the log position (seq) of the last notification already handled
  // Keep writing notifications as their groups become durable, looking every `poll_interval`,
  // until `stop` returns true.
  bool follow = false;
  std::chrono::milliseconds poll_interval{200};
  std::function<bool()> stop;
};

// Reads `db` read-only (beside a writer, or following one); flushes `out` after each look.
[[nodiscard]] status write_notifications(const std::string& db, std::ostream& out, const outbox_options& options);

}  // namespace pevledger::portal
