#pragma once
// Random valid VINs for generated fleets: 17 characters of the VIN alphabet with the North
// American check digit in position 9 (SPEC section 2).

#include <random>
#include <string>

namespace pevledger::bench {

inline std::string random_vin(std::mt19937_64& rng) {
  static constexpr char alphabet[] = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";
  static constexpr int weights[17] = {8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2};
  auto value = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    static const std::string letters = "ABCDEFGHJKLMNPRSTUVWXYZ";
    static const int values[] = {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9};
    return values[letters.find(c)];
  };
  std::uniform_int_distribution<int> pick(0, 32);
  std::string v(17, '0');
  for (int i = 0; i < 17; ++i) v[i] = alphabet[pick(rng)];
  int sum = 0;
  for (int i = 0; i < 17; ++i)
    if (i != 8) sum += value(v[i]) * weights[i];
  const int check = sum % 11;
  v[8] = check == 10 ? 'X' : static_cast<char>('0' + check);
  return v;
}

}  // namespace pevledger::bench
