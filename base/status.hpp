#pragma once
// Errors as values inside pevledger: the public types (include/pevledger/status.hpp) and the
// macro that passes an error up.

#include "base/assert.hpp"
#include "pevledger/status.hpp"

// Returns the status of `expr` from the enclosing function when it is not ok.
#define PEV_RETURN_IF_ERROR(expr)            \
  do {                                       \
    ::pevledger::status pev_status_ = (expr); \
    if (!pev_status_.is_ok()) return pev_status_; \
  } while (0)
