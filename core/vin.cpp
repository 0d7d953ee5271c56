#include "core/vin.hpp"

namespace pevledger::core {
namespace {

// Transliteration of the VIN alphabet to numbers (ISO 3779 / 49 CFR 565); -1 outside the alphabet.
int transliterate(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  switch (c) {
    case 'A': case 'J': return 1;
    case 'B': case 'K': case 'S': return 2;
    case 'C': case 'L': case 'T': return 3;
    case 'D': case 'M': case 'U': return 4;
    case 'E': case 'N': case 'V': return 5;
    case 'F': case 'W': return 6;
    case 'G': case 'P': case 'X': return 7;
    case 'H': case 'Y': return 8;
    case 'R': case 'Z': return 9;
    default: return -1;  // I, O, Q, lower case and everything else
  }
}

constexpr int weights[17] = {8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2};

}  // namespace

bool is_valid_vin(std::string_view vin) noexcept {
  if (vin.size() != 17) return false;
  int sum = 0;
  for (std::size_t i = 0; i < 17; ++i) {
    const int v = transliterate(vin[i]);
    if (v < 0) return false;
    sum += v * weights[i];
  }
  const int check = sum % 11;
  const char expected = check == 10 ? 'X' : static_cast<char>('0' + check);
  return vin[8] == expected;
}

}  // namespace pevledger::core
