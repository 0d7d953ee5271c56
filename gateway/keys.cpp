#include "gateway/keys.hpp"

#include <fstream>

#include "gateway/frame.hpp"

namespace pevledger::gateway {
namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr std::size_t key_file_bytes_max = 4096;

}  // namespace

result<std::vector<std::uint8_t>> key_from_hex(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return status(errc::invalid_field, "the key is empty");
  text = text.substr(first, text.find_last_not_of(" \t\r\n") + 1 - first);
  if (text.size() % 2 != 0 || text.size() < 2 * key_bytes_min || text.size() > 2 * key_bytes_max)
    return status(errc::invalid_field, "a key is " + std::to_string(2 * key_bytes_min) + " to " +
                                           std::to_string(2 * key_bytes_max) + " hex digits, an even number");
  std::vector<std::uint8_t> key(text.size() / 2);
  for (std::size_t i = 0; i < key.size(); ++i) {
    const int high = hex_digit(text[2 * i]), low = hex_digit(text[2 * i + 1]);
    if (high < 0 || low < 0) return status(errc::invalid_field, "a key holds hex digits only");
    key[i] = static_cast<std::uint8_t>(high * 16 + low);
  }
  return key;
}

result<std::vector<std::uint8_t>> read_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return status(errc::io_error, "cannot read the key file '" + path + "'");
  std::string text(key_file_bytes_max + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > key_file_bytes_max) return status(errc::invalid_field, "the key file '" + path + "' is too long");
  auto key = key_from_hex(text);
  if (!key) return status(key.error().code(), "'" + path + "': " + key.error().message());
  return key;
}

std::vector<std::uint8_t> device_key_secret(std::span<const std::uint8_t> operator_key) {
  constexpr std::string_view label = "pevledger device keys";
  const auto m = mac_of(operator_key, std::span(reinterpret_cast<const std::uint8_t*>(label.data()), label.size()));
  return {m.begin(), m.end()};
}

std::vector<std::uint8_t> device_key(std::span<const std::uint8_t> secret, std::string_view device,
                                     std::uint32_t key_id) {
  constexpr std::string_view label = "pevledger device key 1";
  std::vector<std::uint8_t> input(label.begin(), label.end());
  input.push_back(0);
  for (int i = 0; i < 4; ++i) input.push_back(static_cast<std::uint8_t>(key_id >> (8 * i)));
  input.insert(input.end(), device.begin(), device.end());
  const auto m = mac_of(secret, input);
  return {m.begin(), m.end()};
}

std::uint32_t key_id_of_setup(std::string_view setup_id) {
  std::uint32_t h = 2166136261u;  // FNV-1a, 32 bits
  for (const char c : setup_id) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

}  // namespace pevledger::gateway
