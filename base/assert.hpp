#pragma once
// Invariant checks. PEV_ASSERT stays on in release builds: a broken invariant in a ledger is a bug
// (or tampering), and continuing would write wrong money to disk. External input never reaches an
// assertion: it gets an error value instead. PEV_DEBUG_ASSERT is for checks too costly for a hot path.

#include <cstdio>
#include <cstdlib>

namespace pevledger::base {

[[noreturn]] inline void assertion_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "pevledger: invariant violated: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

}  // namespace pevledger::base

#define PEV_ASSERT(expr)                                                        \
  do {                                                                          \
    if (!(expr)) [[unlikely]]                                                   \
      ::pevledger::base::assertion_failed(#expr, __FILE__, __LINE__);           \
  } while (0)

#ifndef NDEBUG
#define PEV_DEBUG_ASSERT(expr) PEV_ASSERT(expr)
#else
#define PEV_DEBUG_ASSERT(expr) \
  do {                         \
  } while (0)
#endif
