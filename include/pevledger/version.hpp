#pragma once
// The version of pevledger's library, its API and its on-disk format.
//
// Versioning: MAJOR.MINOR.PATCH. Within one MAJOR, the API of the public headers
// (include/pevledger/) is stable: existing functions, types, fields and error codes keep their
// meaning; a MINOR adds to them. While MAJOR is 0, a MINOR may still change the API, and the
// README lists what already holds. The on-disk format has a version of its own
// (log_format_written() in engine.hpp): a build refuses a format it does not read.

#define PEVLEDGER_VERSION_MAJOR 0
#define PEVLEDGER_VERSION_MINOR 4
#define PEVLEDGER_VERSION_PATCH 0

namespace pevledger {

// "0.4.0": the library the program runs with (which may be newer than the headers it was built with).
[[nodiscard]] const char* library_version() noexcept;

}  // namespace pevledger
