// Runs a libFuzzer target's entry point (LLVMFuzzerTestOneInput) once on every file of the
// directories given, in name order: the seed corpus, regression inputs included, as a ctest test of
// every build (the sanitizer build too), without clang. A failed check aborts, as under libFuzzer:
// the target's own, and the driver's that each seed is read whole and answered with 0.
//
//   TARGET_corpus DIR...    prints how many inputs ran; exit 2 when a directory has no input or holds
//                           one too large to be a seed

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "fuzz/check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  // A seed is small; a larger file is a mistake in the corpus, not an input to hold whole.
  constexpr std::uintmax_t input_bytes_max = 1u << 20;
  std::size_t ran = 0;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    std::vector<std::filesystem::path> inputs;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i], ec))
      if (entry.is_regular_file()) inputs.push_back(entry.path());
    if (ec || inputs.empty()) {
      std::fprintf(stderr, "%s: no inputs in %s\n", argv[0], argv[i]);
      return 2;
    }
    std::sort(inputs.begin(), inputs.end());
    for (const auto& path : inputs) {
      if (std::filesystem::file_size(path) > input_bytes_max) {
        std::fprintf(stderr, "%s: %s is over %ju bytes\n", argv[0], path.c_str(), input_bytes_max);
        return 2;
      }
      std::ifstream in(path, std::ios::binary);
      const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      FUZZ_CHECK(bytes.size() == std::filesystem::file_size(path));
      // libFuzzer's contract: 0, or -1 to keep an input out of the corpus; a seed is never kept out.
      const int answer = LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      if (answer != 0) std::fprintf(stderr, "%s: %s: the target answered %d, not 0\n", argv[0], path.c_str(), answer);
      FUZZ_CHECK(answer == 0);
      ++ran;
    }
  }
  std::printf("%zu inputs ran\n", ran);
  return 0;
}
