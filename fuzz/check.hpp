#pragma once
// The checks of the fuzz targets, their drivers and the world generator (what it promises the
// properties). A failed check prints what failed and aborts,
// which libFuzzer reports as a crash and ctest as a failed test; it stays on in every build.

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::fprintf(stderr, "fuzz: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);         \
      std::abort();                                                                                \
    }                                                                                              \
  } while (0)
