#pragma once
// Who an access token speaks for (docs/api.md, "Tokens").

#include <string>

namespace pevledger::portal {

// One account, or (account empty) every account of a utility.
struct principal {
  std::string utility;
  std::string account;
  [[nodiscard]] bool is_utility() const { return account.empty(); }
};

}  // namespace pevledger::portal
